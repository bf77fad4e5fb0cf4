"""Sentry cron monitors for any periodic job: check-ins on the trace of the run they report.

A monitor hears twice from every run of its job: ``in_progress`` when it starts, then ``ok`` or
``error`` with the duration when it ends. Sentry raises an issue when a run is missed (no
check-in within the schedule plus ``checkin_margin`` minutes), fails, or never ends: a job that
hangs or was killed sends nothing more, so only Sentry can notice, from ``max_runtime``
(minutes) in the monitor config. A check-in that carries a config creates or updates the
monitor, so nothing needs setting up in Sentry first.

sentry_sdk builds and sends the check-ins (``crons.capture_checkin`` adds environment and
release). What this module adds is the trace: each run is an OpenTelemetry span (a new trace, or
a child of the current span), and its check-ins carry that span's trace and span id
(``contexts.trace``), which is how Sentry links a check-in to the run's transaction.
``sentry_sdk.crons.monitor`` is not reused: it captures with whatever trace sentry_sdk's scope
holds, and sentry_sdk runs no event processors on check-ins, so ``events.py`` cannot correct it
afterwards the way it does for errors; :func:`on_trace_of` gives them the span's trace instead.

    @otel_sentry.monitor("nightly-report", schedule="0 3 * * *", max_runtime=30)
    def nightly_report() -> None: ...

    with otel_sentry.monitor("vendor-sync", schedule=timedelta(hours=1)):
        sync_vendors()
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

import sentry_sdk
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode
from sentry_sdk.crons import MonitorStatus, capture_checkin
from sentry_sdk.crons.utils import _get_interval_schedule

__all__ = ["CONFIG_KEYS", "Monitor", "checked_config", "monitor", "on_trace_of"]

P = ParamSpec("P")
R = TypeVar("R")

# Monitor settings beside the schedule, as Sentry names them (minutes and counts, all ints).
_COUNTS = ("checkin_margin", "max_runtime", "failure_issue_threshold", "recovery_threshold")
CONFIG_KEYS: tuple[str, ...] = ("schedule", "timezone", "owner", *_COUNTS)

_tracer = trace.get_tracer("otel_sentry.crons")


def monitor(
    slug: str,
    schedule: str | timedelta | None = None,
    *,
    timezone: str | None = None,
    checkin_margin: int | None = None,
    max_runtime: int | None = None,
    failure_issue_threshold: int | None = None,
    recovery_threshold: int | None = None,
) -> Monitor:
    """Report each run of a periodic job to the Sentry cron monitor ``slug``.

    Use it as a decorator (sync or async functions) or a context manager (``with``/``async
    with``). ``schedule`` is a crontab line (``"*/10 * * * *"``) or a whole number of minutes
    as a ``timedelta``; with one, the first check-in creates the monitor. ``checkin_margin``
    and ``max_runtime`` are minutes: how late a run may start, and how long it may run before
    Sentry reports it (a run that hangs or was killed is only caught this way). A run that
    raises is an ``error`` check-in; the exception is left to propagate (and be reported, or
    not, as anywhere else). ``SystemExit(0)`` is a successful run.
    """
    if not isinstance(slug, str) or not slug.strip():
        raise ValueError(f"monitor(slug={slug!r}): the slug must be a non-empty string.")
    config = checked_config(
        f"monitor({slug!r})",
        {
            "schedule": schedule,
            "timezone": timezone,
            "checkin_margin": checkin_margin,
            "max_runtime": max_runtime,
            "failure_issue_threshold": failure_issue_threshold,
            "recovery_threshold": recovery_threshold,
        },
    )
    return Monitor(slug.strip(), config)


def checked_config(where: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """A Sentry monitor config from ``given`` (unset values skipped), or ValueError naming them.

    ``schedule`` may be a crontab line, a ``timedelta`` of whole minutes or Sentry's own
    ``{"type": ..., "value": ..., "unit": ...}``; the counts are positive ints.
    """
    config: dict[str, Any] = {}
    for key, value in given.items():
        if value is None:
            continue
        if key not in CONFIG_KEYS:
            raise ValueError(
                f"{where}: {key!r} is not a monitor setting. "
                f"Fix: use one of {', '.join(CONFIG_KEYS)}."
            )
        if key == "schedule":
            config[key] = _schedule(where, value)
        elif key in _COUNTS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                unit = "minutes" if key in ("checkin_margin", "max_runtime") else "check-ins"
                raise ValueError(f"{where}: {key}={value!r}. Fix: a whole number of {unit}, >= 1.")
            config[key] = value
        elif not isinstance(value, str) or not value.strip():
            raise ValueError(f"{where}: {key}={value!r}. Fix: a name, like Europe/Vienna.")
        else:
            config[key] = value.strip()
    return config


def _schedule(where: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str) and value.strip():
        return {"type": "crontab", "value": " ".join(value.split())}
    if isinstance(value, timedelta):
        # Sentry's finest schedule is one minute; sentry_sdk expresses an interval in the
        # largest unit that divides it (its own helper).
        interval = _get_interval_schedule(value.total_seconds())
        if interval is None:
            raise ValueError(
                f"{where}: schedule={value!r} is not a whole number of minutes, the finest "
                "schedule Sentry monitors. Fix: a timedelta of whole minutes, or a crontab line."
            )
        return dict(interval)
    if isinstance(value, Mapping) and value.get("type") in ("crontab", "interval"):
        return dict(value)
    raise ValueError(
        f"{where}: schedule={value!r}. Fix: a crontab line like '0 3 * * *', or a timedelta "
        "of whole minutes."
    )


class Monitor:
    """One cron monitor: a decorator or (async) context manager; each run is one span and one
    pair of check-ins. Safe to share between threads and tasks (each run keeps its own state)."""

    def __init__(self, slug: str, config: Mapping[str, Any]) -> None:
        self.slug = slug
        self.config = dict(config)
        self._runs: ContextVar[tuple[_Run, ...]] = ContextVar(f"otel_sentry_monitor_{slug}")

    def __enter__(self) -> None:
        run = _Run(self.slug, self.config)
        self._runs.set((*self._runs.get(()), run))
        run.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        runs = self._runs.get(())
        if not runs:
            return
        self._runs.set(runs[:-1])
        runs[-1].end(exc)

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await fn(*args, **kwargs)

            return cast(Callable[P, R], run_async)

        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            with self:
                return fn(*args, **kwargs)

        return run


@contextmanager
def on_trace_of(span: Span | None) -> Iterator[None]:
    """Check-ins captured inside carry ``span``'s trace (``contexts.trace``).

    sentry_sdk fills a check-in's trace context from its scope, and keeps one the scope holds
    already: a scope of its own, holding the span's, does it without touching the caller's.
    """
    context = span.get_span_context() if span is not None else None
    if context is None or not context.is_valid:
        yield
        return
    trace_context: dict[str, Any] = {
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
    }
    parent = getattr(span, "parent", None)
    if parent is not None:
        trace_context["parent_span_id"] = f"{parent.span_id:016x}"
    with sentry_sdk.new_scope() as scope:
        scope.set_context("trace", trace_context)
        yield


class _Run:
    """One run: its span, made current, and the check-ins captured on its trace."""

    def __init__(self, slug: str, config: dict[str, Any]) -> None:
        self.slug = slug
        self.config = config
        self.span: Span | None = None
        self.token: object = None
        self.check_in_id: str | None = None
        self.started = 0.0

    def start(self) -> None:
        # The transaction is named after the monitor (a low-cardinality name: source task).
        self.span = _tracer.start_span(
            self.slug, attributes={"sentry.op": "cron", "sentry.source": "task"}
        )
        self.token = otel_context.attach(trace.set_span_in_context(self.span))
        self.started = time.perf_counter()
        with on_trace_of(self.span):
            self.check_in_id = capture_checkin(
                monitor_slug=self.slug,
                status=MonitorStatus.IN_PROGRESS,
                monitor_config=cast(Any, self.config or None),
            )

    def end(self, exc: BaseException | None) -> None:
        duration = time.perf_counter() - self.started
        failed = exc is not None and not (isinstance(exc, SystemExit) and exc.code in (0, None))
        span = self.span
        try:
            with on_trace_of(span):
                capture_checkin(
                    monitor_slug=self.slug,
                    check_in_id=self.check_in_id,
                    status=MonitorStatus.ERROR if failed else MonitorStatus.OK,
                    duration=duration,
                    monitor_config=cast(Any, self.config or None),
                )
        finally:
            if span is not None:
                if failed and exc is not None:
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
                if self.token is not None:
                    otel_context.detach(cast(Any, self.token))
                span.end()
