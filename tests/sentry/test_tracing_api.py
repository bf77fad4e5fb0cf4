"""sentry_sdk's tracing API under ``otel_sentry.init()``, judged by what reaches the inbox.

The reference is sentry_sdk itself: the same user code runs once under a plain
``sentry_sdk.init(traces_sample_rate=1.0)`` and once under ``otel_sentry.init()``, each in a
process of its own, and the two transactions that arrive are compared field by field.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from opentelemetry import trace

import otel_sentry
from otel_sentry.inbox import Inbox
from tests.support.uvicorn import UvicornThread

pytestmark = pytest.mark.usefixtures("fresh")

_ROOT = Path(__file__).resolve().parents[2]

# User code written for sentry_sdk, unchanged between the two runs.
_USER_CODE = textwrap.dedent(
    """
    import sys
    import sentry_sdk

    mode, dsn = sys.argv[1], sys.argv[2]
    if mode == "plain":
        sentry_sdk.init(dsn=dsn, traces_sample_rate=1.0, environment="plain")
    else:
        import otel_sentry
        otel_sentry.init(dsn=dsn, traces_sample_rate=1.0, environment="bridged", instrument=False)

    with sentry_sdk.start_transaction(op="api.discovery", name="API Discovery") as transaction:
        transaction.set_tag("tenant", "acme")
        transaction.set_data("attempt", 2)
        transaction.set_measurement("schemas", 3, "none")
        with sentry_sdk.start_span(op="http.client", name="GET /openapi.json") as span:
            span.set_tag("host", "api.example.com")
            span.set_data("bytes", 2048)
        with sentry_sdk.start_span(op="serialize", name="parse schema") as span:
            span.set_data("paths", 12)
            child = span.start_child(op="validate", name="check refs")
            child.set_data("refs", 4)
            child.finish()

    if mode == "plain":
        sentry_sdk.flush(5)
    else:
        otel_sentry.shutdown(5)
    """
)
_USER_KEYS = frozenset({"bytes", "paths", "refs"})


def _run_user_code(mode: str, dsn: str, tmp_path: Path) -> None:
    script = tmp_path / "user_code.py"
    script.write_text(_USER_CODE)
    env = {**os.environ, "PYTHONPATH": str(_ROOT)}
    done = subprocess.run(
        [sys.executable, str(script), mode, dsn],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def _shape(txn: dict[str, Any]) -> dict[str, Any]:
    """What a user of the trace view sees, without ids, timings and SDK-added data."""
    root_id = txn["contexts"]["trace"]["span_id"]
    by_id = {s["span_id"]: s for s in txn["spans"]}
    spans = set()
    for span in txn["spans"]:
        parent = by_id.get(span["parent_span_id"])
        spans.add(
            (
                span["op"],
                span["description"],
                "root" if span["parent_span_id"] == root_id else parent and parent["op"],
                tuple(sorted((k, v) for k, v in (span.get("tags") or {}).items())),
                tuple(sorted((k, v) for k, v in span.get("data", {}).items() if k in _USER_KEYS)),
            )
        )
    return {
        "transaction": txn["transaction"],
        "source": txn["transaction_info"]["source"],
        "op": txn["contexts"]["trace"]["op"],
        "attempt": txn["contexts"]["trace"]["data"].get("attempt"),
        "tags": txn.get("tags"),
        "measurements": txn.get("measurements"),
        "spans": spans,
    }


@pytest.mark.integration
def test_the_same_code_arrives_as_it_does_under_sentry_sdk_alone(
    inbox: Inbox, tmp_path: Path
) -> None:
    _run_user_code("plain", inbox.dsn(), tmp_path)
    _run_user_code("bridged", inbox.dsn(), tmp_path)
    assert inbox.wait_for(lambda i: len(i.transactions()) == 2, 10), inbox.counts.summary()
    by_env = {t["environment"]: t for t in inbox.transactions()}
    plain, bridged = _shape(by_env["plain"]), _shape(by_env["bridged"])
    assert bridged == plain
    # and what the comparison is about, so that two empty transactions cannot pass it
    assert plain["transaction"] == "API Discovery" and plain["op"] == "api.discovery"
    assert plain["tags"] == {"tenant": "acme"}
    assert plain["measurements"] == {"schemas": {"value": 3, "unit": "none"}}
    assert {(op, parent) for op, _, parent, _, _ in plain["spans"]} == {
        ("http.client", "root"),
        ("serialize", "root"),
        ("validate", "serialize"),
    }
    assert inbox.problems == []


# -- in this process ------------------------------------------------------------------------------


def _transaction(inbox: Inbox, name: str) -> dict[str, Any]:
    otel_sentry.flush(5)
    assert inbox.wait_for(lambda i: any(t["transaction"] == name for t in i.transactions()), 10)
    [found] = [t for t in inbox.transactions() if t["transaction"] == name]
    return found


def _spans_by_description(txn: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["description"]: s for s in txn["spans"]}


@pytest.fixture
def service(inbox: Inbox, fresh: None) -> Iterator[UvicornThread]:
    otel_sentry.init(dsn=inbox.dsn(), traces_sample_rate=1.0, instrument=("fastapi",))
    from fastapi import FastAPI

    app = FastAPI()

    @sentry_sdk.trace
    def load_items() -> int:
        with sentry_sdk.start_span(op="db.query", name="SELECT items") as span:
            span.set_data("rows", 3)
        return 3

    @app.get("/items")
    def items() -> dict[str, int]:
        return {"count": load_items()}

    with UvicornThread(app) as server:
        yield server


@pytest.mark.integration
def test_a_traced_function_is_a_child_of_the_request_span(
    service: UvicornThread, inbox: Inbox
) -> None:
    assert service.get("/items") == 200
    txn = _transaction(inbox, "GET /items")
    assert txn["contexts"]["trace"]["op"] == "http.server"
    [traced] = [s for s in txn["spans"] if s["description"].endswith("load_items")]
    assert traced["op"] == "function"
    # The FastAPI instrumentation's own (send/receive) spans aside, the traced function hangs
    # off the request's server span, and the span it starts hangs off it.
    assert traced["parent_span_id"] == txn["contexts"]["trace"]["span_id"]
    query = _spans_by_description(txn)["SELECT items"]
    assert query["op"] == "db.query"
    assert query["parent_span_id"] == traced["span_id"]
    assert query["data"]["rows"] == 3
    assert inbox.problems == []


def test_sentry_and_otel_spans_nest_both_ways(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), traces_sample_rate=1.0, instrument=False)
    tracer = trace.get_tracer("tests")
    with sentry_sdk.start_transaction(op="task", name="sentry root") as root:
        with (
            tracer.start_as_current_span("otel middle"),
            sentry_sdk.start_span(op="step", name="sentry leaf"),
        ):
            pass
        assert sentry_sdk.get_current_span() == root
    with (
        tracer.start_as_current_span("otel root"),
        sentry_sdk.start_span(op="step", name="sentry middle"),
        tracer.start_as_current_span("otel leaf"),
    ):
        pass

    first = _transaction(inbox, "sentry root")
    spans = _spans_by_description(first)
    assert first["contexts"]["trace"]["op"] == "task"
    assert spans["otel middle"]["parent_span_id"] == first["contexts"]["trace"]["span_id"]
    assert spans["sentry leaf"]["parent_span_id"] == spans["otel middle"]["span_id"]
    assert spans["sentry leaf"]["op"] == "step"

    second = _transaction(inbox, "otel root")
    spans = _spans_by_description(second)
    assert spans["sentry middle"]["parent_span_id"] == second["contexts"]["trace"]["span_id"]
    assert spans["otel leaf"]["parent_span_id"] == spans["sentry middle"]["span_id"]
    assert inbox.problems == []


def test_tags_data_status_and_measurements_arrive(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), traces_sample_rate=1.0, instrument=False)
    with sentry_sdk.start_transaction(op="task", name="annotated") as transaction:
        transaction.set_tag("tenant", "acme")
        sentry_sdk.set_measurement("queue.depth", 7, "none")
        with sentry_sdk.start_span(op="http.client", name="GET /missing") as span:
            span.set_http_status(404)
        with sentry_sdk.start_span(op="work", name="cancelled step") as span:
            span.set_status("cancelled")
            span.set_data("items", [1, 2, 3])
            span.set_measurement("cpu", 12.5, "millisecond")
        with pytest.raises(ValueError), sentry_sdk.start_span(op="work", name="failing"):
            raise ValueError("boom")
        transaction.set_status("ok")

    txn = _transaction(inbox, "annotated")
    spans = _spans_by_description(txn)
    assert txn["tags"] == {"tenant": "acme"}
    assert txn["contexts"]["trace"]["status"] == "ok"
    assert txn["measurements"] == {"queue.depth": {"value": 7, "unit": "none"}}
    missing = spans["GET /missing"]
    assert missing["status"] == "not_found"
    assert missing["tags"] == {"http.status_code": "404"}
    assert missing["data"]["http.response.status_code"] == 404
    cancelled = spans["cancelled step"]
    assert cancelled["status"] == "cancelled"
    assert cancelled["data"]["items"] == [1, 2, 3]
    assert cancelled["measurements"] == {"cpu": {"value": 12.5, "unit": "millisecond"}}
    assert spans["failing"]["status"] == "internal_error"
    assert inbox.problems == []


def test_continue_trace_continues_the_incoming_trace(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), traces_sample_rate=1.0, instrument=False)
    trace_id, parent_id = "771a43a4192642f0b136d5159a501700", "b0e6f15b45c36b12"
    headers = {
        "sentry-trace": f"{trace_id}-{parent_id}-1",
        "baggage": f"sentry-trace_id={trace_id},sentry-public_key=frontend,"
        "sentry-sample_rate=0.5,sentry-sample_rand=0.25,sentry-release=web@2,"
        "sentry-sampled=true",
    }
    incoming = sentry_sdk.continue_trace(headers, op="queue.process", name="handle message")
    with sentry_sdk.start_transaction(incoming), sentry_sdk.start_span(op="step", name="inside"):
        pass

    txn = _transaction(inbox, "handle message")
    context = txn["contexts"]["trace"]
    assert context["trace_id"] == trace_id
    assert context["parent_span_id"] == parent_id
    assert context["op"] == "queue.process"
    assert _spans_by_description(txn)["inside"]["trace_id"] == trace_id
    [envelope] = [
        e for e in inbox.envelopes if e.envelope.headers.get("event_id") == txn["event_id"]
    ]
    dsc = envelope.envelope.headers["trace"]
    # The head's DSC travels on unchanged, as Sentry's SDKs pass it on.
    assert dsc["public_key"] == "frontend" and dsc["release"] == "web@2"
    assert dsc["sample_rate"] == "0.5" and dsc["sample_rand"] == "0.25"
    assert inbox.problems == []


def test_continue_trace_honours_an_upstream_no(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), traces_sample_rate=1.0, instrument=False)
    headers = {"sentry-trace": "771a43a4192642f0b136d5159a501701-b0e6f15b45c36b12-0"}
    with sentry_sdk.start_transaction(sentry_sdk.continue_trace(headers, name="dropped")) as txn:
        assert txn.sampled is False
    with sentry_sdk.start_transaction(name="kept"):
        pass
    _transaction(inbox, "kept")
    otel_sentry.shutdown(5)
    assert [t["transaction"] for t in inbox.transactions()] == ["kept"]


def test_a_transaction_inside_a_request_span_starts_a_trace_of_its_own(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), traces_sample_rate=1.0, instrument=False)
    tracer = trace.get_tracer("tests")
    with tracer.start_as_current_span("request") as request:
        with (
            sentry_sdk.start_transaction(op="task", name="nested"),
            sentry_sdk.start_span(op="step", name="nested step"),
        ):
            pass
        with sentry_sdk.start_span(op="step", name="request step"):
            # After it, the request's span is the root again for the helpers that write to it.
            otel_sentry.set_tag("after", "yes")

    outer, nested = _transaction(inbox, "request"), _transaction(inbox, "nested")
    assert outer["contexts"]["trace"]["trace_id"] == f"{request.get_span_context().trace_id:032x}"
    assert nested["contexts"]["trace"]["trace_id"] != outer["contexts"]["trace"]["trace_id"]
    assert "parent_span_id" not in nested["contexts"]["trace"]
    assert [s["description"] for s in nested["spans"]] == ["nested step"]
    assert [s["description"] for s in outer["spans"]] == ["request step"]
    assert outer["tags"] == {"after": "yes"}


def test_sentry_sdks_own_integration_spans_are_not_recorded_twice(inbox: Inbox) -> None:
    # urllib -> http.client, which sentry_sdk's Stdlib integration wraps in an auto.http.stdlib
    # span: the OpenTelemetry instrumentations record HTTP calls here, not sentry_sdk.
    import urllib.request

    otel_sentry.init(dsn=inbox.dsn(), traces_sample_rate=1.0, instrument=False)
    with sentry_sdk.start_transaction(op="task", name="calls out"):
        with urllib.request.urlopen(f"{inbox.url}/api/_inbox/health", timeout=5) as response:
            assert response.status == 200
        with sentry_sdk.start_span(op="step", name="mine"):
            pass
    txn = _transaction(inbox, "calls out")
    assert [s["description"] for s in txn["spans"]] == ["mine"]


def test_unsampled_transactions_send_nothing(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), traces_sample_rate=0.0, instrument=False)
    with sentry_sdk.start_transaction(op="task", name="unsampled") as transaction:
        assert transaction.sampled is False
        with sentry_sdk.start_span(op="step", name="child") as span:
            span.set_tag("k", "v")
    sentry_sdk.capture_message("marker")
    otel_sentry.flush(5)
    # The sampler saw the transaction and dropped it: it is counted, and nothing else arrived.
    assert inbox.wait_for(lambda i: i.counts.discarded.get(("sample_rate", "transaction")) == 1, 10)
    inbox.wait_for_items("event")
    otel_sentry.shutdown(5)
    assert inbox.transactions() == []


@pytest.mark.filterwarnings("ignore:`set_measurement\\(\\)` is deprecated:DeprecationWarning")
def test_the_api_works_and_sends_no_transaction_with_traces_off(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), export="none", instrument=False)

    @sentry_sdk.trace
    def step() -> str:
        return "done"

    with sentry_sdk.start_transaction(op="task", name="off") as transaction:
        transaction.set_tag("k", "v")
        with sentry_sdk.start_span(op="step", name="child") as span:
            span.set_data("x", 1)
            span.set_measurement("m", 1.0)
            span.set_status("ok")
            assert step() == "done"
        sentry_sdk.set_measurement("n", 2.0)
    sentry_sdk.continue_trace({"sentry-trace": "771a43a4192642f0b136d5159a501702-b0e6f15b45c36b12"})
    sentry_sdk.capture_message("errors still go")
    otel_sentry.flush(5)
    [event] = inbox.wait_for_items("event")
    assert event.json["message"] == "errors still go"
    otel_sentry.shutdown(5)
    assert inbox.transactions() == []


def test_after_shutdown_sentry_sdk_traces_on_its_own_again(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), traces_sample_rate=1.0, instrument=False)
    otel_sentry.shutdown()
    sentry_sdk.init(
        dsn=inbox.dsn(),
        traces_sample_rate=1.0,
        default_integrations=False,
        auto_enabling_integrations=False,
    )
    try:
        with (
            sentry_sdk.start_transaction(op="task", name="native"),
            sentry_sdk.start_span(op="step", name="child"),
        ):
            pass
        sentry_sdk.flush(5)
        [item] = inbox.wait_for_items("transaction")
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)
    assert item.json["sdk"]["name"] == "sentry.python"  # sentry_sdk's own, not the bridge's
    assert [s["description"] for s in item.json["spans"]] == ["child"]
