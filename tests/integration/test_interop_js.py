"""One trace across Sentry's JavaScript SDKs and a Python service instrumented by otel-sentry.

Real processes only: the FastAPI service of ``tests/interop/fastapi_service.py`` under uvicorn
with ``otel_sentry.init()``, Node scripts using the pinned ``@sentry/node``, and a page using
``@sentry/browser`` in headless Chromium, served from another origin than the API. The JS side
and the Python side report to two inboxes with different public keys, as a front end and a
back end report to two Sentry projects; the assertions are on what reached those inboxes and
what reached each service:

- a JS head's trace continues in Python: same trace id, the Python transaction's parent is the
  JS ``http.client`` span, and its DSC is the head's, frozen (rate, rand, release, environment,
  public key), whether or not the head also sends ``traceparent``;
- a JS head that decided not to sample gets no Python transaction;
- a Python head's trace continues in a Node service;
- a browser on another origin gets through the CORS preflight with its trace headers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from otel_sentry.inbox import Inbox
from tests.integration.interop_support import (
    INTEROP_DIR,
    ROOT,
    ServiceProcess,
    check_chromium,
    check_node_packages,
    dsc_from_baggage,
    interop_env,
    run_node,
    static_site,
)

pytestmark = pytest.mark.integration

JS_PUBLIC_KEY = "fedcba9876543210fedcba9876543210"
API_RELEASE = "interop-api@2.0.0"
API_ENVIRONMENT = "api"
JS_RELEASE = "js-client@1.0.0"
JS_ENVIRONMENT = "interop-js"
# The DSC entries dynamic sampling reads; a downstream service keeps the whole DSC unchanged.
HEAD_KEYS = (
    "trace_id",
    "public_key",
    "sample_rate",
    "sample_rand",
    "sampled",
    "release",
    "environment",
)

StartApi = Callable[..., ServiceProcess]


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def node() -> str:
    return check_node_packages()


@pytest.fixture
def js_inbox() -> Iterator[Inbox]:
    """The JS side's Sentry project: another inbox, with another public key."""
    with Inbox(port=0, public_key=JS_PUBLIC_KEY) as running:
        yield running


@pytest.fixture
def services() -> Iterator[ExitStack]:
    """Processes started by a test, stopped (and so flushed) when it ends, if it did not."""
    with ExitStack() as stack:
        yield stack


