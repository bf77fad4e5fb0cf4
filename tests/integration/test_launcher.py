"""``opentelemetry-instrument <server>`` with only environment variables -> Sentry.

Each app runs as a real subprocess under the launcher, with ``SENTRY_DSN`` pointing at the
inbox and nothing else of ours configured. One request works, one raises; the inbox must show
both transactions and the error linked to the failing request's server span.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest

from otel_sentry.inbox import Inbox
from tests.integration.launched import BIN, ROOT, Launched

pytestmark = pytest.mark.integration


def _env(inbox: Inbox, **extra: str) -> dict[str, str]:
    return {"SENTRY_DSN": inbox.dsn(), "SENTRY_RELEASE": "launcher@1", **extra}


def _assert_linked(inbox: Inbox, ok_name: str, failing_name: str, error_type: str) -> None:
    def arrived(i: Inbox) -> bool:
        names = {t["transaction"] for t in i.transactions()}
        return {ok_name, failing_name} <= names and bool(i.events())

    assert inbox.wait_for(arrived, 15), [t["transaction"] for t in inbox.transactions()]
    by_name: dict[str, list[dict[str, Any]]] = {}
    for txn in inbox.transactions():
        by_name.setdefault(txn["transaction"], []).append(txn)
        assert txn["contexts"]["trace"]["op"] == "http.server"
        assert txn["release"] == "launcher@1"
    assert by_name[ok_name][-1]["contexts"]["trace"]["status"] == "ok"
    [failing] = by_name[failing_name]
    assert failing["contexts"]["trace"]["status"] == "internal_error"
    [error] = inbox.events()  # one issue: sentry_sdk made no transaction or second event
    assert error["exception"]["values"][-1]["type"] == error_type
    assert error["contexts"]["trace"]["trace_id"] == failing["contexts"]["trace"]["trace_id"]
    assert error["contexts"]["trace"]["span_id"] == failing["contexts"]["trace"]["span_id"]
    assert error["request"]["method"] == "POST"
    assert error["request"]["url"].endswith("/checkout/2")
    assert inbox.problems == []


@pytest.mark.parametrize(
    ("app", "error_type"),
    [
        ("examples.fastapi_app.main:app", "CheckoutError"),  # calls a bare init(): joins
        ("tests.support.plain_fastapi:app", "CheckoutError"),  # no otel-sentry code at all
    ],
)
def test_fastapi_under_the_launcher(inbox: Inbox, app: str, error_type: str) -> None:
    command = [str(BIN / "opentelemetry-instrument"), "uvicorn", app, "--port", "{port}"]
    with Launched(command, _env(inbox)) as server:
        assert server.request("GET", "/items/1")[0] == 200
        assert server.request("POST", "/checkout/2")[0] == 500
        server.terminate()
    _assert_linked(inbox, "GET /items/{item_id}", "POST /checkout/{item_id}", error_type)
    # uvicorn logged its start-up at INFO ("Uvicorn running on ..."): not the request's history.
    [error] = inbox.events()
    crumbs = [c.get("message") or "" for c in error.get("breadcrumbs", {}).get("values", [])]
    assert not [c for c in crumbs if "startup" in c or "running on" in c or "server process" in c]
    # FastAPI enabled with init()'s options: no per-message "http send" spans.
    for txn in inbox.transactions():
        assert not [s for s in txn["spans"] if s.get("description", "").endswith(" send")]


def test_fastapi_launcher_honours_otel_variables(inbox: Inbox) -> None:
    command = [str(BIN / "opentelemetry-instrument"), "uvicorn", "tests.support.plain_fastapi:app"]
    env = _env(
        inbox,
        OTEL_SERVICE_NAME="checkout-api",
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment.name=staging",
        OTEL_TRACES_SAMPLER="always_off",
    )
    with Launched([*command, "--port", "{port}"], env) as server:
        assert server.request("POST", "/checkout/2")[0] == 500
        server.terminate()
    # Sampled out: no transaction, but the error is still reported, with the environment.
    inbox.wait_for_items("event", 1, timeout=15)
    assert inbox.transactions() == []
    [error] = inbox.events()
    assert error["environment"] == "staging"


@pytest.mark.parametrize(
    "server",
    [
        ["python", "manage.py", "runserver", "--noreload", "127.0.0.1:{port}"],
        # init() runs in gunicorn's master (the launcher's sitecustomize), before the fork.
        ["gunicorn", "-w", "2", "-b", "127.0.0.1:{port}", "shop.wsgi"],
    ],
    ids=["runserver", "gunicorn"],
)
def test_django_under_the_launcher(inbox: Inbox, server: list[str]) -> None:
    command = [str(BIN / "opentelemetry-instrument"), *server]
    with Launched(command, _env(inbox), cwd=ROOT / "examples" / "django_app") as app:
        assert app.request("GET", "/items/1")[0] == 200
        assert app.request("POST", "/checkout/2")[0] == 500
        app.terminate()
    _assert_linked(inbox, "GET items/<int:item_id>", "POST checkout/<int:item_id>", "CheckoutError")


def test_a_bad_setting_stops_the_start_with_one_line(inbox: Inbox) -> None:
    env = {**os.environ, **_env(inbox), "SENTRY_TRACES_SAMPLE_RATE": "lots"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        [str(BIN / "opentelemetry-instrument"), "python", "-c", "print('app ran')"],
        env=env,
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "app ran" not in done.stdout  # not started unmonitored
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("otel-sentry: SENTRY_TRACES_SAMPLE_RATE='lots'")
    assert "Fix: set SENTRY_TRACES_SAMPLE_RATE to a number between 0 and 1" in lines[0]
