"""Celery beat schedule entries as Sentry cron monitors, checked in by the worker that runs them.

sentry_sdk's ``CeleryIntegration(monitor_beat_tasks=True)`` does this, but here that integration
is switched off (``sentry/celery_tasks.py``), and its beat hook (``_patch_beat_apply_entry``)
first asks the client for the integration and, not finding it, passes every entry through
unmarked: it cannot be reused as it is. Reused: ``_get_monitor_config`` (crontab or interval
schedule, timezone; sub-minute intervals refused with its warning), ``match_regex_list`` (so
``exclude_beat_tasks`` matches as in sentry_sdk) and ``crons.capture_checkin``. The slug is the
entry's name as sentry_sdk sends it; Sentry's ingest slugifies it.

Beat stamps each monitored task message with the monitor's slug, config and a check-in id; the
worker that runs the task sends ``in_progress`` when it starts and ``ok`` or ``error`` (with the
duration) when it ends, while the task's ``queue.process`` span is current, so every check-in
carries that trace. Where this differs from sentry_sdk, on purpose:

- sentry_sdk sends ``in_progress`` from beat when it publishes: time spent waiting in the queue
  then counts against ``max_runtime``, a dead worker shows as a timeout rather than a missed
  run, and the check-in carries beat's trace, not the job's. Beat here needs no Sentry client.
- a retried task is one run: the retry's message carries the open check-in, which closes when
  the task finally succeeds or gives up. sentry_sdk closes it as ``error`` at the first retry.
- an entry's ``options`` may add the monitor settings a schedule cannot say
  (``"sentry_monitor_config": {"max_runtime": 10, "checkin_margin": 5}``); the key is taken
  out before Celery publishes.

    install(settings)     # from init(), after the Celery instrumentation: worker side + beat hook
    patch_beat()          # from init_celery_worker(): a beat that never calls init()
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from sentry_sdk.crons import MonitorStatus, capture_checkin
from sentry_sdk.utils import match_regex_list

from otel_sentry._internal.sentry.crons import checked_config, on_trace_of

if TYPE_CHECKING:
    from otel_sentry._internal.settings import Settings

__all__ = [
    "ENTRY_OPTION",
    "BeatMonitoring",
    "beat_monitoring",
    "entry_monitor_config",
    "install",
    "patch_beat",
]

_log = logging.getLogger("otel_sentry")

# Task message headers (beat -> worker, and worker -> the task's retry).
_SLUG = "otel_sentry_monitor_slug"
_CONFIG = "otel_sentry_monitor_config"
_CHECK_IN = "otel_sentry_monitor_check_in_id"
_STARTED = "otel_sentry_monitor_started_at"
_PATCHED = "_otel_sentry_beat"

ENTRY_OPTION = "sentry_monitor_config"
"""Key of a beat entry's ``options`` with more monitor settings (``max_runtime``...)."""


@dataclass(frozen=True)
class BeatMonitoring:
    """Whether beat entries are monitored, which are not, and whether the user said so."""

    enabled: bool
    exclude: tuple[str, ...] = ()
    explicit: bool = False


def beat_monitoring(settings: Settings) -> BeatMonitoring:
    """Our options (keyword or variable) win; else a ``CeleryIntegration`` the user passed in
    ``integrations`` (which sentry_sdk would have honoured); else off, sentry_sdk's default."""
    integration = _celery_integration(settings.integrations or ())
    enabled, exclude = settings.monitor_beat_tasks, settings.exclude_beat_tasks
    explicit = settings.sources.get("monitor_beat_tasks", "default") != "default"
    if not explicit and integration is not None:
        enabled = bool(getattr(integration, "monitor_beat_tasks", False))
        explicit = enabled
    if settings.sources.get("exclude_beat_tasks", "default") == "default" and integration:
        exclude = tuple(str(p) for p in getattr(integration, "exclude_beat_tasks", None) or ())
    return BeatMonitoring(enabled, exclude, explicit)


def _celery_integration(integrations: Sequence[Any]) -> Any:
    module = sys.modules.get("sentry_sdk.integrations.celery")  # imported if one was built
    cls = getattr(module, "CeleryIntegration", None)
    if cls is None:
        return None
    return next((i for i in integrations if isinstance(i, cls)), None)


