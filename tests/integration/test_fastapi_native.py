"""FastAPI's own telemetry records the server span where FastAPI has it; never two server spans.

The example app runs under uvicorn as a real subprocess, through ``init()``, the launcher, the
contrib instrumentation chosen by setting, the contrib instrumentation applied by hand on top of
``init()``, and on a FastAPI from before its own telemetry (0.115, installed beside the venv by
``make old-fastapi``) through ``init()`` and the launcher. In every combination each request
arrives at the inbox as one transaction named after its route, with no second server span inside
it, and the error of the failing request is linked to it. Which instrumentation recorded the span
shows in the attributes it wrote: FastAPI's own writes the current HTTP conventions
(``url.path``), the contrib one (0.66b1, by default) the old ones (``http.target``).
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from otel_sentry.inbox import Inbox
from tests.integration.launched import BIN, Launched

pytestmark = pytest.mark.integration

LAUNCHER = str(BIN / "opentelemetry-instrument")
UVICORN = ["uvicorn", "--port", "{port}"]
EXAMPLE = "examples.fastapi_app.main:app"
UPSTREAM_TRACE = "5b8efff798038103d269b633813fc60c"
# FastAPI 0.115 and Starlette 0.46, shadowing the venv's for the processes given this PYTHONPATH.
OLD_FASTAPI = Path(sys.prefix) / "old-fastapi"


def _request_with_trace(port: int) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/items/2",
        headers={"sentry-trace": f"{UPSTREAM_TRACE}-eee19b7ec3c1b174-1"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def _run(inbox: Inbox, command: list[str], env: dict[str, str] | None = None) -> None:
    with Launched(command, {"SENTRY_DSN": inbox.dsn(), **(env or {})}) as app:
        assert app.request("GET", "/items/1")[0] == 200
        assert app.request("POST", "/checkout/2")[0] == 500
        _request_with_trace(app.port)
        app.terminate()

    def arrived(i: Inbox) -> bool:
        names = {t["transaction"] for t in i.transactions()}
        traces = {t["contexts"]["trace"]["trace_id"] for t in i.transactions()}
        return (
            {"GET /items/{item_id}", "POST /checkout/{item_id}"} <= names
            and UPSTREAM_TRACE in traces
            and bool(i.events())
        )

    assert inbox.wait_for(arrived, 20), [t["transaction"] for t in inbox.transactions()]


def _recorded_by(txn: dict[str, Any]) -> str:
    data = txn["contexts"]["trace"].get("data") or {}
    if "url.path" in data and "http.target" not in data:
        return "native"
    if "http.target" in data:
        return "contrib"
    return f"unknown: {sorted(data)}"


def _check(inbox: Inbox, recorder: str, operation_spans: bool = False) -> None:
    for txn in inbox.transactions():
        assert txn["contexts"]["trace"]["op"] == "http.server"
        assert txn["transaction_info"] == {"source": "route"}, txn["transaction"]
        assert _recorded_by(txn) == recorder, txn["contexts"]["trace"].get("data")
        inner_servers = [s for s in txn["spans"] if s.get("op") == "http.server"]
        assert inner_servers == [], "a second server span inside the request's"
        operations = [s for s in txn["spans"] if s.get("description", "").startswith("fastapi.")]
        assert bool(operations) is operation_spans, [s.get("description") for s in txn["spans"]]
    continued = [
        t for t in inbox.transactions() if t["contexts"]["trace"]["trace_id"] == UPSTREAM_TRACE
    ]
    assert [t["transaction"] for t in continued] == ["GET /items/{item_id}"]
    assert continued[0]["contexts"]["trace"]["parent_span_id"] == "eee19b7ec3c1b174"
    [failing] = [t for t in inbox.transactions() if t["transaction"] == "POST /checkout/{item_id}"]
    assert failing["contexts"]["trace"]["status"] == "internal_error"
    [error] = inbox.events()
    assert error["transaction"] == "POST /checkout/{item_id}"
    assert error["contexts"]["trace"]["trace_id"] == failing["contexts"]["trace"]["trace_id"]
    assert error["contexts"]["trace"]["span_id"] == failing["contexts"]["trace"]["span_id"]


def test_init_uses_fastapis_own_telemetry(inbox: Inbox) -> None:
    _run(inbox, [*UVICORN, EXAMPLE])
    _check(inbox, "native")


def test_the_launcher_uses_fastapis_own_telemetry(inbox: Inbox) -> None:
    _run(inbox, [LAUNCHER, *UVICORN, EXAMPLE])
    _check(inbox, "native")


def test_operation_spans_on_request(inbox: Inbox) -> None:
    _run(inbox, [*UVICORN, EXAMPLE], {"OTEL_SENTRY_FASTAPI_OPERATION_SPANS": "true"})
    _check(inbox, "native", operation_spans=True)


def test_the_contrib_instrumentation_by_setting(inbox: Inbox) -> None:
    _run(inbox, [LAUNCHER, *UVICORN, EXAMPLE], {"OTEL_SENTRY_FASTAPI_TELEMETRY": "contrib"})
    _check(inbox, "contrib")


def test_the_contrib_instrumentation_applied_by_hand_leaves_one_server_span(inbox: Inbox) -> None:
    _run(inbox, [*UVICORN, "tests.support.fastapi_contrib_app:app"])
    _check(inbox, "contrib")


def test_fastapi_switched_off_records_nothing(inbox: Inbox) -> None:
    """FastAPI's telemetry would trace on its own once a provider is set: not when unwanted."""
    with Launched(
        [*UVICORN, EXAMPLE],
        {"SENTRY_DSN": inbox.dsn(), "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "fastapi"},
    ) as app:
        assert app.request("POST", "/checkout/2")[0] == 500
        app.terminate()
    assert inbox.wait_for(lambda i: bool(i.events()), 20)
    assert inbox.transactions() == []


@pytest.fixture
def old_fastapi() -> dict[str, str]:
    """The environment of a process that imports a FastAPI without ``fastapi.telemetry``."""
    if not (OLD_FASTAPI / ".installed").exists():
        pytest.fail(f"{OLD_FASTAPI} is missing: run `make old-fastapi` (make test does)")
    env = {"PYTHONPATH": str(OLD_FASTAPI)}
    probe = (
        "import fastapi, importlib.util; "
        "print(fastapi.__version__, importlib.util.find_spec('fastapi.telemetry') is None)"
    )
    seen = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert seen == ["0.115.14", "True"], seen
    return env


@pytest.mark.parametrize("launcher", [False, True], ids=["init", "launcher"])
def test_an_older_fastapi_gets_the_contrib_instrumentation(
    inbox: Inbox, old_fastapi: dict[str, str], launcher: bool
) -> None:
    _run(inbox, [LAUNCHER, *UVICORN, EXAMPLE] if launcher else [*UVICORN, EXAMPLE], old_fastapi)
    _check(inbox, "contrib")
