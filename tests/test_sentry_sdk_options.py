"""sentry_sdk's own init() keywords, as otel_sentry.init() takes them (sdk_options.py).

Every option of the installed sentry_sdk is handled (ours, passed, mapped, inert or refused);
the seeds' ``sentry_sdk.init(...)`` calls work unchanged; and the options with a visible effect
are shown to take it, at the inbox.
"""

from __future__ import annotations

import ast
import logging
import os
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from sentry_sdk.consts import DEFAULT_OPTIONS
from sentry_sdk.scrubber import EventScrubber

import otel_sentry
from otel_sentry._internal import config
from otel_sentry._internal.options import InitOptions
from otel_sentry._internal.sdk_options import SDK_OPTIONS, markdown_table
from otel_sentry._internal.settings import NAMES
from otel_sentry.inbox import Inbox
from tests.sentry.test_proxy import _Proxy

pytestmark = pytest.mark.usefixtures("fresh")

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "sentry-sdk-options.md"
SEEDS = ROOT.parent / "shared" / "seeds"
START, END = "<!-- sentry-sdk-options:start -->\n", "<!-- sentry-sdk-options:end -->\n"


# -- every option is handled ------------------------------------------------------------------
def test_every_sentry_sdk_option_is_ours_or_declared() -> None:
    theirs = set(DEFAULT_OPTIONS)
    unhandled = theirs - set(NAMES) - set(SDK_OPTIONS)
    assert not unhandled, (
        f"sentry_sdk {sentry_sdk.VERSION} has options otel_sentry does not handle: "
        f"{sorted(unhandled)}. Fix: declare each in otel_sentry/_internal/sdk_options.py "
        "(and SentrySdkOptions), then regenerate docs/sentry-sdk-options.md."
    )
    assert not set(SDK_OPTIONS) - theirs, "declared options sentry_sdk no longer has"
    assert not set(SDK_OPTIONS) & set(NAMES)
    assert set(InitOptions.__annotations__) == set(NAMES) | set(SDK_OPTIONS)


def test_the_docs_table_is_the_declarations() -> None:
    text = DOC.read_text()
    assert START in text and END in text, "docs/sentry-sdk-options.md lost its markers"
    assert text[text.index(START) + len(START) : text.index(END)] == markdown_table(), (
        "docs/sentry-sdk-options.md differs from the declarations. Fix: replace the lines "
        "between its markers with `python -m otel_sentry._internal.sdk_options`."
    )


def _seed_init_calls() -> Iterator[tuple[str, dict[str, Any]]]:
    """Each ``sentry_sdk.init(...)`` of the seeds, with its keywords evaluated as its code
    block would (imports and functions of the block defined first; no variable set)."""
    for seed in sorted(SEEDS.glob("*.txt")):
        for block in re.findall(r"```python\n(.*?)```", seed.read_text(), re.S):
            try:
                tree = ast.parse(block)
            except SyntaxError:
                continue
            calls = [
                node
                for node in ast.walk(tree)
                if isinstance(node, ast.Call) and ast.unparse(node.func) == "sentry_sdk.init"
            ]
            if not calls:
                continue
            namespace: dict[str, Any] = {"os": os}
            for node in tree.body:
                plain_function = isinstance(node, ast.FunctionDef) and not node.decorator_list
                if isinstance(node, (ast.Import, ast.ImportFrom)) or plain_function:
                    exec(compile(ast.Module([node], []), seed.name, "exec"), namespace)
            for node in calls:
                if node.keywords:
                    kwargs = {
                        kw.arg: eval(
                            compile(ast.Expression(kw.value), seed.name, "eval"), namespace
                        )
                        for kw in node.keywords
                        if kw.arg is not None
                    }
                    yield seed.name, kwargs


