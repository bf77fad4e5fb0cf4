"""set_user / set_tag / set_context / add_breadcrumb reach both the error and the transaction."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

import otel_sentry
from otel_sentry.testing import Capture

pytestmark = pytest.mark.usefixtures("fresh")


class WorkError(RuntimeError):
    pass


def _app() -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/work/{n}")
    async def work(n: int) -> None:
        otel_sentry.set_user({"id": f"user-{n}", "email": f"u{n}@example.com"})
        otel_sentry.set_tag("tenant", f"t{n}")
        otel_sentry.set_context("order", {"number": n, "items": [1, 2]})
        await asyncio.sleep(0.01 * (n % 5))  # interleave the requests
        otel_sentry.add_breadcrumb(f"step for {n}", category="work", data={"n": n})
        raise WorkError(f"request {n}")

    return app


async def _hit(app: Any, paths: list[str]) -> list[int]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        responses = await asyncio.gather(*(client.get(p) for p in paths))
    return [r.status_code for r in responses]


def _by_trace(capture: Capture) -> dict[str, dict[str, Any]]:
    return {t["contexts"]["trace"]["trace_id"]: t for t in capture.transactions}


def test_fifty_concurrent_requests_keep_their_own_user_tags_and_breadcrumbs(
    otel_sentry_capture: Capture,
) -> None:
    app = _app()
    statuses = asyncio.run(_hit(app, [f"/work/{n}" for n in range(50)]))
    assert statuses == [500] * 50
    transactions = _by_trace(otel_sentry_capture)
    errors = otel_sentry_capture.errors
    assert len(errors) == 50
    for error in errors:
        n = int(error["exception"]["values"][-1]["value"].split()[-1])
        assert error["user"] == {"id": f"user-{n}"}  # no email: send_default_pii is off
        assert error["tags"]["tenant"] == f"t{n}"
        assert error["contexts"]["order"]["number"] == n
        crumbs = [
            b["message"] for b in error["breadcrumbs"]["values"] if b.get("category") == "work"
        ]
        assert crumbs == [f"step for {n}"]
        txn = transactions[error["contexts"]["trace"]["trace_id"]]
        assert txn["user"] == {"id": f"user-{n}"}
        assert txn["tags"]["tenant"] == f"t{n}"
        assert txn["contexts"]["trace"]["data"]["order.number"] == n
        assert "user.email" not in txn["contexts"]["trace"]["data"]


def test_email_is_kept_when_pii_is_opted_in(otel_sentry_capture: Capture) -> None:
    settings = otel_sentry.current_settings()
    assert settings is not None
    otel_sentry.shutdown()
    otel_sentry.init(**settings.as_options(send_default_pii=True))
    app = _app()
    assert asyncio.run(_hit(app, ["/work/3"])) == [500]
    error = otel_sentry_capture.one_error("WorkError")
    assert error["user"]["email"] == "u3@example.com"
    [txn] = otel_sentry_capture.transactions
    assert txn["user"]["email"] == "u3@example.com"
