"""Flask, plain Starlette, aiohttp's server and Django -> Sentry, as a user runs each.

Each example app runs as a real subprocess under its own server (gunicorn, ``flask run``,
uvicorn, ``aiohttp.web``, ``manage.py runserver``), through the launcher or its own
``otel_sentry.init()``, with ``SENTRY_DSN`` pointing at the inbox. One request works, one raises,
one arrives with a ``sentry-trace`` header. The inbox must show a transaction per request named
after the route, and one issue named like the failing request's transaction and linked to its
server span: with two names, Sentry cannot pair the issue with the request.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import pytest

from otel_sentry.inbox import Inbox
from tests.integration.launched import BIN, ROOT, Launched

pytestmark = pytest.mark.integration

LAUNCHER = str(BIN / "opentelemetry-instrument")
FLASK = ("GET /items/<int:item_id>", "POST /checkout/<int:item_id>")
STARLETTE = ("GET /items/{item_id:int}", "POST /checkout/{item_id:int}")
AIOHTTP = ("GET /items/{item_id}", "POST /checkout/{item_id}")
AIOHTTP_APP = "examples.aiohttp_app.main:make_app"  # for python -m aiohttp.web
DJANGO = ("GET items/<int:item_id>", "POST checkout/<int:item_id>")

# examples/django_app/manage.py with the two lines docs/frameworks.md tells a user to add.
DJANGO_MANAGE_WITH_INIT = """
import os, sys
import otel_sentry
otel_sentry.init()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
from django.core.management import execute_from_command_line
execute_from_command_line(["manage.py", *sys.argv[1:]])
"""

# An upstream service's trace (what a Sentry SDK in front of this one sends).
UPSTREAM_TRACE = "771a43a4192642f0b136d5159a501700"
UPSTREAM_SPAN = "b0e6f15b45c36b12"

CASES = [
    pytest.param(
        [LAUNCHER, "gunicorn", "-w", "2", "-b", "127.0.0.1:{port}", "examples.flask_app.app:app"],
        ROOT,
        FLASK,
        id="flask-gunicorn-launcher",
    ),
    pytest.param(
        ["gunicorn", "-w", "2", "-b", "127.0.0.1:{port}", "examples.flask_app.app:app"],
        ROOT,
        FLASK,
        id="flask-gunicorn-init",
    ),
    pytest.param(
        ["flask", "--app", "examples.flask_app.app", "run", "--port", "{port}"],
        ROOT,
        FLASK,
        id="flask-run-init",
    ),
    pytest.param(
        [LAUNCHER, "uvicorn", "examples.starlette_app.main:app", "--port", "{port}"],
        ROOT,
        STARLETTE,
        id="starlette-uvicorn-launcher",
    ),
    pytest.param(
        ["uvicorn", "examples.starlette_app.main:app", "--port", "{port}"],
        ROOT,
        STARLETTE,
        id="starlette-uvicorn-init",
    ),
    pytest.param(
        [LAUNCHER, "python", "-m", "aiohttp.web", "-H", "127.0.0.1", "-P", "{port}", AIOHTTP_APP],
        ROOT,
        AIOHTTP,
        id="aiohttp-web-launcher",
    ),
    pytest.param(
        ["python", "-m", "examples.aiohttp_app.main", "--port", "{port}"],
        ROOT,
        AIOHTTP,
        id="aiohttp-run_app-init",
    ),
    pytest.param(
        [LAUNCHER, "python", "manage.py", "runserver", "--noreload", "127.0.0.1:{port}"],
        ROOT / "examples" / "django_app",
        DJANGO,
        id="django-runserver-launcher",
    ),
    pytest.param(
        ["python", "-c", DJANGO_MANAGE_WITH_INIT, "runserver", "--noreload", "127.0.0.1:{port}"],
        ROOT / "examples" / "django_app",
        DJANGO,
        id="django-runserver-init",
    ),
]


def _get_continuing(port: int, path: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        headers={"sentry-trace": f"{UPSTREAM_TRACE}-{UPSTREAM_SPAN}-1"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


@pytest.mark.parametrize(("command", "cwd", "names"), CASES)
def test_error_is_named_and_linked_like_its_request(
    inbox: Inbox, command: list[str], cwd: Path, names: tuple[str, str]
) -> None:
    ok_name, failing_name = names
    with Launched(command, {"SENTRY_DSN": inbox.dsn()}, cwd=cwd) as app:
        assert app.request("GET", "/items/1")[0] == 200
        assert app.request("POST", "/checkout/2")[0] == 500
        assert _get_continuing(app.port, "/items/2") == 200
        app.terminate()

    def arrived(i: Inbox) -> bool:
        traces = {t["contexts"]["trace"]["trace_id"] for t in i.transactions()}
        names = {t["transaction"] for t in i.transactions()}
        return {ok_name, failing_name} <= names and UPSTREAM_TRACE in traces and bool(i.events())

    assert inbox.wait_for(arrived, 15), [t["transaction"] for t in inbox.transactions()]
    by_name: dict[str, list[dict[str, Any]]] = {}
    for txn in inbox.transactions():
        by_name.setdefault(txn["transaction"], []).append(txn)
        assert txn["contexts"]["trace"]["op"] == "http.server"
        assert txn["transaction_info"] == {"source": "route"}
        # Starlette: no per-message "http send" / "http receive" spans of the ASGI layer.
        messages = [
            s for s in txn["spans"] if s.get("description", "").endswith((" send", " receive"))
        ]
        assert messages == [], messages
    assert {t["contexts"]["trace"]["status"] for t in by_name[ok_name]} == {"ok"}
    [failing] = by_name[failing_name]
    assert failing["contexts"]["trace"]["status"] == "internal_error"

    # The incoming trace is continued: same trace, under the upstream span.
    [continued] = [
        t for t in by_name[ok_name] if t["contexts"]["trace"]["trace_id"] == UPSTREAM_TRACE
    ]
    assert continued["contexts"]["trace"]["parent_span_id"] == UPSTREAM_SPAN

    [error] = inbox.events()  # one issue: no second event, no transaction of sentry_sdk's
    assert error["exception"]["values"][-1]["type"] == "CheckoutError"
    assert error["exception"]["values"][-1]["mechanism"]["handled"] is False
    assert error["transaction"] == failing_name
    assert error["transaction_info"] == {"source": "route"}
    assert error["contexts"]["trace"]["trace_id"] == failing["contexts"]["trace"]["trace_id"]
    assert error["contexts"]["trace"]["span_id"] == failing["contexts"]["trace"]["span_id"]
    assert error["request"]["method"] == "POST"
    assert error["request"]["url"].endswith("/checkout/2")
    assert inbox.problems == []