def test_every_seed_init_call_is_accepted_unchanged(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = list(_seed_init_calls())
    assert len(calls) >= 5, calls  # the seeds have five; fewer means the parsing broke
    for name in ("SENTRY_DSN", "SENTRY_DSN_BACKEND"):
        monkeypatch.setenv(name, inbox.dsn())
    for seed, kwargs in calls:
        settings = otel_sentry.init(**kwargs, instrument=False)
        assert settings.dsn == inbox.dsn(), seed
        with trace.get_tracer("tests").start_as_current_span(f"seed {seed}"):
            sentry_sdk.capture_message(f"from {seed}")
        assert otel_sentry.flush(5)
        assert any(e.get("message") == f"from {seed}" for e in inbox.events()), seed
        otel_sentry.shutdown()


# -- their effect, at the inbox -----------------------------------------------------------------
@pytest.fixture
def tls_inbox() -> Iterator[Inbox]:
    with Inbox(port=0, tls=True) as running:
        yield running


def test_the_error_client_options_take_effect(
    tls_inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CA only through ca_certs: without it the certificate would not verify.
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    assert tls_inbox.ca_file is not None
    otel_sentry.init(
        dsn=tls_inbox.dsn(),
        instrument=False,
        sample_rate=1.0,
        max_breadcrumbs=2,
        attach_stacktrace=True,
        ignore_errors=[KeyError],
        http_proxy=None,
        https_proxy=None,
        ca_certs=tls_inbox.ca_file,
        server_name="web-7",
        dist="build-42",
        in_app_include=["tests"],
        shutdown_timeout=3,
        before_send=lambda event, hint: None if event.get("message") == "dropped" else event,
    )
    sentry_sdk.capture_message("dropped")  # before_send
    for i in range(5):
        sentry_sdk.add_breadcrumb(message=f"crumb {i}")
    with trace.get_tracer("tests").start_as_current_span("request"):
        for exc in (KeyError("ignored"), ValueError("kept")):
            try:
                raise exc
            except Exception as caught:
                sentry_sdk.capture_exception(caught)
        sentry_sdk.capture_message("with a stack")
    assert otel_sentry.flush(5)
    events = tls_inbox.events()
    types = [e["exception"]["values"][-1]["type"] for e in events if "exception" in e]
    assert types == ["ValueError"]  # ignore_errors
    assert [e for e in events if e.get("message") == "dropped"] == []  # before_send
    assert len(events) == 2
    [message] = [e for e in events if e.get("message") == "with a stack"]
    assert message["threads"]["values"][0]["stacktrace"]["frames"]  # attach_stacktrace
    for event in events:
        assert event["server_name"] == "web-7" and event["dist"] == "build-42"
        crumbs = [c["message"] for c in event["breadcrumbs"]["values"]]
        assert crumbs == ["crumb 3", "crumb 4"]  # max_breadcrumbs
    [txn] = tls_inbox.transactions()  # over TLS, verified with ca_certs alone
    assert txn["transaction"] == "request"
    assert txn["server_name"] == "web-7" and txn["dist"] == "build-42"  # as sentry_sdk's


def test_transactions_carry_the_host_name_as_sentry_sdk_s_do(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    with trace.get_tracer("tests").start_as_current_span("request"):
        sentry_sdk.capture_message("same host")
    assert otel_sentry.flush(5)
    [event] = inbox.wait_for_items("event")
    [txn] = inbox.transactions()
    assert txn["server_name"] == event.json["server_name"] == socket.gethostname()
    assert "dist" not in txn


def test_sample_rate_zero_sends_no_error_and_says_so(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), instrument=False, sample_rate=0.0)
    sentry_sdk.capture_message("sampled out")
    with trace.get_tracer("tests").start_as_current_span("still traced"):
        pass
    assert otel_sentry.flush(5)
    inbox.wait_for_items("transaction")
    otel_sentry.shutdown()  # client reports go out with the last envelopes
    assert inbox.events() == []
    assert inbox.counts.discarded.get(("sample_rate", "error")) == 1


def test_http_proxy_option_routes_envelopes_through_the_proxy(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    proxy = _Proxy()
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        otel_sentry.init(
            dsn=inbox.dsn(),
            instrument=False,
            http_proxy=f"http://127.0.0.1:{proxy.server_address[1]}",
        )
        for i in range(3):
            with trace.get_tracer("tests").start_as_current_span(f"via proxy {i}"):
                pass
        assert otel_sentry.flush(10)
        assert len(inbox.wait_for_items("transaction", 3)) == 3
        assert proxy.forwarded == inbox.counts.requests == 3
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_enable_tracing_false_keeps_no_trace_but_errors_still_go(inbox: Inbox) -> None:
    settings = otel_sentry.init(dsn=inbox.dsn(), instrument=False, enable_tracing=False)
    assert settings.traces_sample_rate == 0.0
    with trace.get_tracer("tests").start_as_current_span("not kept"):
        sentry_sdk.capture_message("error still sent")
    assert otel_sentry.flush(5)
    [event] = inbox.wait_for_items("event")
    assert event.json["message"] == "error still sent"
    assert inbox.transactions() == []


def test_trace_ignore_status_codes_drops_those_server_transactions(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), instrument=False, trace_ignore_status_codes={500, 503})
    tracer = trace.get_tracer("tests")
    for path, code in (("/broken", 500), ("/fine", 200), ("/down", 503)):
        attributes = {"http.request.method": "GET", "url.path": path}
        with tracer.start_as_current_span(f"GET {path}", kind=SpanKind.SERVER) as span:
            span.set_attributes({**attributes, "http.response.status_code": code})
    assert otel_sentry.flush(5)
    otel_sentry.shutdown()
    assert [t["transaction"] for t in inbox.transactions()] == ["GET /fine"]
    assert inbox.counts.discarded.get(("event_processor", "transaction")) == 2


def test_an_event_scrubber_denylist_scrubs_transactions_and_errors(inbox: Inbox) -> None:
    otel_sentry.init(
        dsn=inbox.dsn(), instrument=False, event_scrubber=EventScrubber(denylist=["acct_no"])
    )
    with trace.get_tracer("tests").start_as_current_span("billing") as span:
        span.set_attribute("acct_no", "12345678")
        sentry_sdk.set_context("billing", {"acct_no": "12345678", "plan": "pro"})
        sentry_sdk.capture_message("billing failed")
    assert otel_sentry.flush(5)
    [event] = inbox.wait_for_items("event")
    assert event.json["contexts"]["billing"] == {"acct_no": "[Filtered]", "plan": "pro"}
    [txn] = inbox.transactions()
    assert txn["contexts"]["trace"]["data"]["acct_no"] == "[Filtered]"
    assert "12345678" not in str([item.json for item in inbox.items()])


def test_include_source_context_false_leaves_source_lines_out(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), instrument=False, include_source_context=False)
    try:
        raise ValueError("no source")
    except ValueError as exc:
        sentry_sdk.capture_exception(exc)
    assert otel_sentry.flush(5)
    [event] = inbox.wait_for_items("event")
    frames = event.json["exception"]["values"][-1]["stacktrace"]["frames"]
    assert frames and all("context_line" not in f for f in frames)


def test_experiments_logs_become_the_logs_option() -> None:
    settings = config.resolve({"_experiments": {"enable_logs": True}}, {})
    assert settings.enable_logs is True
    assert settings.sentry_sdk_options["_experiments"] == {"enable_logs": True}


def test_an_inert_option_is_accepted_with_one_warning(
    inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="otel_sentry"):
        otel_sentry.init(
            dsn=inbox.dsn(),
            instrument=False,
            keep_alive=True,
            transport_queue_size=100,  # sentry_sdk's default: nothing to say
        )
    warned = [r.getMessage() for r in caplog.records if "no effect" in r.getMessage()]
    assert len(warned) == 1 and "keep_alive" in warned[0], warned


@pytest.mark.parametrize(
    ("name", "value", "fix"),
    [("instrumenter", "sentry", "remove instrumenter"), ("trace_lifecycle", "stream", "remove")],
)
def test_a_conflicting_option_is_refused_with_what_replaces_it(
    name: str, value: str, fix: str
) -> None:
    with pytest.raises(otel_sentry.ConfigError) as caught:
        otel_sentry.init(**{name: value})  # type: ignore[misc]
    assert f"{name}={value!r}" in str(caught.value) and fix in str(caught.value)
    config.resolve({name: {"instrumenter": "otel", "trace_lifecycle": "static"}[name]}, {})


def test_an_unknown_option_still_fails_with_a_suggestion() -> None:
    with pytest.raises(otel_sentry.ConfigError, match="did you mean 'max_breadcrumbs'"):
        config.resolve({"max_breadcrumb": 3}, {})


def test_changing_a_sentry_sdk_option_on_a_second_init_is_a_conflict(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), instrument=False, max_breadcrumbs=5)
    assert otel_sentry.init(dsn=inbox.dsn(), max_breadcrumbs=5) is not None
    with pytest.raises(otel_sentry.ConfigError, match="max_breadcrumbs"):
        otel_sentry.init(dsn=inbox.dsn(), max_breadcrumbs=6)
