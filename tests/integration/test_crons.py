"""Sentry cron monitors: check-ins at the inbox, each on the trace of the job it reports.

Real parts only. Celery: redis-server as broker and a worker with embedded beat
(``celery -A tests.support.celery_beat_app worker -B``) whose entries come due every few
seconds; beat stamps the messages, the worker's prefork child sends the check-ins. Any other
periodic job: a cron script (``tests/support/cron_job.py``) in a process of its own, using
``otel_sentry.monitor`` as a decorator and as a context manager. The crontab shape of a beat
entry's monitor config is checked without a worker.
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

from otel_sentry._internal.config import resolve
from otel_sentry._internal.sentry.celery_beat import (
    BeatMonitoring,
    beat_monitoring,
    entry_monitor_config,
)
from otel_sentry.inbox import Inbox
from tests.support.celery_worker import CeleryWorker
from tests.support.servers import RedisServer

_ROOT = Path(__file__).resolve().parents[2]


def _check_ins(inbox: Inbox, slug: str | None = None) -> list[dict[str, Any]]:
    found = [item.json for item in inbox.items("check_in")]
    return [c for c in found if slug is None or c["monitor_slug"] == slug]


def _job_transactions(inbox: Inbox, task: str) -> list[dict[str, Any]]:
    return [
        t
        for t in inbox.transactions()
        if t["transaction"] == task and t["contexts"]["trace"]["op"] == "queue.process"
    ]


def _closed_run(
    inbox: Inbox, slug: str, status: str, task: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The first run of ``slug`` that closed with ``status`` (and, given ``task``, whose job
    transactions are in the inbox too): its (in_progress, closing) check-ins."""
    check_ins = _check_ins(inbox, slug)
    spans = {t["contexts"]["trace"]["span_id"] for t in _job_transactions(inbox, task or "")}
    for closing in check_ins:
        if closing["status"] != status:
            continue
        opened = [
            c
            for c in check_ins
            if c["check_in_id"] == closing["check_in_id"] and c["status"] == "in_progress"
        ]
        if task is not None and not all(
            c["contexts"]["trace"]["span_id"] in spans for c in (closing, *opened[:1])
        ):
            continue  # the transactions of the attempts they were sent from are not here yet
        if opened:
            # Sent in that order by one process, through one queue.
            assert check_ins.index(opened[0]) < check_ins.index(closing)
            return opened[0], closing
    raise LookupError(slug)


# -- Celery beat -------------------------------------------------------------------------------


class _BeatWorker(CeleryWorker):
    """``celery worker -B`` (embedded beat) with the prefork pool, as a subprocess."""

    def __init__(self, env: dict[str, str], log: Path, schedule: Path) -> None:
        self.log = log
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.support.celery_beat_app",
            "worker",
            "-B",
            "-s",
            str(schedule),
            "-P",
            "prefork",
            "-c",
            "2",
        ]
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command, cwd=_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )


@pytest.fixture
def beat_worker(inbox: Inbox, redis_server: RedisServer, tmp_path: Path) -> Iterator[CeleryWorker]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTRY_", "OTEL_"))}
    env.update(
        SENTRY_DSN=inbox.dsn(),
        CRON_BROKER_URL=redis_server.url,
        OTEL_SENTRY_INSTRUMENT="celery",
        OTEL_SERVICE_NAME="cron-worker",
        PYTHONPATH=str(_ROOT),
    )
    running = _BeatWorker(env, tmp_path / "worker.log", tmp_path / "beat-schedule")
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.integration
def test_beat_entries_check_in_from_the_worker_on_the_jobs_trace(
    beat_worker: CeleryWorker, inbox: Inbox
) -> None:
    def arrived() -> bool:
        try:
            _closed_run(inbox, "report-ok", "ok", "cron.build_report")
            _closed_run(inbox, "report-fails", "error", "cron.sync_vendor")
        except LookupError:
            return False
        try:
            _closed_run(inbox, "report-retried", "ok", "cron.flaky_export")
        except LookupError:
            return False
        # The excluded entry ran too (so its silence below means something).
        return bool(_job_transactions(inbox, "cron.cleanup"))

    # Well within one scheduled minute: the entries come due 3 s after beat starts, and a
    # loaded machine takes a while to boot the worker and its children.
    deadline = time.monotonic() + 60
    while not arrived():
        assert time.monotonic() < deadline, (
            f"check-ins missing: {[(c['monitor_slug'], c['status']) for c in _check_ins(inbox)]}"
            f"\nworker:\n{beat_worker.output()}"
        )
        assert beat_worker.alive(), beat_worker.output()
        time.sleep(0.2)

    schedule = {"type": "interval", "value": 1, "unit": "minute"}
    for slug, task, status, config in (
        (
            "report-ok",
            "cron.build_report",
            "ok",
            {
                "schedule": schedule,
                "timezone": "Europe/Vienna",
                "max_runtime": 5,
                "checkin_margin": 2,
            },
        ),
        (
            "report-fails",
            "cron.sync_vendor",
            "error",
            {"schedule": schedule, "timezone": "Europe/Vienna"},
        ),
    ):
        opened, closed = _closed_run(inbox, slug, status, task)
        for check_in in (opened, closed):
            assert check_in["monitor_config"] == config
            assert check_in["environment"] == "test"
            assert check_in["release"] == "cron@1"
        assert opened["duration"] is None
        assert isinstance(closed["duration"], float) and 0 <= closed["duration"] < 30
        # Both check-ins carry the trace of the job's queue.process transaction.
        trace_id = closed["contexts"]["trace"]["trace_id"]
        assert opened["contexts"]["trace"]["trace_id"] == trace_id
        [job] = [
            t
            for t in _job_transactions(inbox, task)
            if t["contexts"]["trace"]["trace_id"] == trace_id
        ]
        assert job["contexts"]["trace"]["status"] == ("ok" if status == "ok" else "internal_error")
        assert closed["contexts"]["trace"]["span_id"] == job["contexts"]["trace"]["span_id"]

    # A task retried after a failed attempt is one run: opened by the first attempt, closed
    # ok by the retry (whose message carried the check-in), on the trace both attempts share.
    opened, closed = _closed_run(inbox, "report-retried", "ok", "cron.flaky_export")
    run = [
        c for c in _check_ins(inbox, "report-retried") if c["check_in_id"] == opened["check_in_id"]
    ]
    assert [c["status"] for c in run] == ["in_progress", "ok"]
    attempts = {
        t["contexts"]["trace"]["data"]["messaging.message.retry.count"]: t["contexts"]["trace"]
        for t in _job_transactions(inbox, "cron.flaky_export")
        if t["contexts"]["trace"]["trace_id"] == opened["contexts"]["trace"]["trace_id"]
    }
    assert opened["contexts"]["trace"]["span_id"] == attempts[0]["span_id"]
    assert closed["contexts"]["trace"]["span_id"] == attempts[1]["span_id"]
    assert closed["duration"] >= 0

    # Excluded by CeleryIntegration(exclude_beat_tasks=["cleanup-.*"]): it ran, and said nothing.
    assert _check_ins(inbox, "cleanup-sessions") == []
    assert {c["monitor_slug"] for c in _check_ins(inbox)} == {
        "report-ok",
        "report-fails",
        "report-retried",
    }


def test_a_crontab_entry_s_monitor_config() -> None:
    from celery import Celery
    from celery.beat import ScheduleEntry
    from celery.schedules import crontab

    app = Celery("crontab_shape", set_as_current=False)
    app.conf.timezone = "America/New_York"
    nightly = ScheduleEntry(
        name="nightly report",
        task="reports.nightly",
        schedule=crontab(minute="30", hour="2", day_of_week="mon-fri"),
        options={"sentry_monitor_config": {"max_runtime": 20, "failure_issue_threshold": 3}},
        app=app,
    )
    assert entry_monitor_config(app, nightly) == {
        "schedule": {"type": "crontab", "value": "30 2 * * mon-fri"},
        "timezone": "America/New_York",
        "max_runtime": 20,
        "failure_issue_threshold": 3,
    }
    # Sentry monitors nothing finer than a minute: such an entry gets no check-ins.
    fast = ScheduleEntry(name="every-10s", task="t", schedule=10.0, app=app)
    assert entry_monitor_config(app, fast) == {}
    bad = ScheduleEntry(
        name="typo",
        task="t",
        schedule=crontab(),
        options={"sentry_monitor_config": {"max_runtme": 20}},
        app=app,
    )
    with pytest.raises(ValueError, match="max_runtme"):
        entry_monitor_config(app, bad)