@pytest.fixture
def start_api(inbox: Inbox, services: ExitStack, tmp_path: Path) -> StartApi:
    """Starts the FastAPI service (otel-sentry reporting to ``inbox``) in its own process."""

    def start(allow_origins: str = "") -> ServiceProcess:
        env = interop_env(
            SENTRY_DSN=inbox.dsn(),
            SENTRY_RELEASE=API_RELEASE,
            SENTRY_ENVIRONMENT=API_ENVIRONMENT,
            OTEL_SERVICE_NAME="interop-api",
            PYTHONPATH=str(ROOT),
            INTEROP_ALLOW_ORIGINS=allow_origins,
        )
        service = ServiceProcess(
            "FastAPI service",
            lambda port: [
                sys.executable,
                "-m",
                "uvicorn",
                "tests.interop.fastapi_service:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=env,
            cwd=ROOT,
            log_dir=tmp_path,
        )
        return services.enter_context(service)

    return start


@pytest.fixture
def start_node_server(
    node: str, js_inbox: Inbox, services: ExitStack, tmp_path: Path
) -> Callable[[], ServiceProcess]:
    def start() -> ServiceProcess:
        env = interop_env(
            SENTRY_DSN=js_inbox.dsn(),
            SENTRY_RELEASE="js-server@1.0.0",
            SENTRY_ENVIRONMENT=JS_ENVIRONMENT,
        )
        service = ServiceProcess(
            "Node server",
            lambda port: [node, "server.mjs", str(port)],
            env=env,
            cwd=INTEROP_DIR,
            log_dir=tmp_path,
        )
        return services.enter_context(service)

    return start


@pytest.fixture(scope="session")
def browser_page(node: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page bundled from ``tests/interop/browser/`` with @sentry/browser."""
    out = tmp_path_factory.mktemp("interop-page")
    done = subprocess.run(
        [node, "build.mjs", str(out)],
        cwd=INTEROP_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"bundling the browser page failed:\n{done.stderr}"
    return out


@pytest.fixture(scope="session")
def chromium() -> str:
    return check_chromium()


# -- what the JS side sent -----------------------------------------------------------------------


def _node_client(
    js_inbox: Inbox, api: ServiceProcess, *, rate: str, traceparent: bool
) -> dict[str, Any]:
    env = interop_env(
        SENTRY_DSN=js_inbox.dsn(),
        SENTRY_TRACES_SAMPLE_RATE=rate,
        SENTRY_RELEASE=JS_RELEASE,
        SENTRY_ENVIRONMENT=JS_ENVIRONMENT,
        INTEROP_PROPAGATE_TRACEPARENT="1" if traceparent else "0",
    )
    return run_node("client.mjs", [f"{api.url}/echo"], env=env)


def _assert_headers_reached_python(js: dict[str, Any], *, traceparent: bool) -> dict[str, str]:
    """What the JS head sent is what its SDK documents, and it reached the Python service.

    This checks the harness and the JS SDK, not otel-sentry: when it fails, the JS side changed.
    """
    assert js["status"] == 200, f"the Python service answered {js['status']}: {js['body']}"
    received: dict[str, str] = js["body"]["received"]
    trace_id, span_id = js["trace_id"], js["client_span_id"]
    assert span_id, f"the JS side recorded no http.client span: {js['child_spans']}"
    flag = "1" if js["sampled"] else "0"
    assert received.get("sentry-trace") == f"{trace_id}-{span_id}-{flag}", received
    assert dsc_from_baggage(received.get("baggage", "")) == dsc_from_baggage(
        js["head"]["baggage"]
    ), f"the head's DSC is not what reached the Python service: {received}"
    if traceparent:
        assert received.get("traceparent") == f"00-{trace_id}-{span_id}-0{flag}", received
    else:
        assert "traceparent" not in received, received
    return received


def _assert_js_spans_arrived(js_inbox: Inbox, js: dict[str, Any]) -> None:
    """The head's own spans reached its project, on the same trace: the other half of the view."""
    wanted = {js["root_span_id"], js["client_span_id"]}

    def arrived(inbox: Inbox) -> bool:
        got = {s["span_id"] for s in inbox.spans() if s["trace_id"] == js["trace_id"]}
        return wanted <= got

    assert js_inbox.wait_for(arrived, 10), (
        f"the JS spans {sorted(wanted)} of trace {js['trace_id']} did not reach the JS inbox; "
        f"it received {js_inbox.counts.summary()}"
    )


# -- what the Python side sent -------------------------------------------------------------------


def _python_transactions(inbox: Inbox, name: str) -> list[dict[str, Any]]:
    return [t for t in inbox.transactions() if t.get("transaction") == name]


def _one_python_transaction(inbox: Inbox, name: str, api: ServiceProcess) -> dict[str, Any]:
    """The one transaction ``name`` (the service was stopped, so everything was flushed)."""
    found = _python_transactions(inbox, name)
    assert len(found) == 1, (
        f"expected one Python transaction {name!r}, got {len(found)}; the inbox has "
        f"{[t.get('transaction') for t in inbox.transactions()]}. Service output:\n"
        f"{api.log_tail()}"
    )
    return found[0]


def _envelope_dsc(inbox: Inbox, event_id: str) -> dict[str, str]:
    [envelope] = [e for e in inbox.envelopes if e.envelope.headers.get("event_id") == event_id]
    dsc: dict[str, str] = envelope.envelope.headers.get("trace") or {}
    return dsc


def _assert_python_continued(inbox: Inbox, txn: dict[str, Any], js: dict[str, Any]) -> None:
    trace = txn["contexts"]["trace"]
    head_dsc = dsc_from_baggage(js["head"]["baggage"])
    assert trace["trace_id"] == js["trace_id"], (
        f"the Python transaction started trace {trace['trace_id']} instead of continuing the JS "
        f"head's {js['trace_id']} (it received {js['body']['received']})"
    )
    assert trace.get("parent_span_id") == js["client_span_id"], (
        f"the Python transaction's parent is {trace.get('parent_span_id')}, not the JS "
        f"http.client span {js['client_span_id']}"
    )
    dsc = _envelope_dsc(inbox, txn["event_id"])
    kept = {k: dsc.get(k) for k in HEAD_KEYS}
    assert kept == {k: head_dsc.get(k) for k in HEAD_KEYS}, (
        f"the Python transaction's DSC is not the JS head's: sent {dsc}, head's {head_dsc}"
    )
    assert dsc == head_dsc, f"the head's DSC is frozen; Python sent {dsc}, head's {head_dsc}"


# -- Node -> Python ------------------------------------------------------------------------------

TRACEPARENT_MODES = pytest.mark.parametrize(
    "traceparent", [False, True], ids=["sentry-trace+baggage", "with-traceparent"]
)


@TRACEPARENT_MODES
def test_a_sampled_node_head_is_continued_by_python(
    inbox: Inbox, js_inbox: Inbox, start_api: StartApi, traceparent: bool
) -> None:
    api = start_api()
    js = _node_client(js_inbox, api, rate="1", traceparent=traceparent)
    assert js["sampled"] is True
    _assert_headers_reached_python(js, traceparent=traceparent)
    api.stop()
    txn = _one_python_transaction(inbox, "GET /echo", api)
    _assert_python_continued(inbox, txn, js)
    _assert_js_spans_arrived(js_inbox, js)
    assert inbox.problems == []


@TRACEPARENT_MODES
def test_an_unsampled_node_head_gets_no_python_transaction(
    inbox: Inbox, js_inbox: Inbox, start_api: StartApi, traceparent: bool
) -> None:
    api = start_api()
    js = _node_client(js_inbox, api, rate="0", traceparent=traceparent)
    assert js["sampled"] is False
    _assert_headers_reached_python(js, traceparent=traceparent)  # the service answered 200
    api.stop()
    sent = [
        (t.get("transaction"), t["contexts"]["trace"]["trace_id"]) for t in inbox.transactions()
    ]
    assert sent == [], (
        f"the JS head decided not to sample trace {js['trace_id']} "
        f"(sentry-trace {js['body']['received']['sentry-trace']}), yet the Python service sent "
        f"transactions {sent}"
    )
    assert [s for s in js_inbox.spans() if s["trace_id"] == js["trace_id"]] == []


# -- Python -> Node ------------------------------------------------------------------------------


def test_a_python_head_is_continued_by_node(
    inbox: Inbox,
    js_inbox: Inbox,
    start_api: StartApi,
    start_node_server: Callable[[], ServiceProcess],
) -> None:
    node_server = start_node_server()
    api = start_api()
    target = quote(f"{node_server.url}/downstream", safe="")
    with urllib.request.urlopen(f"{api.url}/call-node?url={target}", timeout=20) as response:
        answer = json.loads(response.read())
    assert answer["downstream_status"] == 200, answer
    node_saw: dict[str, Any] = answer["downstream"]
    api.stop()
    node_server.stop()

    txn = _one_python_transaction(inbox, "GET /call-node", api)
    trace_id = txn["contexts"]["trace"]["trace_id"]
    clients = [s for s in txn["spans"] if s.get("op") == "http.client"]
    assert len(clients) == 1, [(s.get("op"), s.get("description")) for s in txn["spans"]]
    client_span_id = clients[0]["span_id"]
    received = node_saw["received"]
    assert received.get("sentry-trace") == f"{trace_id}-{client_span_id}-1", (
        f"the Python http.client span {client_span_id} of trace {trace_id} sent {received}"
    )
    # W3C Level 2 allows more flags than "sampled" (OpenTelemetry sets "random" too).
    version, tp_trace, tp_span, flags = (received.get("traceparent") or "---").split("-")
    assert (version, tp_trace, tp_span) == ("00", trace_id, client_span_id), received
    assert int(flags or "0", 16) & 1 == 1, f"traceparent not flagged sampled: {received}"

    segments = [s for s in js_inbox.spans() if s.get("is_segment")]
    continued = [s for s in segments if s["trace_id"] == trace_id]
    assert len(continued) == 1, (
        f"expected one Node transaction on trace {trace_id}; Node sent segments "
        f"{[(s['name'], s['trace_id'], s.get('parent_span_id')) for s in segments]} after "
        f"receiving {received}"
    )
    assert continued[0].get("parent_span_id") == client_span_id
    [node_envelope] = [
        e
        for e in js_inbox.envelopes
        if (e.envelope.headers.get("trace") or {}).get("trace_id") == trace_id
    ]
    node_dsc = node_envelope.envelope.headers["trace"]
    python_dsc = _envelope_dsc(inbox, txn["event_id"])
    assert python_dsc["public_key"] == inbox.public_key  # the head's project, not Node's
    assert python_dsc["release"] == API_RELEASE
    # Frozen when first sent: every service of the trace reports the same DSC to Sentry.
    sent = dsc_from_baggage(received.get("baggage", ""))
    assert sent == python_dsc, (
        f"the DSC Python sent downstream ({sent}) differs from the one on its own transaction "
        f"({python_dsc})"
    )
    assert _numbers_as_floats(node_dsc) == _numbers_as_floats(python_dsc), (
        f"Node reported DSC {node_dsc}, Python's transaction {python_dsc}"
    )
    assert inbox.problems == []


def _numbers_as_floats(dsc: dict[str, str]) -> dict[str, Any]:
    """@sentry/node re-serializes an incoming rate and rand as JS numbers ("0.953460" becomes
    "0.95346"): the same value to Sentry, so compare those as numbers."""
    return {k: float(v) if k in ("sample_rate", "sample_rand") else v for k, v in dsc.items()}


# -- browser -> Python, cross-origin -------------------------------------------------------------


@TRACEPARENT_MODES
def test_a_browser_on_another_origin_is_continued_by_python(
    inbox: Inbox,
    js_inbox: Inbox,
    start_api: StartApi,
    browser_page: Path,
    chromium: str,
    traceparent: bool,
) -> None:
    with static_site(browser_page) as origin:
        api = start_api(allow_origins=origin)
        assert origin != api.url
        query = urlencode(
            {
                "dsn": js_inbox.dsn(),
                "api": f"{api.url}/echo",
                "rate": "1",
                "traceparent": "1" if traceparent else "0",
            }
        )
        js = run_node(
            "chromium.mjs",
            [f"{origin}/page.html?{query}"],
            env=interop_env(CHROMIUM=chromium),
            timeout=60,
        )
    assert "error" not in js, (
        f"the page failed: {js['error']}\nwhat the browser said:\n{js.get('_stderr', '')}"
    )
    assert js["sampled"] is True
    # The headers reached the API, so the preflight allowed them.
    _assert_headers_reached_python(js, traceparent=traceparent)
    api.stop()
    txn = _one_python_transaction(inbox, "GET /echo", api)
    _assert_python_continued(inbox, txn, js)
    _assert_js_spans_arrived(js_inbox, js)
    assert inbox.problems == []
