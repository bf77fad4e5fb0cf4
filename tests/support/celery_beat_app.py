"""The Celery app of the cron monitor test: ``celery -A tests.support.celery_beat_app worker -B``.

Four beat entries: one whose job succeeds, one whose job fails, one whose job fails once and
succeeds on its retry, and one excluded from monitoring. Monitoring is switched on the way a
service moving from sentry_sdk has it, with a ``CeleryIntegration(monitor_beat_tasks=True,
exclude_beat_tasks=...)`` in ``integrations``. The broker comes from ``CRON_BROKER_URL``, the
DSN from ``SENTRY_DSN``.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from celery import Celery
from celery.schedules import schedstate, schedule
from sentry_sdk.integrations.celery import CeleryIntegration

from otel_sentry._internal.celery_worker import init_celery_worker

init_celery_worker(
    environment="test",
    release="cron@1",
    integrations=[CeleryIntegration(monitor_beat_tasks=True, exclude_beat_tasks=["cleanup-.*"])],
)

app = Celery("cron_test", broker=os.environ.get("CRON_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_default_queue="cron",
    timezone="Europe/Vienna",
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    beat_max_loop_interval=1,
)

RUN_EVERY_S = 3.0


class every_minute_quickly(schedule):  # noqa: N801 (named like Celery's own schedules)
    """A one-minute interval as far as the monitor goes, due every few seconds in fact.

    Sentry monitors nothing finer than a minute (a 3 s interval gets no monitor at all), and a
    test should not wait for a minute to pass.
    """

    def __init__(self, run_every: Any = None, relative: bool = False, nowfun: Any = None) -> None:
        super().__init__(timedelta(minutes=1), relative, nowfun)

    def is_due(self, last_run_at: datetime) -> tuple[bool, float]:
        now = self.maybe_make_aware(self.now())
        elapsed = (now - self.maybe_make_aware(last_run_at)).total_seconds()
        if elapsed >= RUN_EVERY_S:
            return schedstate(True, RUN_EVERY_S)
        return schedstate(False, RUN_EVERY_S - elapsed)


app.conf.beat_schedule = {
    "report-ok": {
        "task": "cron.build_report",
        "schedule": every_minute_quickly(),
        "options": {"sentry_monitor_config": {"max_runtime": 5, "checkin_margin": 2}},
    },
    "report-fails": {"task": "cron.sync_vendor", "schedule": every_minute_quickly()},
    "report-retried": {"task": "cron.flaky_export", "schedule": every_minute_quickly()},
    "cleanup-sessions": {"task": "cron.cleanup", "schedule": every_minute_quickly()},
}


class VendorDownError(RuntimeError):
    """What ``cron.sync_vendor`` raises on every run."""


@app.task(name="cron.build_report")
def build_report() -> int:
    return 42


@app.task(name="cron.sync_vendor")
def sync_vendor() -> None:
    raise VendorDownError("vendor API answered 503")


class ExportBusyError(RuntimeError):
    """What the first attempt of every ``cron.flaky_export`` raises."""


@app.task(
    bind=True,
    name="cron.flaky_export",
    autoretry_for=(ExportBusyError,),
    max_retries=2,
    default_retry_delay=0,
)
def flaky_export(self: Any) -> int:
    if self.request.retries == 0:
        raise ExportBusyError("export store busy")
    return 1


@app.task(name="cron.cleanup")
def cleanup() -> int:
    return 0
