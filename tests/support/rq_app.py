"""Jobs and settings of the RQ integration test's worker: ``rq worker -c tests.support.rq_app``.

``rq worker -c`` imports this module once, before it forks a work horse per job, so the
``otel_sentry.init()`` below is all the worker needs (each horse sends what it has before RQ
ends it with ``os._exit``). The broker comes from ``JOBS_BROKER_URL``; otel-sentry's own
settings from its variables (``SENTRY_DSN``, ``OTEL_SENTRY_INSTRUMENT``...).
"""

from __future__ import annotations

import os

from rq import get_current_job

import otel_sentry

otel_sentry.init(environment="test", release="jobs@1")

# Read by `rq worker -c`.
REDIS_URL = os.environ.get("JOBS_BROKER_URL", "redis://127.0.0.1:6379/0")
QUEUES = ["rq-jobs"]


class TransientError(RuntimeError):
    """What the first attempt of ``build_report`` fails with; RQ retries it."""


class PermanentError(RuntimeError):
    """What every attempt of ``reject_report`` raises."""


def build_report(user_id: int) -> int:
    job = get_current_job()
    assert job is not None
    if job.connection.incr(f"attempts:{job.id}") == 1:
        raise TransientError(f"report store busy for user {user_id}")
    return user_id + 41


def reject_report(user_id: int) -> None:
    raise PermanentError(f"report {user_id} is locked")