def test_which_option_turns_beat_monitoring_on() -> None:
    from sentry_sdk.integrations.celery import CeleryIntegration

    env: dict[str, str] = {}
    passed = CeleryIntegration(monitor_beat_tasks=True, exclude_beat_tasks=["tmp-.*"])
    assert beat_monitoring(resolve({"release": "x"}, env)) == BeatMonitoring(False)
    # A service moving from sentry_sdk keeps its integration's options...
    assert beat_monitoring(resolve({"release": "x", "integrations": [passed]}, env)) == (
        BeatMonitoring(True, ("tmp-.*",), explicit=True)
    )
    # ...and ours, when set, win over them.
    off = resolve(
        {"release": "x", "integrations": [passed]}, {"OTEL_SENTRY_MONITOR_BEAT_TASKS": "0"}
    )
    assert beat_monitoring(off) == BeatMonitoring(False, ("tmp-.*",), explicit=True)
    on = resolve({"release": "x", "monitor_beat_tasks": True, "exclude_beat_tasks": "a.*,b"}, env)
    assert beat_monitoring(on) == BeatMonitoring(True, ("a.*", "b"), explicit=True)


# -- otel_sentry.monitor -----------------------------------------------------------------------


@pytest.mark.integration
def test_monitor_decorator_and_context_manager_check_in_on_their_trace(inbox: Inbox) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"],  # tests/conftest.py: exit_spool_home
        "SENTRY_DSN": inbox.dsn(),
        "PYTHONPATH": str(_ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.cron_job"],
        cwd=_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # The process flushed at exit: what it sent is here (a short wait for the inbox to file it).
    assert inbox.wait_for(lambda i: len(_check_ins(i)) >= 6 and len(i.transactions()) >= 3, 10)

    for slug, status, config in (
        (
            "nightly-report",
            "ok",
            {
                "schedule": {"type": "crontab", "value": "0 3 * * *"},
                "max_runtime": 30,
                "checkin_margin": 5,
            },
        ),
        (
            "hourly-sync",
            "ok",
            {
                "schedule": {"type": "interval", "value": 1, "unit": "hour"},
                "failure_issue_threshold": 2,
            },
        ),
        (
            "vendor-import",
            "error",
            {"schedule": {"type": "crontab", "value": "*/10 * * * *"}, "timezone": "Europe/Vienna"},
        ),
    ):
        assert [c["status"] for c in _check_ins(inbox, slug)] == ["in_progress", status]
        opened, closed = _closed_run(inbox, slug, status)
        assert opened["monitor_config"] == closed["monitor_config"] == config
        assert closed["release"] == "cron@1" and closed["environment"] == "test"
        assert isinstance(closed["duration"], float) and 0 <= closed["duration"] < 30
        # One trace: the run's transaction (named after the monitor) and both check-ins.
        [run] = [t for t in inbox.transactions() if t["transaction"] == slug]
        trace = run["contexts"]["trace"]
        assert trace["op"] == "cron"
        assert trace["status"] == ("ok" if status == "ok" else "internal_error")
        for check_in in (opened, closed):
            assert check_in["contexts"]["trace"]["trace_id"] == trace["trace_id"]
            assert check_in["contexts"]["trace"]["span_id"] == trace["span_id"]
    # Each run is a trace of its own.
    assert len({t["contexts"]["trace"]["trace_id"] for t in inbox.transactions()}) == 3
