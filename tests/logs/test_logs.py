"""Log lines -> what reaches the inbox: one event per ERROR, breadcrumbs in order, trace ids.

Everything runs against a real inbox over HTTP with sentry_sdk's default integrations on
(LoggingIntegration included), as ``otel_sentry.init()`` sets them up.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
import structlog
from opentelemetry import trace

import otel_sentry
from otel_sentry._internal.config import ConfigError
from otel_sentry._internal.logs import SentryRouter, add_trace_context
from otel_sentry.inbox import Inbox


@pytest.fixture
def sentry(inbox: Inbox, fresh: None) -> Iterator[Inbox]:
    otel_sentry.init(dsn=inbox.dsn(), instrument=False, release="logs@1")
    with sentry_sdk.isolation_scope():
        yield inbox


def _events(inbox: Inbox, at_least: int) -> list[dict[str, Any]]:
    """Every event, after the transport drained: a duplicate would be here too."""
    if at_least:
        inbox.wait_for_items("event", at_least, timeout=10)
    otel_sentry.flush(5)
    return inbox.events()


def _crumbs(event: dict[str, Any], category: str) -> list[dict[str, Any]]:
    values = (event.get("breadcrumbs") or {}).get("values") or []
    return [c for c in values if c.get("category") == category]


def _ids(span: trace.Span) -> tuple[str, str]:
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def _charge(amount: int) -> None:
    _validate(amount)


def _validate(amount: int) -> None:
    raise ValueError(f"amount {amount} is negative")


def _structlog(
    router: SentryRouter, where: str, out: io.StringIO
) -> structlog.typing.FilteringBoundLogger:
    chain: list[Any] = [structlog.processors.add_log_level, add_trace_context]
    if where == "before":
        chain += [router, structlog.processors.format_exc_info]
    else:
        chain += [structlog.processors.format_exc_info, router]
    chain.append(structlog.processors.JSONRenderer())
    logger: structlog.typing.FilteringBoundLogger = structlog.wrap_logger(
        structlog.PrintLogger(out), processors=chain
    )
    return logger.bind(logger="checkout")


@pytest.mark.parametrize("where", ["before", "after"])
def test_error_in_a_span_is_one_event_with_frames_trace_and_five_breadcrumbs(
    sentry: Inbox, where: str
) -> None:
    out = io.StringIO()
    log = _structlog(SentryRouter(), where, out)
    with trace.get_tracer("test").start_as_current_span("POST /checkout") as span:
        for step in range(5):
            log.info("checkout step", step=step, cart="c-9")
        try:
            _charge(-3)
        except ValueError:
            log.exception("charge failed", order=42)
    [event] = _events(sentry, 1)
    [exc] = event["exception"]["values"]
    assert (exc["type"], exc["value"]) == ("ValueError", "amount -3 is negative")
    functions = [f["function"] for f in exc["stacktrace"]["frames"]]
    assert functions[-2:] == ["_charge", "_validate"]
    assert event["level"] == "error"
    assert event["logger"] == "checkout"
    assert event["logentry"]["message"] == "charge failed"
    assert event["contexts"]["log"] == {"order": 42}
    trace_id, span_id = _ids(span)
    assert event["contexts"]["trace"]["trace_id"] == trace_id
    assert event["contexts"]["trace"]["span_id"] == span_id
    crumbs = _crumbs(event, "checkout")
    assert [c["message"] for c in crumbs] == ["checkout step"] * 5
    assert [c["data"] for c in crumbs] == [{"step": i, "cart": "c-9"} for i in range(5)]
    assert {c["level"] for c in crumbs} == {"info"}
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["trace_id"] for line in lines] == [trace_id] * 6
    assert lines[-1]["sentry_event_id"] == event["event_id"]
    assert sentry.problems == []


def test_tags_skip_and_ignored_loggers(sentry: Inbox) -> None:
    out = io.StringIO()
    router = SentryRouter(tag_keys=("tenant",), ignore_loggers=("noisy",))
    log = _structlog(router, "before", out)
    log.error("quota exceeded", tenant="acme", used=11)
    log.error("expected, not an issue", sentry_skip=True)
    log.bind(logger="noisy.poller").error("poll failed")
    log.bind(logger="noisy").error("poll failed again")
    log.debug("below the breadcrumb level")
    [event] = _events(sentry, 1)
    assert event["tags"]["tenant"] == "acme"
    assert event["contexts"]["log"] == {"tenant": "acme", "used": 11}
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 5  # every line is still printed
    assert all("sentry_skip" not in line for line in lines)
    assert ["sentry_event_id" in line for line in lines] == [True, False, False, False, False]


def _configured(before_init: bool, inbox: Inbox, out: io.StringIO) -> None:
    if before_init:
        otel_sentry.configure_logging(stream=out, renderer="json")
        otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    else:
        otel_sentry.init(dsn=inbox.dsn(), instrument=False)
        otel_sentry.configure_logging(stream=out, renderer="json")


@pytest.mark.parametrize("before_init", [False, True], ids=["init-first", "logging-first"])
def test_stdlib_and_structlog_errors_are_one_event_each_with_logging_integration_on(
    inbox: Inbox, fresh: None, before_init: bool
) -> None:
    out = io.StringIO()
    _configured(before_init, inbox, out)
    assert sentry_sdk.get_client().get_integration("logging") is not None
    with sentry_sdk.isolation_scope():
        logging.getLogger("billing").info("card checked", extra={"order": 7})
        try:
            _charge(-1)
        except ValueError:
            logging.getLogger("billing").exception("card declined", extra={"order": 7})
        structlog.get_logger("shipping").error("no courier", order=7)
    events = _events(inbox, 2)
    assert sorted(e["logger"] for e in events) == ["billing", "shipping"]
    billing = next(e for e in events if e["logger"] == "billing")
    assert billing["exception"]["values"][0]["type"] == "ValueError"
    assert billing["contexts"]["log"] == {"order": 7}
    shipping = next(e for e in events if e["logger"] == "shipping")
    # One breadcrumb per INFO record, not one from us and one from LoggingIntegration.
    assert [c["message"] for c in _crumbs(shipping, "billing")] == ["card checked", "card declined"]
    assert [c.get("data") for c in _crumbs(shipping, "billing")] == [{"order": 7}] * 2
    assert inbox.problems == []


def test_without_routing_logging_integration_stays_the_one_owner(inbox: Inbox, fresh: None) -> None:
    out = io.StringIO()
    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    otel_sentry.configure_logging(stream=out, renderer="json", to_sentry=False)
    logging.getLogger("billing").error("card declined")
    [event] = _events(inbox, 1)
    assert event["logentry"]["formatted"] == "card declined"
    assert json.loads(out.getvalue().splitlines()[-1])["event"] == "card declined"


def test_every_line_in_a_span_carries_its_trace_id_and_none_outside(
    inbox: Inbox, fresh: None
) -> None:
    out = io.StringIO()
    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    otel_sentry.configure_logging(stream=out, renderer="json")
    logging.getLogger("outside").info("before the request")
    with trace.get_tracer("test").start_as_current_span("GET /items") as span:
        structlog.get_logger("app").info("loading", item=1)
        logging.getLogger("payments.gateway").info("authorized")
        logging.getLogger("uvicorn.access").info('"GET /items HTTP/1.1" 200')
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    trace_id, span_id = _ids(span)
    assert "trace_id" not in lines[0]
    assert [(line["logger"], line["trace_id"], line["span_id"]) for line in lines[1:]] == [
        ("app", trace_id, span_id),
        ("payments.gateway", trace_id, span_id),
        ("uvicorn.access", trace_id, span_id),
    ]
    assert all(line["trace_sampled"] is True for line in lines[1:])


def test_span_ids_follow_nested_spans_line_by_line(sentry: Inbox) -> None:
    out = io.StringIO()
    log = _structlog(SentryRouter(), "before", out)
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("GET /order") as parent:
        log.info("parent")
        with tracer.start_as_current_span("SELECT") as child:
            log.info("child")
        log.info("parent again")
    log.info("outside")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    ids = [(line.get("trace_id"), line.get("span_id")) for line in lines]
    assert ids == [_ids(parent), _ids(child), _ids(parent), (None, None)]


def test_threads_keep_their_breadcrumbs(sentry: Inbox) -> None:
    log = _structlog(SentryRouter(), "before", io.StringIO())

    def worker(n: int) -> None:
        with sentry_sdk.isolation_scope():
            for step in range(5):
                log.info("step", worker=n, step=step)
            log.error("done", worker=n)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events = _events(sentry, 16)
    assert sorted(e["contexts"]["log"]["worker"] for e in events) == list(range(16))
    for event in events:
        crumbs = _crumbs(event, "checkout")
        n = event["contexts"]["log"]["worker"]
        assert [c["data"] for c in crumbs] == [{"worker": n, "step": s} for s in range(5)]


def test_bad_levels_name_the_setting() -> None:
    with pytest.raises(ConfigError, match="level='LOUD'"):
        otel_sentry.configure_logging(level="LOUD")
    with pytest.raises(ConfigError, match="event_level='sometimes'"):
        SentryRouter(event_level="sometimes")
    with pytest.raises(ConfigError, match="renderer='xml'"):
        otel_sentry.configure_logging(renderer="xml")  # type: ignore[arg-type]


def test_sentry_logs_carry_the_span_ids_when_enabled(inbox: Inbox, fresh: None) -> None:
    out = io.StringIO()
    otel_sentry.init(dsn=inbox.dsn(), instrument=False, enable_logs=True)
    otel_sentry.configure_logging(stream=out, renderer="json", logs_level="WARNING")
    with trace.get_tracer("test").start_as_current_span("GET /stock") as span:
        structlog.get_logger("stock").info("checked", sku="a-1")  # below logs_level
        structlog.get_logger("stock").warning("low stock", sku="a-1", left=2)
        logging.getLogger("stock.db").error("replica lag", extra={"lag_s": 4.5})
    otel_sentry.flush(5)
    assert inbox.wait_for(lambda i: len(i.logs()) >= 2, 10)
    otel_sentry.flush(5)
    logs = inbox.logs()
    trace_id, span_id = _ids(span)
    assert [(r["body"], r["level"]) for r in logs] == [
        ("low stock", "warn"),
        ("replica lag", "error"),
    ]
    assert {(r["trace_id"], r.get("span_id")) for r in logs} == {(trace_id, span_id)}
    attrs = [r["attributes"] for r in logs]
    assert attrs[0]["sku"]["value"] == "a-1" and attrs[0]["left"]["value"] == 2
    assert attrs[1]["lag_s"]["value"] == 4.5
    assert attrs[1]["logger.name"]["value"] == "stock.db"
    assert len(inbox.events()) == 1  # the ERROR, once
    assert inbox.problems == []


def test_breadcrumbs_pass_before_breadcrumb_and_keep_sentrys_cap(inbox: Inbox, fresh: None) -> None:
    def before_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
        if crumb.get("data", {}).get("step") == 120:
            return None
        crumb["message"] = crumb["message"].upper()
        return crumb

    otel_sentry.init(dsn=inbox.dsn(), instrument=False, before_breadcrumb=before_breadcrumb)
    log = _structlog(SentryRouter(), "before", io.StringIO())
    with sentry_sdk.isolation_scope():
        for step in range(150):
            log.info("tick", step=step)
        log.error("stopped")
    [event] = _events(inbox, 1)
    crumbs = _crumbs(event, "checkout")
    assert len(crumbs) == 100  # sentry_sdk's max_breadcrumbs: the newest are kept
    assert [c["data"]["step"] for c in crumbs] == [s for s in range(49, 150) if s != 120]
    assert {c["message"] for c in crumbs} == {"TICK"}


def test_exception_object_logged_outside_its_except_block(sentry: Inbox) -> None:
    try:
        _charge(-5)
    except ValueError as caught:
        failure = caught
    out = io.StringIO()
    before = _structlog(SentryRouter(), "before", out)
    before.error("later, with the object", exc_info=failure)
    [event] = _events(sentry, 1)
    [exc] = event["exception"]["values"]
    assert exc["value"] == "amount -5 is negative"
    assert [f["function"] for f in exc["stacktrace"]["frames"]][-2:] == ["_charge", "_validate"]


def test_console_renderer_for_development(inbox: Inbox, fresh: None) -> None:
    out = io.StringIO()
    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    otel_sentry.configure_logging(stream=out, renderer="console")
    with trace.get_tracer("test").start_as_current_span("GET /") as span:
        structlog.get_logger("app").info("ready", port=8000)
    text = out.getvalue()
    assert "ready" in text and "port" in text and "8000" in text
    assert _ids(span)[0] in text
    assert not text.lstrip().startswith("{")
