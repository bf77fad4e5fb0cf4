"""A ``traces_sampler`` written for sentry_sdk runs unchanged: the context has its shape.

The samplers below are the ones sentry_sdk users write (seed 004: ``wsgi_environ["PATH_INFO"]``
under Django; ``asgi_scope["path"]`` under FastAPI), run by real servers: Django's WSGI handler
in a process of its own (Django's settings are once per process), FastAPI under uvicorn in a
thread. What each test asserts is what reached the inbox: which transactions arrived, with the
``sample_rate`` the sampler chose in their dynamic sampling context, and the ``sample_rate``
client report for the ones it dropped.

Counts at rate 0.1 are binomial: for n = 200 the test accepts 3..45 arrivals. The chance that a
correct sampler falls outside is 2.5e-7 (P[X <= 2] = 1.9e-7, P[X >= 46] = 6.5e-8); rate 0 gives
0 and rate 1 gives 200, both outside.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from starlette.requests import Request  # at module level: FastAPI resolves the annotation here

import otel_sentry
from otel_sentry._internal.sentry.sampler import SentrySampler
from otel_sentry.inbox import Inbox
from tests.support.uvicorn import UvicornThread

N_OTHER = 200
N_PROJECTS = 10
ARRIVALS_AT_TENTH = range(3, 46)  # see the module docstring: false failure 2.5e-7


def _dsc(inbox: Inbox, txn: dict[str, Any]) -> dict[str, str]:
    [envelope] = [
        e for e in inbox.envelopes if e.envelope.headers.get("event_id") == txn["event_id"]
    ]
    dsc: dict[str, str] = envelope.envelope.headers["trace"]
    return dsc


def _discarded(inbox: Inbox, reason: str, category: str) -> int:
    return sum(
        d["quantity"]
        for report in inbox.client_reports()
        for d in report.get("discarded_events", [])
        if d["reason"] == reason and d["category"] == category
    )


def _assert_sampled_as_chosen(inbox: Inbox, project_name: str, other_name: str) -> None:
    """Every project request arrived at rate 1, the others at rate 0.1; the rest reported."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for txn in inbox.transactions():
        by_name.setdefault(txn["transaction"], []).append(txn)
    assert set(by_name) <= {project_name, other_name}, sorted(by_name)
    projects = by_name.get(project_name, [])
    others = by_name.get(other_name, [])
    assert len(projects) == N_PROJECTS
    assert len(others) in ARRIVALS_AT_TENTH, len(others)
    for txn in projects:
        assert _dsc(inbox, txn)["sample_rate"] == "1"
        assert txn["contexts"]["trace"]["data"]["sentry.sample_rate"] == 1.0
    for txn in others:
        assert _dsc(inbox, txn)["sample_rate"] == "0.1"
        assert txn["contexts"]["trace"]["data"]["sentry.sample_rate"] == 0.1
    # What the sampler dropped is accounted for, not lost.
    assert _discarded(inbox, "sample_rate", "transaction") == N_OTHER - len(others)
    assert inbox.problems == []


# -- Django (WSGI): seed 004's sampler, unchanged ---------------------------------------------

_DJANGO_SERVICE = """
import os
from wsgiref.simple_server import WSGIRequestHandler, make_server

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="test-only",
    ALLOWED_HOSTS=["127.0.0.1"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    DATABASES={},
)

from django.http import JsonResponse
from django.urls import path

SEEN = []


def traces_sampler(sampling_context):
    SEEN.append(sampling_context)
    if sampling_context["wsgi_environ"]["PATH_INFO"].startswith("/api/v1/projects/"):
        return 1.0
    return 0.1


def project(request, pid):
    context = SEEN[-1]
    return JsonResponse({
        # The environ the sampler read is the request's own (wsgiref serves one at a time).
        "same_environ": context["wsgi_environ"] is request.META,
        "has_asgi_scope": "asgi_scope" in context,
        "op": context["transaction_context"]["op"],
        "name": context["transaction_context"]["name"],
        "parent_sampled": context["parent_sampled"],
    })


def page(request, n):
    return JsonResponse({"n": n})


urlpatterns = [path("api/v1/projects/<int:pid>", project), path("pages/<int:n>", page)]

import otel_sentry

otel_sentry.init(
    dsn=os.environ["SENTRY_DSN"], traces_sampler=traces_sampler, instrument=("django",)
)
django.setup()
from django.core.wsgi import get_wsgi_application


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


server = make_server("127.0.0.1", 0, get_wsgi_application(), handler_class=Quiet)
print(server.server_port, flush=True)
server.serve_forever()
"""


def _get_json(url: str, headers: dict[str, str] | None = None) -> Any:
    import json

    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        return json.loads(response.read())


