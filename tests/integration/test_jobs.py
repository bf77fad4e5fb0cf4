"""An HTTP request enqueues a Celery job; the inbox shows one trace from the request to the job.

Real parts only: redis-server as broker and cache, PostgreSQL, a Celery worker in its own
process (``celery -A tests.support.celery_app worker -P prefork -c 2``) that initializes
otel-sentry in each forked child, and the FastAPI app under uvicorn in this process. The job
runs SQL and Redis calls and fails on its first attempt; Celery retries it and it succeeds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import otel_sentry
from otel_sentry.inbox import Inbox
from tests.support.celery_worker import CeleryWorker
from tests.support.servers import PostgresServer, RedisServer
from tests.support.uvicorn import UvicornThread

pytestmark = pytest.mark.integration

_ROOT = Path(__file__).resolve().parents[2]
_TASK = "jobs.recompute_profile"


@pytest.fixture
def worker(
    inbox: Inbox, redis_server: RedisServer, postgres: PostgresServer, tmp_path: Path
) -> Iterator[CeleryWorker]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTRY_", "OTEL_"))}
    env.update(
        SENTRY_DSN=inbox.dsn(),
        JOBS_BROKER_URL=redis_server.url,
        JOBS_DATABASE_URL=postgres.url.replace("postgresql://", "postgresql+psycopg://", 1),
        OTEL_SENTRY_INSTRUMENT="celery,redis,sqlalchemy",
        OTEL_SENTRY_CACHE_PREFIXES="profile:",
        OTEL_SERVICE_NAME="jobs-worker",
        PYTHONPATH=str(_ROOT),
    )
    running = CeleryWorker(env, tmp_path / "worker.log")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def service(inbox: Inbox, redis_server: RedisServer, fresh: None) -> Iterator[UvicornThread]:
    otel_sentry.init(
        dsn=inbox.dsn(),
        environment="test",
        release="jobs@1",
        service_name="jobs-web",
        instrument=("fastapi", "celery", "redis"),
    )
    from fastapi import FastAPI

    from tests.support import celery_app

    celery_app.app.conf.broker_url = redis_server.url
    app = FastAPI()

    @app.post("/profiles/{user_id}/recompute")
    def recompute(user_id: int) -> dict[str, str]:
        result = celery_app.recompute_profile.delay(user_id)
        return {"task_id": str(result.id)}

    try:
        with UvicornThread(app) as server:
            yield server
    finally:
        celery_app.app.pool.force_close_all()


def _wait_for_jobs(inbox: Inbox, worker: CeleryWorker, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 90  # a loaded machine takes a while to boot the children
    while time.monotonic() < deadline:
        found = [t for t in inbox.transactions() if t["contexts"]["trace"]["op"] == "queue.process"]
        if len(found) >= count:
            return found
        assert worker.alive(), worker.output()
        time.sleep(0.2)
    raise AssertionError(f"{count} job transactions did not arrive; worker:\n{worker.output()}")


def test_request_to_job_is_one_trace_with_a_failed_attempt_and_a_retry(
    service: UvicornThread, worker: CeleryWorker, inbox: Inbox
) -> None:
    assert service.request("POST", "/profiles/7/recompute") == 200
    from tests.support.celery_app import reject_profile

    reject_profile.delay(8)  # fails for good: an unhandled issue, reported once
    otel_sentry.flush(5)
    _wait_for_jobs(inbox, worker, 3)
    worker.stop()  # the children flush on shutdown: everything they had is in the inbox now

    [web] = [
        t for t in inbox.transactions() if t["transaction"] == "POST /profiles/{user_id}/recompute"
    ]
    trace_id = web["contexts"]["trace"]["trace_id"]
    assert web["contexts"]["trace"]["op"] == "http.server"
    [publish] = [s for s in web["spans"] if s["op"] == "queue.publish"]
    assert publish["description"] == _TASK
    task_id = publish["data"]["messaging.message.id"]
    assert publish["data"]["messaging.system"] == "celery"
    assert publish["data"]["messaging.destination.name"] == "jobs"

    jobs = [
        t
        for t in inbox.transactions()
        if t["transaction"] == _TASK and t["contexts"]["trace"]["op"] == "queue.process"
    ]
    assert len(jobs) == 2, [t["contexts"]["trace"]["data"] for t in jobs]
    by_attempt = {t["contexts"]["trace"]["data"]["messaging.message.retry.count"]: t for t in jobs}
    first, retry = by_attempt[0], by_attempt[1]
    for job in (first, retry):
        trace = job["contexts"]["trace"]
        assert trace["trace_id"] == trace_id
        assert job["transaction"] == _TASK
        assert job["transaction_info"]["source"] == "task"
        data = trace["data"]
        assert data["messaging.system"] == "celery"
        assert data["messaging.destination.name"] == "jobs"
        assert data["messaging.message.id"] == task_id
        latency = data["messaging.message.receive.latency"]
        assert isinstance(latency, int) and 0 <= latency < 90_000
        assert job["contexts"]["otel"]["resource"]["service.name"] == "jobs-worker"
        assert any(s["op"] == "db" and s["description"].startswith("SELECT") for s in job["spans"])
        assert all(s["trace_id"] == trace_id for s in job["spans"])

    # The first attempt continues the request's publish span and fails; the retry is a new
    # message published from inside the first attempt, and continues that publish span.
    assert first["contexts"]["trace"]["parent_span_id"] == publish["span_id"]
    assert first["contexts"]["trace"]["status"] == "internal_error"
    [republish] = [s for s in first["spans"] if s["op"] == "queue.publish"]
    assert republish["data"]["messaging.message.id"] == task_id
    assert retry["contexts"]["trace"]["parent_span_id"] == republish["span_id"]
    assert retry["contexts"]["trace"]["status"] == "ok"

    # The cache: the first attempt misses and fills it, the retry hits; the Redis command span
    # sits beneath each cache span.
    for job, expected in (
        (first, [("cache.get", False), ("cache.put", None)]),
        (retry, [("cache.get", True)]),
    ):
        cache_spans = sorted(
            (s for s in job["spans"] if s["op"].startswith("cache.")),
            key=lambda s: s["start_timestamp"],
        )
        assert [(s["op"], s["data"].get("cache.hit")) for s in cache_spans] == expected
        for span in cache_spans:
            assert span["description"] == "profile:7"
            assert span["data"]["cache.key"] == ["profile:7"]
            [command] = [s for s in job["spans"] if s.get("parent_span_id") == span["span_id"]]
            assert command["op"] == "db.redis"

    # The failure is one issue, on the attempt that failed.
    errors = [e for e in inbox.events() if e.get("exception")]
    by_task: dict[str, list[dict[str, Any]]] = {}
    for event in errors:
        by_task.setdefault(event["transaction"], []).append(event)
    assert sorted(by_task) == [_TASK, "jobs.reject_profile"], [e["exception"] for e in errors]
    [error] = by_task[_TASK]
    exception = error["exception"]["values"][-1]
    assert exception["type"] == "TransientError"
    assert exception["mechanism"] == {"type": "celery", "handled": True}
    assert error["contexts"]["trace"]["trace_id"] == trace_id
    assert error["contexts"]["trace"]["span_id"] == first["contexts"]["trace"]["span_id"]
    assert error["contexts"]["trace"]["op"] == "queue.process"
    assert error["transaction"] == _TASK
    assert error["tags"]["celery_task_id"] == task_id

    # A task that fails for good: one unhandled issue (Celery's own "Task ... raised" log
    # record is not a second one), linked to its span, whose status says so.
    [rejected] = [
        t
        for t in inbox.transactions()
        if t["transaction"] == "jobs.reject_profile"
        and t["contexts"]["trace"]["op"] == "queue.process"
    ]
    assert rejected["contexts"]["trace"]["status"] == "internal_error"
    [failure] = by_task["jobs.reject_profile"]
    assert failure["exception"]["values"][-1]["type"] == "PermanentError"
    assert failure["exception"]["values"][-1]["mechanism"] == {"type": "celery", "handled": False}
    assert failure["contexts"]["trace"]["span_id"] == rejected["contexts"]["trace"]["span_id"]

    # Every SQL statement that left either process is parameterized.
    statements = [
        s["description"]
        for t in inbox.transactions()
        for s in t["spans"]
        if s["op"] == "db" and s["description"] != "connect"
    ]
    assert statements
    assert not [q for q in statements if "41" in q or "'recompute'" in q], statements
    assert inbox.problems == []
