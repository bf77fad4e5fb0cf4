"""Unhandled exceptions in Starlette/FastAPI apps: one issue, inside the request's span."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from otel_sentry.testing import Capture

pytestmark = pytest.mark.usefixtures("fresh")


class ExplodedError(RuntimeError):
    pass


async def _call(app: Any, path: str, headers: dict[str, str] | None = None) -> int:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        return (await client.get(path, headers=headers)).status_code


def _fastapi_app() -> Any:
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import JSONResponse

    app = FastAPI()

    @app.get("/boom/{n}")
    async def boom(n: int) -> None:
        raise ExplodedError(f"boom {n}")

    @app.get("/missing")
    async def missing() -> None:
        raise HTTPException(status_code=404)

    handled = FastAPI()

    @handled.exception_handler(Exception)
    async def to_json(request: Any, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": "sorry"}, status_code=500)

    @handled.get("/handled")
    async def handled_route() -> None:
        raise ExplodedError("handled by the app, still an issue")

    app.mount("/sub", handled)
    return app


def test_unhandled_exception_is_one_unhandled_issue_with_the_request(
    otel_sentry_capture: Capture,
) -> None:
    status = asyncio.run(
        _call(
            _fastapi_app(),
            "/boom/7?token=abc",
            {"Authorization": "Bearer secret", "Cookie": "session=x", "User-Agent": "tests/1"},
        )
    )
    assert status == 500
    error = otel_sentry_capture.one_error("ExplodedError")
    [exc] = error["exception"]["values"]
    assert exc["mechanism"] == {"type": "asgi", "handled": False}
    assert exc["stacktrace"]["frames"][-1]["function"] == "boom"
    assert error["request"]["method"] == "GET"
    assert error["request"]["url"] == "http://api.test/boom/7"  # no query string
    headers = error["request"]["headers"]
    assert headers["user-agent"] == "tests/1" and headers["host"] == "api.test"
    assert not {"authorization", "cookie"} & set(headers)  # never sent
    assert error["transaction"] == "GET /boom/{n}"
    txn = otel_sentry_capture.transaction("GET /boom/{n}")
    otel_sentry_capture.assert_linked(error, txn)


def test_http_exceptions_are_not_issues(otel_sentry_capture: Capture) -> None:
    assert asyncio.run(_call(_fastapi_app(), "/missing")) == 404
    assert otel_sentry_capture.errors == []
    # A 404's transaction is noise, dropped by default (tests/sentry/test_noise.py).
    assert [t["transaction"] for t in otel_sentry_capture.transactions] == []


def test_an_app_exception_handler_does_not_hide_the_issue(otel_sentry_capture: Capture) -> None:
    assert asyncio.run(_call(_fastapi_app(), "/sub/handled")) == 500
    otel_sentry_capture.one_error("ExplodedError")


def test_plain_starlette_apps_are_covered(otel_sentry_capture: Capture) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Route

    async def fail(request: Any) -> None:
        raise ExplodedError("starlette")

    app = Starlette(routes=[Route("/fail", fail)])
    assert asyncio.run(_call(app, "/fail")) == 500
    error = otel_sentry_capture.one_error("ExplodedError")
    assert error["request"]["url"] == "http://api.test/fail"