@pytest.mark.integration
def test_seed_004_sampler_under_django_sees_the_wsgi_environ(inbox: Inbox, tmp_path: Path) -> None:
    script = tmp_path / "service.py"
    script.write_text(textwrap.dedent(_DJANGO_SERVICE))
    process = subprocess.Popen(
        [sys.executable, str(script)],
        env={"SENTRY_DSN": inbox.dsn(), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.strip().isdigit(), line + process.stdout.read()
        base = f"http://127.0.0.1:{int(line)}"
        for pid in range(N_PROJECTS):
            seen = _get_json(f"{base}/api/v1/projects/{pid}?page=2")
            assert seen == {
                "same_environ": True,
                "has_asgi_scope": False,
                "op": "http.server",
                "name": "GET api/v1/projects/<int:pid>",
                "parent_sampled": None,
            }
        for n in range(N_OTHER):
            assert _get_json(f"{base}/pages/{n}") == {"n": n}
    finally:
        process.send_signal(signal.SIGTERM)  # flushes, then exits (setup.py)
        process.wait(30)
    _assert_sampled_as_chosen(inbox, "GET api/v1/projects/<int:pid>", "GET pages/<int:n>")


# -- FastAPI (ASGI): the same sampler, written against asgi_scope ---------------------------


@pytest.fixture
def fastapi_service(inbox: Inbox, fresh: None) -> Iterator[tuple[UvicornThread, list[Any]]]:
    seen: list[dict[str, Any]] = []
    app_scopes: list[Any] = []

    def traces_sampler(sampling_context: dict[str, Any]) -> float:
        seen.append(sampling_context)
        if sampling_context["asgi_scope"]["path"].startswith("/api/v1/projects/"):
            return 1.0
        return 0.1

    otel_sentry.init(dsn=inbox.dsn(), traces_sampler=traces_sampler, instrument=("fastapi",))
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/api/v1/projects/{pid}")
    def project(pid: int, request: Request) -> dict[str, Any]:
        app_scopes.append(request.scope)
        return {"id": pid}

    @app.get("/pages/{n}")
    def page(n: int) -> dict[str, Any]:
        return {"n": n}

    with UvicornThread(app) as server:
        yield server, [seen, app_scopes]


@pytest.mark.integration
def test_asgi_scope_sampler_under_fastapi(
    fastapi_service: tuple[UvicornThread, list[Any]], inbox: Inbox
) -> None:
    server, (seen, app_scopes) = fastapi_service
    base = f"http://127.0.0.1:{server.port}"
    for pid in range(N_PROJECTS):
        assert _get_json(f"{base}/api/v1/projects/{pid}?page=2", {"X-Request-Id": f"r{pid}"})
    for n in range(N_OTHER):
        assert _get_json(f"{base}/pages/{n}") == {"n": n}
    assert otel_sentry.flush(10)
    _assert_sampled_as_chosen(inbox, "GET /api/v1/projects/{pid}", "GET /pages/{n}")

    project_contexts = [c for c in seen if c["asgi_scope"]["path"].startswith("/api/")]
    assert len(project_contexts) == len(app_scopes) == N_PROJECTS
    for pid, (context, app_scope) in enumerate(zip(project_contexts, app_scopes, strict=True)):
        # The scope the app got, the object itself: its path, query and headers.
        assert context["asgi_scope"] is app_scope
        assert app_scope["query_string"] == b"page=2"
        assert (b"x-request-id", f"r{pid}".encode()) in app_scope["headers"]
        assert "wsgi_environ" not in context
        tc = context["transaction_context"]
        # FastAPI's own telemetry starts the span before the route is matched: the name is the
        # URL's path, as sentry_sdk's ASGI middleware gives it (source "url"); the transaction
        # itself is named after the route (asserted above).
        assert (tc["op"], tc["name"], tc["source"]) == (
            "http.server",
            f"GET /api/v1/projects/{pid}",
            "url",
        )
        assert tc["trace_id"] == format(int(tc["trace_id"], 16), "032x")
        assert context["parent_sampled"] is None and context["parent_sample_rate"] is None


@pytest.mark.integration
def test_a_sampler_that_raises_drops_the_trace_not_the_request(inbox: Inbox, fresh: None) -> None:
    # The likeliest mistake after a move: a WSGI sampler under an ASGI server (KeyError).
    def wsgi_only(sampling_context: dict[str, Any]) -> float:
        return 1.0 if sampling_context["wsgi_environ"]["PATH_INFO"] else 0.0

    otel_sentry.init(dsn=inbox.dsn(), traces_sampler=wsgi_only, instrument=("fastapi",))
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/items/{n}")
    def item(n: int) -> dict[str, int]:
        return {"n": n}

    with UvicornThread(app) as server:
        for n in range(5):
            assert server.get(f"/items/{n}") == 200
        assert otel_sentry.flush(10)
    assert inbox.wait_for(lambda i: _discarded(i, "sample_rate", "transaction") == 5, 10)
    assert inbox.transactions() == []


# -- rebuilt request objects: no instrumentation handed one over -----------------------------

_SECRET_ATTRIBUTES = {
    "http.request.header.authorization": ("Bearer s3cr3t",),
    "http.request.header.cookie": ("session=s3cr3t",),
    "http.request.header.x_api_key": ("s3cr3t",),
    "http.request.header.x_request_id": ("req-7",),
}
_OLD_SEMCONV = {
    "http.method": "GET",
    "http.scheme": "https",
    "http.host": "api.example.com:8443",
    "net.host.port": 8443,
    "http.target": "/api/v1/projects/7?page=2",
    "http.flavor": "1.1",
    "http.user_agent": "curl/8",
    "net.peer.ip": "10.0.0.9",
    **_SECRET_ATTRIBUTES,
}
_STABLE_SEMCONV = {
    "http.request.method": "GET",
    "url.scheme": "https",
    "server.address": "api.example.com",
    "server.port": 8443,
    "url.path": "/api/v1/projects/7",
    "url.query": "page=2",
    "network.protocol.version": "1.1",
    "user_agent.original": "curl/8",
    "client.address": "10.0.0.9",
    **_SECRET_ATTRIBUTES,
}


def _context_for(attributes: dict[str, Any]) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []
    sampler = SentrySampler(traces_sampler=lambda c: bool(seen.append(c)) or 1.0)
    result = sampler.should_sample(
        None, 1 << 100, "GET /api/v1/projects/7", SpanKind.SERVER, attributes
    )
    assert result.decision.is_sampled()
    [context] = seen
    return context


@pytest.mark.parametrize("attributes", [_OLD_SEMCONV, _STABLE_SEMCONV], ids=["old", "stable"])
def test_rebuilt_environ_and_scope_carry_the_request_but_no_credentials(
    attributes: dict[str, Any],
) -> None:
    context = _context_for(attributes)
    environ = context["wsgi_environ"]
    assert {k: environ[k] for k in ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING")} == {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/api/v1/projects/7",
        "QUERY_STRING": "page=2",
    }
    assert environ["SERVER_NAME"] == "api.example.com"
    assert environ["SERVER_PORT"] == "8443"
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["HTTP_USER_AGENT"] == "curl/8"
    assert environ["HTTP_X_REQUEST_ID"] == "req-7"
    assert environ["REMOTE_ADDR"] == "10.0.0.9"
    scope = context["asgi_scope"]
    assert scope["type"] == "http" and scope["method"] == "GET"
    assert scope["path"] == "/api/v1/projects/7" and scope["query_string"] == b"page=2"
    headers = dict(scope["headers"])
    assert headers[b"user-agent"] == b"curl/8" and headers[b"x-request-id"] == b"req-7"
    # Credentials are never rebuilt, under any spelling.
    flat = repr(environ) + repr(scope)
    assert "s3cr3t" not in flat
    assert not [k for k in environ if "AUTH" in k or "COOKIE" in k]
    assert context["transaction_context"]["op"] == "http.server"


def test_a_root_that_is_not_a_request_gets_neither() -> None:
    context = _context_for({"messaging.system": "celery"})
    assert "wsgi_environ" not in context and "asgi_scope" not in context


@pytest.mark.integration
def test_seed_004_sampler_on_a_hand_made_server_span(inbox: Inbox, fresh: None) -> None:
    # A server span no contrib instrumentation started: the sampler reads a rebuilt environ.
    def traces_sampler(sampling_context: dict[str, Any]) -> float:
        if sampling_context["wsgi_environ"]["PATH_INFO"].startswith("/api/v1/projects/"):
            return 1.0
        return 0.0

    otel_sentry.init(dsn=inbox.dsn(), traces_sampler=traces_sampler, instrument=False)
    tracer = trace.get_tracer("hand-made")
    for path in ("/api/v1/projects/7", "/pages/1"):
        attributes = {**_STABLE_SEMCONV, "url.path": path, "http.route": path}
        with tracer.start_as_current_span(
            f"GET {path}", kind=SpanKind.SERVER, attributes=attributes
        ):
            pass
    assert otel_sentry.flush(10)
    [txn] = inbox.transactions()
    assert txn["transaction"] == "GET /api/v1/projects/7"
    assert _dsc(inbox, txn)["sample_rate"] == "1"
    assert "s3cr3t" not in repr(txn)  # the captured credentials were scrubbed on the way out too


def test_transaction_context_has_sentry_sdk_keys_and_the_parent() -> None:
    from opentelemetry.context import set_value
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
    from sentry_sdk.tracing import Transaction

    from otel_sentry._internal.sentry.dsc import CONTEXT_KEY, IncomingTrace

    parent = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    incoming = IncomingTrace(sampled=True, dsc={"sample_rate": "0.25", "sample_rand": "0.125"})
    ctx = set_value(CONTEXT_KEY, incoming, trace.set_span_in_context(NonRecordingSpan(parent)))
    seen: list[dict[str, Any]] = []
    sampler = SentrySampler(traces_sampler=lambda c: bool(seen.append(c)) or None)
    attributes = {"http.method": "GET", "http.target": "/x?q=1"}
    sampler.should_sample(ctx, 0xABC, "GET /x", SpanKind.SERVER, attributes)
    [context] = seen
    tc = context["transaction_context"]
    assert set(Transaction(name="x").to_json()) <= set(tc)
    assert tc["trace_id"] == f"{0xABC:032x}" and tc["parent_span_id"] == f"{0xDEF:016x}"
    assert (tc["op"], tc["name"], tc["source"]) == ("http.server", "GET /x", "url")
    assert context["parent_sampled"] is True and context["parent_sample_rate"] == 0.25
