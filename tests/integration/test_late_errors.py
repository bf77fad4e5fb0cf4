"""Errors captured after the span they were raised in ended still land on that span's trace.

Each script runs as a real subprocess with ``SENTRY_DSN`` pointing at the inbox, and raises inside
OpenTelemetry spans; the error is captured only once those spans ended: by ``sys.excepthook``,
by sentry_sdk's ``ThreadingIntegration``, by asyncio's "Task exception was never retrieved"
log line, or by ``capture_exception(exc)`` at the end of a batch. At the inbox, the error's
``contexts.trace`` names the span the exception was raised in, that span's transaction arrived
too, and both envelopes carry the same DSC. Without ``raised_in.py`` every one of these errors
got a fresh trace id of its own (checked once by disabling the hook).
"""

from __future__ import annotations

import asyncio
import os
import pickle
import subprocess
import sys
import textwrap
from typing import Any

import pytest
import sentry_sdk
from opentelemetry import trace

import otel_sentry
from otel_sentry.inbox import Inbox
from tests.integration.launched import ROOT

pytestmark = pytest.mark.integration

_PRELUDE = """\
import otel_sentry
otel_sentry.init()
from opentelemetry import trace
tracer = trace.get_tracer("late-errors")
"""


def _run(inbox: Inbox, body: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"],  # tests/conftest.py: exit_spool_home
        "SENTRY_DSN": inbox.dsn(),
        "SENTRY_RELEASE": "late@1",
    }
    script = _PRELUDE + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", script],
        check=False,  # the return code is asserted: some scripts die on purpose
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _arrived(inbox: Inbox, events: int, transactions: int) -> None:
    # The process has exited: what it flushed at exit is already here, or never comes.
    assert inbox.wait_for(
        lambda i: len(i.events()) >= events and len(i.transactions()) >= transactions, 5
    ), f"events={len(inbox.events())} transactions={len(inbox.transactions())}"
    assert inbox.problems == []


def _transaction(inbox: Inbox, name: str) -> dict[str, Any]:
    [txn] = [t for t in inbox.transactions() if t["transaction"] == name]
    return txn


def _span_id(txn: dict[str, Any], description: str) -> str:
    [span] = [s for s in txn["spans"] if s.get("description") == description]
    assert span["trace_id"] == txn["contexts"]["trace"]["trace_id"]
    return str(span["span_id"])


def _dsc_of(inbox: Inbox, item_type: str, trace_id: str) -> dict[str, Any]:
    [dsc] = [
        item.envelope.envelope.headers["trace"]
        for item in inbox.items(item_type)
        if isinstance(item.json, dict) and item.json["contexts"]["trace"]["trace_id"] == trace_id
    ]
    assert isinstance(dsc, dict)
    return dsc


def _assert_on(inbox: Inbox, error: dict[str, Any], txn: dict[str, Any], span_id: str) -> None:
    trace_id = txn["contexts"]["trace"]["trace_id"]
    assert error["contexts"]["trace"]["trace_id"] == trace_id
    assert error["contexts"]["trace"]["span_id"] == span_id
    assert error["release"] == txn["release"] == "late@1"
    # One trace, one DSC: the error's envelope header is the transaction's.
    assert _dsc_of(inbox, "event", trace_id) == _dsc_of(inbox, "transaction", trace_id)
    assert _dsc_of(inbox, "event", trace_id)["trace_id"] == trace_id


def test_a_script_dying_in_a_span_reports_the_error_on_that_span(inbox: Inbox) -> None:
    done = _run(
        inbox,
        """
        with tracer.start_as_current_span("nightly-job"):
            raise ValueError("row 17 is malformed")
        """,
    )
    assert done.returncode == 1
    assert "ValueError: row 17 is malformed" in done.stderr
    _arrived(inbox, events=1, transactions=1)
    txn = _transaction(inbox, "nightly-job")
    assert txn["contexts"]["trace"]["status"] == "internal_error"
    [error] = inbox.events()
    assert error["exception"]["values"][-1]["mechanism"] == {"type": "excepthook", "handled": False}
    _assert_on(inbox, error, txn, txn["contexts"]["trace"]["span_id"])


def test_a_thread_dying_in_a_nested_span_reports_the_innermost_span(inbox: Inbox) -> None:
    done = _run(
        inbox,
        """
        import threading

        def work():
            with tracer.start_as_current_span("sync-accounts"):
                with tracer.start_as_current_span("fetch-page"):
                    raise ConnectionError("upstream closed")

        worker = threading.Thread(target=work)
        worker.start()
        worker.join()
        """,
    )
    assert done.returncode == 0, done.stderr
    assert "ConnectionError: upstream closed" in done.stderr  # threading.excepthook still ran
    _arrived(inbox, events=1, transactions=1)
    txn = _transaction(inbox, "sync-accounts")
    [error] = inbox.events()
    assert error["exception"]["values"][-1]["mechanism"]["type"] == "threading"
    _assert_on(inbox, error, txn, _span_id(txn, "fetch-page"))
    assert error["contexts"]["trace"]["parent_span_id"] == txn["contexts"]["trace"]["span_id"]