# -- the worker: check-ins around each monitored task --------------------------------------

_monitoring: BeatMonitoring | None = None
_connected = False


@dataclass
class _Run:
    slug: str
    config: dict[str, Any] | None
    check_in_id: str
    started_at: float
    span: Any

    def send(self, status: str, duration: float | None = None) -> None:
        # On the task's span (ended already at postrun: the instrumentation ends it first).
        with on_trace_of(self.span):
            capture_checkin(
                monitor_slug=self.slug,
                check_in_id=self.check_in_id,
                status=status,
                duration=duration,
                monitor_config=self.config,  # type: ignore[arg-type]
            )


_runs: dict[str, _Run] = {}


def install(settings: Settings) -> bool:
    """Connect the worker's check-ins and hook beat (idempotent); False without Celery.

    Call it after the Celery instrumentation: the check-in hook reads the task's span on
    ``task_prerun``, which the instrumentation's own handler (connected first) starts. Only
    where Celery is imported already (a worker or beat has, before any init()): importing it
    costs a web app that merely has it installed ~0.2 s.
    """
    global _monitoring, _connected
    _monitoring = beat_monitoring(settings)
    if "celery" not in sys.modules:
        return False
    try:
        from celery import signals  # type: ignore[import-untyped]
    except ImportError:
        return False
    patch_beat()
    if not _connected:
        signals.task_prerun.connect(_on_prerun, weak=False)
        signals.task_postrun.connect(_on_postrun, weak=False)
        signals.before_task_publish.connect(_on_publish, weak=False)
        _connected = True
    return True


def _on_prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    monitoring = _monitoring
    if task_id is None or task is None or monitoring is None:
        return
    if monitoring.explicit and not monitoring.enabled:
        return  # switched off here; otherwise beat's stamp decides
    request = task.request
    slug = getattr(request, _SLUG, None)
    check_in_id = getattr(request, _CHECK_IN, None)
    if not isinstance(slug, str) or not isinstance(check_in_id, str):
        return
    config = getattr(request, _CONFIG, None)
    started = getattr(request, _STARTED, None)
    retried = isinstance(started, (int, float)) and not isinstance(started, bool)
    run = _Run(
        slug,
        dict(config) if isinstance(config, Mapping) else None,
        check_in_id,
        float(started) if isinstance(started, (int, float)) and retried else time.time(),
        _task_span(task, task_id),
    )
    _runs[task_id] = run
    if not retried:  # a retry continues the check-in its first attempt opened
        run.send(MonitorStatus.IN_PROGRESS)


def _task_span(task: Any, task_id: str) -> Any:
    # Where the OpenTelemetry Celery instrumentation keeps the attempt's span; else the current.
    try:
        from opentelemetry.instrumentation.celery import utils

        found = utils.retrieve_context(task, task_id, is_publish=False)
    except Exception:  # not instrumented
        found = None
    if found is not None:
        return found[0]
    span = trace.get_current_span()
    return span if span.get_span_context().is_valid else None


def _on_publish(headers: Any = None, **_: Any) -> None:
    # A retry is published from inside the attempt, with the same task id; it carries the open
    # check-in (Celery does not copy custom headers into a retry).
    if not isinstance(headers, dict):
        return
    run = _runs.get(headers.get("id"))  # type: ignore[arg-type]
    if run is not None:
        headers.update(
            {
                _SLUG: run.slug,
                _CONFIG: run.config,
                _CHECK_IN: run.check_in_id,
                _STARTED: run.started_at,
            }
        )


def _on_postrun(task_id: str | None = None, state: str | None = None, **_: Any) -> None:
    run = _runs.pop(task_id, None) if task_id is not None else None
    if run is None or state in ("RETRY", "REJECTED"):
        # RETRY: the retry closes it. REJECTED: a requeued message runs again under the same
        # check-in; a dropped one never closes it, and Sentry reports that from max_runtime.
        return
    status = MonitorStatus.OK if state in ("SUCCESS", "IGNORED") else MonitorStatus.ERROR
    run.send(status, duration=max(0.0, time.time() - run.started_at))


