"""50 concurrent FastAPI requests under uvicorn: each error carries only its own breadcrumbs.

The app logs five INFO lines per request with awaits between them, so the requests interleave
on one event loop, then logs an ERROR with the exception. What is asserted is what reached the
inbox (events and transactions) and the JSON lines the process printed.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import structlog

import otel_sentry
from otel_sentry.inbox import Inbox
from tests.support.uvicorn import UvicornThread

pytestmark = pytest.mark.integration

REQUESTS = 50


@pytest.fixture
def printed() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def service(inbox: Inbox, fresh: None, printed: io.StringIO) -> Iterator[UvicornThread]:
    otel_sentry.init(dsn=inbox.dsn(), release="logs@1", instrument=("fastapi",))
    otel_sentry.configure_logging(stream=printed, renderer="json")
    from fastapi import FastAPI

    app = FastAPI()
    log = structlog.get_logger("orders")
    stdlib = logging.getLogger("orders.db")

    @app.get("/orders/{rid}")
    async def order(rid: int) -> dict[str, int]:
        for step in range(5):
            log.info("order step", rid=rid, step=step)
            await asyncio.sleep(0.001 * ((rid * 7 + step) % 5))
        stdlib.info("row locked", extra={"rid": rid})
        try:
            raise LookupError(f"order {rid} vanished")
        except LookupError:
            log.exception("order failed", rid=rid)
        return {"rid": rid}

    with UvicornThread(app, log_config=None) as server:
        yield server


def test_concurrent_requests_keep_their_breadcrumbs_and_trace_ids(
    service: UvicornThread, inbox: Inbox, printed: io.StringIO
) -> None:
    with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
        statuses = list(pool.map(lambda rid: service.get(f"/orders/{rid}"), range(REQUESTS)))
    assert statuses == [200] * REQUESTS
    inbox.wait_for_items("event", REQUESTS, timeout=20)
    otel_sentry.flush(5)
    inbox.wait_for(lambda i: len(i.transactions()) >= REQUESTS, 20)
    events, transactions = inbox.events(), inbox.transactions()
    assert len(events) == REQUESTS
    assert len(transactions) == REQUESTS
    server_spans = {t["contexts"]["trace"]["trace_id"]: t for t in transactions}
    seen: set[int] = set()
    trace_of: dict[int, str] = {}
    for event in events:
        rid = event["contexts"]["log"]["rid"]
        seen.add(rid)
        assert event["exception"]["values"][0]["value"] == f"order {rid} vanished"
        crumbs = [
            c for c in event["breadcrumbs"]["values"] if c.get("category", "").startswith("orders")
        ]
        assert [c["data"] for c in crumbs] == [
            *({"rid": rid, "step": step} for step in range(5)),
            {"rid": rid},
        ]
        trace = event["contexts"]["trace"]
        txn = server_spans[trace["trace_id"]]
        assert trace["span_id"] == txn["contexts"]["trace"]["span_id"]
        assert txn["transaction"] == "GET /orders/{rid}"
        trace_of[rid] = trace["trace_id"]
    assert seen == set(range(REQUESTS))
    assert len(set(trace_of.values())) == REQUESTS

    lines = [json.loads(line) for line in printed.getvalue().splitlines()]
    in_requests = [line for line in lines if "rid" in line]
    assert len(in_requests) == REQUESTS * 7
    for line in in_requests:
        assert line["trace_id"] == trace_of[line["rid"]], line
    access = [line for line in lines if line.get("logger") == "uvicorn.access"]
    assert len(access) == REQUESTS
    assert {line.get("trace_id") for line in access} == set(trace_of.values())
    assert inbox.problems == []