def test_an_asyncio_task_exception_never_retrieved_reports_the_span(inbox: Inbox) -> None:
    # otel-sentry leaves sentry_sdk's AsyncioIntegration off (it needs a running loop at init):
    # asyncio logs the lost exception when the task is collected, LoggingIntegration captures it.
    done = _run(
        inbox,
        """
        import asyncio

        async def refresh_cache():
            with tracer.start_as_current_span("refresh-cache"):
                with tracer.start_as_current_span("download"):
                    raise TimeoutError("mirror too slow")

        async def main():
            task = asyncio.get_running_loop().create_task(refresh_cache())
            await asyncio.wait([task])
            del task  # collected here: "Task exception was never retrieved"

        asyncio.run(main())
        """,
    )
    assert done.returncode == 0, done.stderr
    assert "Task exception was never retrieved" in done.stderr
    _arrived(inbox, events=1, transactions=1)
    txn = _transaction(inbox, "refresh-cache")
    [error] = inbox.events()
    assert error["exception"]["values"][-1]["type"] == "TimeoutError"
    _assert_on(inbox, error, txn, _span_id(txn, "download"))


def test_failures_reported_after_a_batch_land_on_each_items_span(inbox: Inbox) -> None:
    done = _run(
        inbox,
        """
        import sentry_sdk

        class ImportFailed(Exception):
            pass

        failures = []
        for item in ("a", "b"):
            with tracer.start_as_current_span(f"import {item}"):
                try:
                    with tracer.start_as_current_span("parse"):
                        raise ValueError(f"bad item {item}")
                except ValueError as exc:
                    failures.append(exc)
        sentry_sdk.capture_exception(failures[0])
        try:
            raise ImportFailed("b") from failures[1]  # wrapped, outside every span
        except ImportFailed as exc:
            sentry_sdk.capture_exception(exc)
        """,
    )
    assert done.returncode == 0, done.stderr
    _arrived(inbox, events=2, transactions=2)
    by_type = {e["exception"]["values"][-1]["type"]: e for e in inbox.events()}
    for name, error_type in (("import a", "ValueError"), ("import b", "ImportFailed")):
        txn = _transaction(inbox, name)
        _assert_on(inbox, by_type[error_type], txn, _span_id(txn, "parse"))
    trace_ids = {e["contexts"]["trace"]["trace_id"] for e in inbox.events()}
    assert len(trace_ids) == 2


@pytest.mark.usefixtures("fresh")
def test_an_error_captured_inside_a_span_is_that_spans_error(inbox: Inbox) -> None:
    """A failed future awaited by two requests: each request's error is on its own span."""
    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    tracer = trace.get_tracer("late-errors")
    ids: dict[str, tuple[str, str]] = {}

    async def load() -> None:
        with tracer.start_as_current_span("load"):
            raise LookupError("price list missing")

    async def handle(request: str, shared: list[asyncio.Future[None]]) -> None:
        with tracer.start_as_current_span(request) as span:
            ctx = span.get_span_context()
            ids[request] = (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")
            if not shared:
                shared.append(asyncio.ensure_future(load()))
            try:
                await shared[0]  # the same exception object, raised in each request
            except LookupError as exc:
                sentry_sdk.capture_exception(exc)

    async def serve() -> None:
        shared: list[asyncio.Future[None]] = []
        for request in ("first", "second"):  # each in a task (a context) of its own
            await asyncio.get_running_loop().create_task(handle(request, shared))

    asyncio.run(serve())
    otel_sentry.flush(5)
    _arrived(inbox, events=2, transactions=2)
    first_error, second_error = (e["contexts"]["trace"] for e in inbox.events())
    # Captured while each request's span is current: that span, as in sentry_sdk, not `load`.
    assert (first_error["trace_id"], first_error["span_id"]) == ids["first"]
    assert (second_error["trace_id"], second_error["span_id"]) == ids["second"]


@pytest.mark.usefixtures("fresh")
def test_an_exception_that_left_a_span_still_crosses_a_process_boundary(inbox: Inbox) -> None:
    """multiprocessing and process pools pickle exceptions; a span (with its locks) cannot be."""
    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    tracer = trace.get_tracer("late-errors")
    with pytest.raises(KeyError) as raised, tracer.start_as_current_span("worker-task"):
        raise KeyError("sku-42")
    copied = pickle.loads(pickle.dumps(raised.value))
    assert type(copied) is KeyError
    assert copied.args == ("sku-42",)
