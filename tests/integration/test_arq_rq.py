"""HTTP requests enqueue arq and RQ jobs; the inbox shows one trace from each request to its jobs.

Real parts only: redis-server as the broker, the FastAPI app under uvicorn in this process (the
producer), and the workers as subprocesses started by their own command lines: ``arq`` (jobs in
the worker's process) and ``rq worker`` (a work horse forked per job and ended with
``os._exit``; and ``SimpleWorker``, which runs them in-process). The workers initialize
otel-sentry where their settings module is imported (tests/support/arq_app.py, rq_app.py).

Each library gets a job that fails once and succeeds when retried, and a job that fails for
good. Run with ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=arq,rq`` to see every test fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import otel_sentry
from otel_sentry.inbox import Inbox
from tests.support.servers import RedisServer
from tests.support.uvicorn import UvicornThread

pytestmark = pytest.mark.integration

_ROOT = Path(__file__).resolve().parents[2]
_BIN = Path(sys.executable).parent
# The queues the workers read (tests/support/arq_app.py, rq_app.py); their modules initialize
# otel-sentry on import, so the producer names them rather than importing them.
_ARQ_QUEUE = "arq-jobs"
_RQ_QUEUE = "rq-jobs"
_BUILD = "tests.support.rq_app.build_report"
_REJECT = "tests.support.rq_app.reject_report"


class Worker:
    """A job worker's command line as a subprocess; its output goes to a file."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command, cwd=_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # both shut down warm on SIGTERM and exit normally
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _worker_env(inbox: Inbox, redis_server: RedisServer, system: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTRY_", "OTEL_"))}
    if "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS" in os.environ:  # to check the tests fail without
        env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = os.environ[
            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
        ]
    env.update(
        SENTRY_DSN=inbox.dsn(),
        JOBS_BROKER_URL=redis_server.url,
        OTEL_SENTRY_INSTRUMENT=system,
        OTEL_SERVICE_NAME=f"{system}-worker",
        PYTHONPATH=str(_ROOT),
    )
    return env


def _wait_for(inbox: Inbox, worker: Worker, count: int, what: str) -> list[dict[str, Any]]:
    """The inbox's ``queue.process`` transactions (``what``: of this function), once ``count``."""
    deadline = time.monotonic() + 90  # a loaded machine takes a while to start a worker
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        found = [
            t
            for t in inbox.transactions()
            if t["contexts"]["trace"]["op"] == "queue.process" and t["transaction"] == what
        ]
        if len(found) >= count:
            return found
        assert worker.alive(), worker.output()
        time.sleep(0.2)
    raise AssertionError(
        f"{count} {what} job transactions did not arrive (got {len(found)}); "
        f"worker:\n{worker.output()}"
    )


def _request_trace(inbox: Inbox, route: str) -> tuple[str, dict[str, Any]]:
    """The request's trace id and the ``queue.publish`` span of its transaction."""
    [web] = [t for t in inbox.transactions() if t["transaction"] == route]
    assert web["contexts"]["trace"]["op"] == "http.server"
    [publish] = [s for s in web["spans"] if s["op"] == "queue.publish"]
    return web["contexts"]["trace"]["trace_id"], publish


def _check_job(job: dict[str, Any], system: str, queue: str, job_id: str, retries: int) -> None:
    assert job["transaction_info"]["source"] == "task"
    data = job["contexts"]["trace"]["data"]
    assert data["messaging.system"] == system
    assert data["messaging.destination.name"] == queue
    assert data["messaging.message.id"] == job_id
    assert data["messaging.message.retry.count"] == retries
    latency = data["messaging.message.receive.latency"]
    assert isinstance(latency, int) and 0 <= latency < 90_000
    assert job["contexts"]["otel"]["resource"]["service.name"] == f"{system}-worker"


def _errors_by_transaction(inbox: Inbox) -> dict[str, list[dict[str, Any]]]:
    by_name: dict[str, list[dict[str, Any]]] = {}
    for event in inbox.events():
        if event.get("exception") or event.get("message") or event.get("logentry"):
            by_name.setdefault(event.get("transaction", ""), []).append(event)
    return by_name


# -- arq ---------------------------------------------------------------------------------------


@pytest.fixture
def arq_worker(inbox: Inbox, redis_server: RedisServer, tmp_path: Path) -> Iterator[Worker]:
    running = Worker(
        [sys.executable, "-m", "arq", "tests.support.arq_app.WorkerSettings"],
        _worker_env(inbox, redis_server, "arq"),
        tmp_path / "arq.log",
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def arq_service(inbox: Inbox, redis_server: RedisServer, fresh: None) -> Iterator[UvicornThread]:
    otel_sentry.init(
        dsn=inbox.dsn(),
        environment="test",
        release="jobs@1",
        service_name="jobs-web",
        instrument=("fastapi", "arq"),
    )
    from arq import create_pool
    from arq.connections import RedisSettings
    from fastapi import FastAPI

    app = FastAPI()

    async def enqueue(function: str, user_id: int) -> dict[str, str]:
        pool = await create_pool(
            RedisSettings.from_dsn(redis_server.url), default_queue_name=_ARQ_QUEUE
        )
        try:
            job = await pool.enqueue_job(function, user_id)
        finally:
            await pool.aclose()
        assert job is not None
        return {"job_id": job.job_id}

    @app.post("/profiles/{user_id}/recompute")
    async def recompute(user_id: int) -> dict[str, str]:
        return await enqueue("recompute_profile", user_id)

    @app.post("/profiles/{user_id}/reject")
    async def reject(user_id: int) -> dict[str, str]:
        return await enqueue("reject_profile", user_id)

    with UvicornThread(app) as server:
        yield server


def test_arq_jobs_continue_the_request_trace_with_a_retry_and_a_failure(
    arq_service: UvicornThread, arq_worker: Worker, inbox: Inbox
) -> None:
    assert arq_service.request("POST", "/profiles/7/recompute") == 200
    assert arq_service.request("POST", "/profiles/8/reject") == 200
    otel_sentry.flush(5)
    _wait_for(inbox, arq_worker, 2, "recompute_profile")
    _wait_for(inbox, arq_worker, 1, "reject_profile")
    arq_worker.stop()  # exits normally: whatever it still had is in the inbox now

    trace_id, publish = _request_trace(inbox, "POST /profiles/{user_id}/recompute")
    assert publish["description"] == "recompute_profile"
    assert publish["data"]["messaging.system"] == "arq"
    assert publish["data"]["messaging.destination.name"] == _ARQ_QUEUE
    job_id = publish["data"]["messaging.message.id"]

    jobs = _wait_for(inbox, arq_worker, 2, "recompute_profile")
    assert len(jobs) == 2
    by_try = {t["contexts"]["trace"]["data"]["messaging.message.retry.count"]: t for t in jobs}
    first, retry = by_try[0], by_try[1]
    for job, retries in ((first, 0), (retry, 1)):
        _check_job(job, "arq", _ARQ_QUEUE, job_id, retries)
        # arq runs the same message again: both attempts continue the request's publish span.
        assert job["contexts"]["trace"]["trace_id"] == trace_id
        assert job["contexts"]["trace"]["parent_span_id"] == publish["span_id"]
    # The attempt that raised Retry from a failure is marked failed; the retry succeeded.
    assert first["contexts"]["trace"]["status"] == "internal_error"
    assert retry["contexts"]["trace"]["status"] == "ok"

    errors = _errors_by_transaction(inbox)
    assert sorted(errors) == ["recompute_profile", "reject_profile"], errors
    # The failure behind the retry: one handled issue, on the attempt that failed.
    [transient] = errors["recompute_profile"]
    exception = transient["exception"]["values"][-1]
    assert exception["type"] == "TransientError"
    assert exception["mechanism"] == {"type": "arq", "handled": True}
    assert transient["contexts"]["trace"]["trace_id"] == trace_id
    assert transient["contexts"]["trace"]["span_id"] == first["contexts"]["trace"]["span_id"]
    assert transient["contexts"]["trace"]["op"] == "queue.process"
    assert transient["tags"]["arq_task_id"] == job_id

    # A job that fails for good: one unhandled issue (arq's own log line of it is not a second
    # one), linked to its transaction, under its own request's trace.
    reject_trace, reject_publish = _request_trace(inbox, "POST /profiles/{user_id}/reject")
    [rejected] = _wait_for(inbox, arq_worker, 1, "reject_profile")
    _check_job(rejected, "arq", _ARQ_QUEUE, reject_publish["data"]["messaging.message.id"], 0)
    assert rejected["contexts"]["trace"]["trace_id"] == reject_trace
    assert rejected["contexts"]["trace"]["parent_span_id"] == reject_publish["span_id"]
    assert rejected["contexts"]["trace"]["status"] == "internal_error"
    [failure] = errors["reject_profile"]
    assert failure["exception"]["values"][-1]["type"] == "PermanentError"
    assert failure["exception"]["values"][-1]["mechanism"] == {"type": "arq", "handled": False}
    assert failure["contexts"]["trace"]["span_id"] == rejected["contexts"]["trace"]["span_id"]
    assert inbox.problems == []


# -- RQ ----------------------------------------------------------------------------------------


@pytest.fixture(params=["rq.worker.Worker", "rq.worker.SimpleWorker"], ids=["fork", "simple"])
def rq_worker(
    request: pytest.FixtureRequest, inbox: Inbox, redis_server: RedisServer, tmp_path: Path
) -> Iterator[Worker]:
    command = [str(_BIN / "rq"), "worker", "-c", "tests.support.rq_app", "-w", request.param]
    running = Worker(command, _worker_env(inbox, redis_server, "rq"), tmp_path / "rq.log")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def rq_service(inbox: Inbox, redis_server: RedisServer, fresh: None) -> Iterator[UvicornThread]:
    otel_sentry.init(
        dsn=inbox.dsn(),
        environment="test",
        release="jobs@1",
        service_name="jobs-web",
        instrument=("fastapi", "rq"),
    )
    from fastapi import FastAPI
    from redis import Redis
    from rq import Queue, Retry

    connection = Redis.from_url(redis_server.url)
    queue = Queue(_RQ_QUEUE, connection=connection)
    app = FastAPI()

    @app.post("/reports/{user_id}/build")
    def build(user_id: int) -> dict[str, str]:
        return {"job_id": queue.enqueue(_BUILD, user_id, retry=Retry(max=1)).id}

    @app.post("/reports/{user_id}/reject")
    def reject(user_id: int) -> dict[str, str]:
        return {"job_id": queue.enqueue(_REJECT, user_id).id}

    try:
        with UvicornThread(app) as server:
            yield server
    finally:
        connection.close()


def test_rq_jobs_continue_the_request_trace_with_a_retry_and_a_failure(
    rq_service: UvicornThread, rq_worker: Worker, inbox: Inbox
) -> None:
    queue, build, reject = _RQ_QUEUE, _BUILD, _REJECT
    assert rq_service.request("POST", "/reports/7/build") == 200
    assert rq_service.request("POST", "/reports/8/reject") == 200
    otel_sentry.flush(5)
    # While the worker still runs: a forked work horse sent its job's data before os._exit.
    jobs = _wait_for(inbox, rq_worker, 2, build)
    _wait_for(inbox, rq_worker, 1, reject)
    rq_worker.stop()

    trace_id, publish = _request_trace(inbox, "POST /reports/{user_id}/build")
    assert publish["description"] == build
    assert publish["data"]["messaging.system"] == "rq"
    assert publish["data"]["messaging.destination.name"] == queue
    job_id = publish["data"]["messaging.message.id"]

    jobs = _wait_for(inbox, rq_worker, 2, build)
    assert len(jobs) == 2
    by_try = {t["contexts"]["trace"]["data"]["messaging.message.retry.count"]: t for t in jobs}
    first, retry = by_try[0], by_try[1]
    for job, retries in ((first, 0), (retry, 1)):
        _check_job(job, "rq", queue, job_id, retries)
        assert job["contexts"]["trace"]["trace_id"] == trace_id
    # RQ re-enqueues the failed job from inside the attempt: the retry continues that publish.
    assert first["contexts"]["trace"]["parent_span_id"] == publish["span_id"]
    assert first["contexts"]["trace"]["status"] == "internal_error"
    [republish] = [s for s in first["spans"] if s["op"] == "queue.publish"]
    assert republish["data"]["messaging.message.id"] == job_id
    assert retry["contexts"]["trace"]["parent_span_id"] == republish["span_id"]
    assert retry["contexts"]["trace"]["status"] == "ok"

    errors = _errors_by_transaction(inbox)
    assert sorted(errors) == [build, reject], errors
    [transient] = errors[build]
    exception = transient["exception"]["values"][-1]
    assert exception["type"] == "TransientError"
    assert exception["mechanism"] == {"type": "rq", "handled": True}
    assert transient["contexts"]["trace"]["trace_id"] == trace_id
    assert transient["contexts"]["trace"]["span_id"] == first["contexts"]["trace"]["span_id"]
    assert transient["contexts"]["trace"]["op"] == "queue.process"
    assert transient["tags"]["rq_task_id"] == job_id

    # Failed for good: one unhandled issue (RQ's "exception raised while executing" log line is
    # not a second one), linked to its transaction.
    reject_trace, reject_publish = _request_trace(inbox, "POST /reports/{user_id}/reject")
    [rejected] = _wait_for(inbox, rq_worker, 1, reject)
    _check_job(rejected, "rq", queue, reject_publish["data"]["messaging.message.id"], 0)
    assert rejected["contexts"]["trace"]["trace_id"] == reject_trace
    assert rejected["contexts"]["trace"]["parent_span_id"] == reject_publish["span_id"]
    assert rejected["contexts"]["trace"]["status"] == "internal_error"
    [failure] = errors[reject]
    assert failure["exception"]["values"][-1]["type"] == "PermanentError"
    assert failure["exception"]["values"][-1]["mechanism"] == {"type": "rq", "handled": False}
    assert failure["contexts"]["trace"]["span_id"] == rejected["contexts"]["trace"]["span_id"]
    assert inbox.problems == []