# -- beat: stamp the messages of monitored entries -----------------------------------------


def patch_beat() -> bool:
    """Hook ``celery.beat.Scheduler.apply_entry`` (idempotent); False without Celery."""
    try:
        from celery.beat import Scheduler  # type: ignore[import-untyped]
    except ImportError:
        return False
    current = Scheduler.apply_entry
    if not getattr(current, _PATCHED, False):
        Scheduler.apply_entry = _stamping(current)
    return True


def _stamping(apply_entry: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(apply_entry)
    def stamped_apply_entry(scheduler: Any, entry: Any, *args: Any, **kwargs: Any) -> Any:
        options = getattr(entry, "options", None)
        stamped = _stamped_options(scheduler, entry, options)
        if stamped is None:
            return apply_entry(scheduler, entry, *args, **kwargs)
        # For this publish only: the entry's own options (persisted by beat) stay unchanged,
        # so each run gets a check-in id of its own.
        entry.options = stamped
        try:
            return apply_entry(scheduler, entry, *args, **kwargs)
        finally:
            entry.options = options

    setattr(stamped_apply_entry, _PATCHED, True)
    return stamped_apply_entry


def _stamped_options(scheduler: Any, entry: Any, options: Any) -> dict[str, Any] | None:
    """The options to publish ``entry`` with, or None to publish it as it is."""
    if not isinstance(options, Mapping):
        return None
    out = {k: v for k, v in options.items() if k != ENTRY_OPTION}
    try:
        monitoring = _beat_monitoring()
        name = getattr(entry, "name", None)
        if (
            not monitoring.enabled
            or not isinstance(name, str)
            or match_regex_list(name, list(monitoring.exclude))
        ):
            return out if ENTRY_OPTION in options else None
        config = entry_monitor_config(scheduler.app, entry)
    except Exception:  # beat must go on publishing whatever goes wrong here
        _log.warning("otel-sentry: no cron check-ins for a beat entry", exc_info=True)
        return out if ENTRY_OPTION in options else None
    if not config:
        return out if ENTRY_OPTION in options else None
    headers = dict(out.get("headers") or {})
    headers.update({_SLUG: name, _CONFIG: config, _CHECK_IN: uuid.uuid4().hex})
    out["headers"] = headers
    return out


_configs: dict[tuple[str, str], dict[str, Any]] = {}


def entry_monitor_config(app: Any, entry: Any) -> dict[str, Any]:
    """The monitor config of a beat entry: its schedule as sentry_sdk reads it, then the
    entry's ``options["sentry_monitor_config"]``; empty when Sentry cannot monitor it."""
    from sentry_sdk.integrations.celery.beat import _get_monitor_config

    key = (entry.name, repr(entry.schedule))
    base = _configs.get(key)
    if base is None:  # computed once per entry and schedule: sentry_sdk warns on each call
        base = _configs[key] = dict(_get_monitor_config(entry.schedule, app, entry.name))
    if not base:
        return {}
    extra = (getattr(entry, "options", None) or {}).get(ENTRY_OPTION) or {}
    if not isinstance(extra, Mapping):
        raise ValueError(
            f"beat entry {entry.name!r}: options[{ENTRY_OPTION!r}] = {extra!r}. Fix: a dict "
            "like {'max_runtime': 10, 'checkin_margin': 5}."
        )
    return {**base, **checked_config(f"beat entry {entry.name!r}", extra)}


_resolved: tuple[int, BeatMonitoring] | None = None


def _beat_monitoring() -> BeatMonitoring:
    """This process's choice: init()'s when it ran here, else the options init_celery_worker()
    was given (a beat process never initializes), resolved once per process."""
    global _resolved
    if _monitoring is not None:
        return _monitoring
    if _resolved is not None and _resolved[0] == os.getpid():
        return _resolved[1]
    from otel_sentry._internal.celery_worker import worker_options
    from otel_sentry._internal.config import resolve

    try:
        found = beat_monitoring(resolve(worker_options() or {}))
    except Exception as exc:  # a bad setting is init()'s to report, in the worker
        _log.warning("otel-sentry: beat check-ins off: %s", exc)
        found = BeatMonitoring(False)
    _resolved = (os.getpid(), found)
    return found
