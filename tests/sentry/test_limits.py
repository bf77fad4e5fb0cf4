"""Hostile input: whatever the app puts in spans and errors, Sentry gets items it accepts."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
import sentry_sdk
from opentelemetry import trace

import otel_sentry
from otel_sentry._internal.sentry.limits import MAX_ITEM_BYTES, fit_event, fit_transaction
from otel_sentry.inbox import Inbox

pytestmark = pytest.mark.usefixtures("fresh")


def _too_big(inbox: Inbox) -> list[str]:
    return [p for p in inbox.problems if "over Sentry's 1 MiB limit" in p or "invalid" in p]


def test_huge_attributes_and_many_big_spans_still_make_one_valid_transaction(
    inbox: Inbox,
) -> None:
    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    tracer = trace.get_tracer("hostile")
    with tracer.start_as_current_span("upload") as root:
        root.set_attribute("payload", "x" * (5 << 20))  # 5 MiB
        root.set_attribute("raw", b"\xff\xfe\x00not utf-8")  # type: ignore[arg-type]
        root.set_attribute("keep", "neighbour")
        for i in range(300):
            with tracer.start_as_current_span(f"step {i}") as child:
                child.set_attribute("db.statement", "SELECT " + "y" * 20_000)
    assert otel_sentry.flush(10)
    [item] = inbox.wait_for_items("transaction", timeout=10)
    assert len(item.payload) <= MAX_ITEM_BYTES
    event = item.json
    assert event["transaction"] == "upload"
    assert event["contexts"]["trace"]["data"]["keep"] == "neighbour"
    assert len(event["contexts"]["trace"]["data"]["payload"]) <= 16_384
    assert 0 < len(event["spans"]) <= 300
    dropped = 300 - len(event["spans"])
    otel_sentry.flush(5)
    if dropped:
        assert inbox.wait_for(
            lambda i: dict(i.counts.discarded).get(("buffer_overflow", "span"), 0) == dropped, 10
        ), dict(inbox.counts.discarded)
    assert _too_big(inbox) == []


def test_huge_messages_cyclic_causes_and_breadcrumb_floods_are_trimmed(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    for _ in range(500):
        sentry_sdk.add_breadcrumb(
            message="z" * 100_000, data={f"k{i}": "v" * 50_000 for i in range(20)}
        )
    first, second = ValueError("a" * (3 << 20)), KeyError("b")
    first.__cause__, second.__cause__ = second, first  # a cause chain that loops
    done = threading.Event()

    def capture() -> None:
        try:
            raise first
        except ValueError:
            sentry_sdk.capture_exception()
        done.set()

    thread = threading.Thread(target=capture, daemon=True)
    thread.start()
    assert done.wait(20), "capturing an exception with a cyclic cause hung"
    assert otel_sentry.flush(10)
    [item] = inbox.wait_for_items("event", timeout=10)
    assert len(item.payload) <= MAX_ITEM_BYTES
    values = item.json["exception"]["values"]
    assert {v["type"] for v in values} == {"ValueError", "KeyError"}
    assert all(len(v.get("value", "")) <= 8192 for v in values)
    assert _too_big(inbox) == []


def test_self_referencing_objects_in_log_records_never_crash(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    loop: dict[str, Any] = {"name": "loop"}
    loop["self"] = loop
    logging.getLogger("hostile").error("bad state %r", loop, extra={"state": loop})
    assert otel_sentry.flush(10)
    [item] = inbox.wait_for_items("event", timeout=10)
    assert "bad state" in str(item.json.get("logentry") or item.json.get("message"))
    assert _too_big(inbox) == []


def test_fit_transaction_leaves_a_small_one_alone() -> None:
    event = {"spans": [{"data": {"a": "b" * 10}}], "contexts": {"trace": {"data": {}}}}
    assert fit_transaction(event, 1000) == 0
    assert event["spans"][0]["data"]["a"] == "b" * 10


def test_fit_event_drops_breadcrumb_data_before_anything_else() -> None:
    event: dict[str, Any] = {
        "message": "kept",
        "breadcrumbs": {"values": [{"message": "m", "data": {"x": "y" * 20_000}}] * 60},
    }
    event["breadcrumbs"]["values"] = [dict(c) for c in event["breadcrumbs"]["values"]]
    fitted = fit_event(event)
    assert fitted["message"] == "kept"
    assert len(fitted["breadcrumbs"]["values"]) == 60
    assert all("data" not in c for c in fitted["breadcrumbs"]["values"])
