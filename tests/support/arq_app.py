"""The arq worker of the arq/RQ integration test, run by the real CLI: `arq <this>.WorkerSettings`.

arq runs its jobs in the worker's own process, without forking: ``otel_sentry.init()`` when the
CLI imports this module is all it takes (the process flushes when it exits). Everything comes
from the environment the test gives the worker: the broker (``JOBS_BROKER_URL``) and
otel-sentry's own variables (``SENTRY_DSN``, ``OTEL_SENTRY_INSTRUMENT``...).
"""

from __future__ import annotations

import os
from typing import Any

from arq import Retry
from arq.connections import RedisSettings

import otel_sentry

otel_sentry.init(environment="test", release="jobs@1")

QUEUE = "arq-jobs"


class TransientError(RuntimeError):
    """What the first attempt of ``recompute_profile`` fails with; it is retried."""


class PermanentError(RuntimeError):
    """What every attempt of ``reject_profile`` raises."""


async def recompute_profile(ctx: dict[str, Any], user_id: int) -> int:
    if ctx["job_try"] == 1:
        try:
            raise TransientError(f"profile store busy for user {user_id}")
        except TransientError as exc:
            raise Retry(defer=0.1) from exc
    return user_id + 41


async def reject_profile(ctx: dict[str, Any], user_id: int) -> None:
    raise PermanentError(f"profile {user_id} is locked")


class WorkerSettings:
    functions = [recompute_profile, reject_profile]  # noqa: RUF012
    redis_settings = RedisSettings.from_dsn(os.environ.get("JOBS_BROKER_URL", "redis://127.0.0.1"))
    queue_name = QUEUE
    poll_delay = 0.1
