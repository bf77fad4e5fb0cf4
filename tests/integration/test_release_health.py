"""Release health: request-mode session aggregates, as sentry_sdk's middlewares send them.

Apps run as real subprocesses under the launcher (uvicorn for FastAPI, gunicorn for Flask) with
``SENTRY_DSN`` at the inbox and a release set, and are stopped with SIGTERM: the aggregates that
reach the inbox must count every request once (``exited``, ``errored`` for a handled error that
was captured, ``crashed`` for an unhandled one), whatever was sampled for tracing, and never
the health check the test harness polls. The apps are defined here, at the bottom: the
subprocesses import this module.
"""

from __future__ import annotations

from typing import Any

import pytest
import sentry_sdk
from opentelemetry import trace
from opentelemetry.trace import SpanKind

import otel_sentry
from otel_sentry.inbox import Fault, Inbox
from tests.integration.launched import BIN, Launched

pytestmark = pytest.mark.integration

LAUNCHER = str(BIN / "opentelemetry-instrument")
RELEASE = "shop@2.1.0"


def _env(inbox: Inbox, **extra: str) -> dict[str, str]:
    return {"SENTRY_DSN": inbox.dsn(), "SENTRY_RELEASE": RELEASE, **extra}


def _totals(inbox: Inbox) -> dict[str, int]:
    """Every aggregate of every ``sessions`` item, summed (a process may send several)."""
    out = {"exited": 0, "errored": 0, "crashed": 0, "abnormal": 0}
    for item in inbox.items("sessions"):
        payload = item.json
        assert payload["attrs"] == {"release": RELEASE, "environment": "production"}
        for aggregate in payload["aggregates"]:
            assert aggregate["started"].endswith(":00.000000Z")  # the minute, as sentry_sdk
            for key in out:
                out[key] += aggregate.get(key, 0)
    return out


def _wait_for_sessions(inbox: Inbox, total: int) -> dict[str, int]:
    inbox.wait_for(lambda i: sum(_totals(i).values()) >= total, timeout=20)
    return _totals(inbox)


def _drive(server: Launched, ok: int, crashing: int, handled: int) -> None:
    for i in range(ok):
        assert server.request("GET", f"/items/{i}")[0] == 200
    for i in range(crashing):
        assert server.request("POST", f"/checkout/{i}")[0] == 500
    for i in range(handled):
        assert server.request("POST", f"/refund/{i}")[0] == 200
    for _ in range(3):  # probes are not sessions
        assert server.request("GET", "/health")[0] == 200


def test_fastapi_under_uvicorn_counts_every_request_until_sigterm(inbox: Inbox) -> None:
    command = [LAUNCHER, "uvicorn", f"{__name__}:fastapi_app", "--port", "{port}"]
    with Launched(command, _env(inbox), probe="/health") as server:
        _drive(server, ok=20, crashing=2, handled=1)
        server.terminate()  # what is counted is sent on SIGTERM, not after a minute
    totals = _wait_for_sessions(inbox, 23)
    assert totals == {"exited": 20, "errored": 1, "crashed": 2, "abnormal": 0}, server.output
    # The crashes are issues too; the handled error was captured, not raised.
    assert len(inbox.events()) == 3
    assert len(inbox.transactions()) == 23


def test_unsampled_requests_are_sessions_too(inbox: Inbox) -> None:
    command = [LAUNCHER, "uvicorn", f"{__name__}:fastapi_app", "--port", "{port}"]
    env = _env(inbox, SENTRY_TRACES_SAMPLE_RATE="0")
    with Launched(command, env, probe="/health") as server:
        _drive(server, ok=5, crashing=1, handled=1)
        server.terminate()
    totals = _wait_for_sessions(inbox, 7)
    assert totals == {"exited": 5, "errored": 1, "crashed": 1, "abnormal": 0}, server.output
    assert inbox.transactions() == []  # nothing was traced, everything was counted
    assert len(inbox.events()) == 2


def test_flask_under_gunicorn_workers(inbox: Inbox) -> None:
    # Two forked workers (init() ran in gunicorn's master): each counts and sends its own.
    command = [LAUNCHER, "gunicorn", "-w", "2", "-b", "127.0.0.1:{port}", f"{__name__}:flask_app"]
    with Launched(command, _env(inbox), probe="/health") as server:
        _drive(server, ok=6, crashing=2, handled=1)
        server.terminate()
    totals = _wait_for_sessions(inbox, 9)
    assert totals == {"exited": 6, "errored": 1, "crashed": 2, "abnormal": 0}, server.output


@pytest.mark.usefixtures("fresh")
def test_a_rate_limited_session_category_is_held_back_and_reported(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), release=RELEASE, instrument=False)
    # The first envelope's answer limits sessions (only) for a minute.
    inbox.set_fault(Fault(rate_limits="60:session:key", remaining=1))
    sentry_sdk.capture_message("before the requests")
    inbox.wait_for(lambda i: i.fault is None, timeout=10)
    assert otel_sentry.flush(5)
    tracer = trace.get_tracer(__name__)
    for i in range(4):
        with tracer.start_as_current_span(f"GET /items/{i}", kind=SpanKind.SERVER):
            pass
    assert otel_sentry.flush(5)
    sentry_sdk.capture_message("after the requests")  # still delivered: events are not limited
    assert otel_sentry.flush(5)
    otel_sentry.shutdown()

    def reported(i: Inbox) -> bool:
        return i.counts.discarded.get(("ratelimit_backoff", "session"), 0) >= 1

    assert inbox.wait_for(reported, timeout=10), inbox.counts.discarded
    assert inbox.items("sessions") == []
    assert len(inbox.events()) == 2


# -- the apps the subprocesses run -----------------------------------------------------------


class CheckoutError(RuntimeError):
    pass


def _refund_failed(item_id: int) -> None:
    try:
        raise LookupError(f"no payment for item {item_id}")
    except LookupError:
        sentry_sdk.capture_exception()  # handled: the request still answers 200


def _make_fastapi_app() -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.post("/checkout/{item_id}")
    def checkout(item_id: int) -> None:
        raise CheckoutError(f"price service returned nothing for item {item_id}")

    @app.post("/refund/{item_id}")
    def refund(item_id: int) -> dict[str, int]:
        _refund_failed(item_id)
        return {"id": item_id}

    return app


def _make_flask_app() -> Any:
    from flask import Flask

    app = Flask(__name__)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.post("/checkout/<int:item_id>")
    def checkout(item_id: int) -> None:
        raise CheckoutError(f"price service returned nothing for item {item_id}")

    @app.post("/refund/<int:item_id>")
    def refund(item_id: int) -> dict[str, int]:
        _refund_failed(item_id)
        return {"id": item_id}

    return app


def __getattr__(name: str) -> Any:
    # Built on first use, in the server process, after the launcher instrumented the frameworks.
    if name == "fastapi_app":
        return _make_fastapi_app()
    if name == "flask_app":
        return _make_flask_app()
    raise AttributeError(name)
