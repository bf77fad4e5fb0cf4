"""Background jobs: RQ producer and consumer spans, the trace carried in ``job.meta``.

opentelemetry-python-contrib has no RQ instrumentation (checked at 0.66b1); the third-party
``opentelemetry-instrumentation-rq`` on PyPI is not part of it. So this is our own code:

- writing a job to its queue (``Queue._enqueue_job``, where ``enqueue``, ``enqueue_call``,
  ``enqueue_job``, ``enqueue_many`` and retries meet) or to the scheduled registry
  (``Queue.schedule_job``: ``enqueue_at``/``enqueue_in`` and retries with an interval) runs in a
  PRODUCER ``publish <function>`` span, whose trace headers go into ``job.meta`` under
  ``otel_sentry`` (with a count of publishes, from which the retry count follows). RQ saves
  ``meta`` with the job and shows it in its tools; it is where RQ users and Sentry's own
  integration put such data. A job re-enqueued outside any trace (the scheduler moving a due
  job, ``rq requeue``) keeps the trace it carries instead of starting a new one;
- ``perform_job`` runs inside a CONSUMER ``process <function>`` span continuing it, with
  ``messaging.message.retry.count`` (publishes so far - 1; RQ's ``number_of_retries`` when the
  producer was not instrumented) and the receive latency from ``job.enqueued_at``, which RQ
  sets each time the job enters the queue (a retry, a scheduled job once it is due);
- a failure reaches ``handle_exception`` while that span is current: recorded on it, and
  reported to observers as handled when RQ retries the job (``Retry(max=...)``), else as
  unhandled. A job that *returns* ``Retry`` did not fail;
- RQ forks a work horse for each job and ends it with ``os._exit``, which skips exit hooks: the
  horse exports what it has before returning from ``perform_job``. ``init()`` in the module of
  ``rq worker -c <module>`` (imported before the forks) is all a worker needs.

Only the OpenTelemetry API is used; RQ is patched once it is imported.

    from otel_sentry._internal.instrument.rq_jobs import instrument_rq
    instrument_rq()         # init() does this when rq is installed
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, TracerProvider

from otel_sentry._internal.instrument.job_runs import (
    JobRun,
    LibraryPatches,
    consume,
    failed,
    process_exiting,
    publish,
)

__all__ = ["META_KEY", "instrument_rq", "rq_is_instrumented", "uninstrument_rq"]


META_KEY = "otel_sentry"
"""``job.meta`` key: ``{"trace": {<propagation headers>}, "publishes": <int>}``."""

_SYSTEM = "rq"

# The attempt the current perform_job runs, for handle_exception (called from inside it).
_running: ContextVar[tuple[Span, JobRun] | None] = ContextVar("otel_sentry_rq", default=None)
_publishing: ContextVar[bool] = ContextVar("otel_sentry_rq_publishing", default=False)


_patches: LibraryPatches


def rq_is_instrumented() -> bool:
    return _patches.active


def instrument_rq(tracer_provider: TracerProvider | None = None) -> bool:
    """Trace RQ's enqueueing and job runs; idempotent. False when rq is not installed.

    RQ is patched when it is imported (now, if it already was): a process that never uses it
    does not pay for importing it.
    """
    return _patches.instrument(tracer_provider)


def uninstrument_rq() -> None:
    """Restore what was patched."""
    _patches.uninstrument()


def _patch_rq(patches: LibraryPatches) -> None:
    from rq.queue import Queue
    from rq.worker import BaseWorker

    for owner, name, wrapper in (
        (Queue, "_enqueue_job", _wrap_publish),
        (Queue, "schedule_job", _wrap_publish),
        (BaseWorker, "perform_job", _wrap_perform),
        (BaseWorker, "handle_exception", _wrap_handle_exception),
    ):
        patches.replace(owner, name, wrapper)


def _wrap_publish(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def publishing(self: Any, job: Any, *args: Any, **kwargs: Any) -> Any:
        if not _patches.active or _publishing.get():
            return original(self, job, *args, **kwargs)
        meta = job.meta if isinstance(job.meta, dict) else None
        state = meta.get(META_KEY) if meta is not None else None
        known = state if isinstance(state, Mapping) else None
        if meta is None or (
            known is not None and not trace.get_current_span().get_span_context().is_valid
        ):
            return original(self, job, *args, **kwargs)
        publishes = _as_int(known.get("publishes"), 0) + 1 if known is not None else 1
        token = _publishing.set(True)
        try:
            with publish(_patches.tracer(), _SYSTEM, _function(job), self.name, job.id) as (
                _,
                carrier,
            ):
                meta[META_KEY] = {"trace": carrier, "publishes": publishes}
                return original(self, job, *args, **kwargs)
        finally:
            _publishing.reset(token)

    return publishing


def _wrap_perform(original: Callable[..., bool]) -> Callable[..., bool]:
    @functools.wraps(original)
    def perform_job(self: Any, job: Any, queue: Any, *args: Any, **kwargs: Any) -> bool:
        if not _patches.active:
            return original(self, job, queue, *args, **kwargs)
        meta = job.meta if isinstance(job.meta, dict) else {}
        state = meta.get(META_KEY)
        carrier: Mapping[str, str] | None = None
        if isinstance(state, Mapping):
            headers = state.get("trace")
            carrier = headers if isinstance(headers, Mapping) else None
            retries = max(0, _as_int(state.get("publishes"), 1) - 1)
        else:
            retries = _as_int(getattr(job, "number_of_retries", 0), 0)
        target, args_, kwargs_ = _call_of(job)
        run = JobRun(
            _SYSTEM, _function(job), str(job.id), str(queue.name), retries, target, args_, kwargs_
        )
        try:
            with consume(_patches.tracer(), run, carrier, _timestamp(job.enqueued_at)) as span:
                token = _running.set((span, run))
                try:
                    return original(self, job, queue, *args, **kwargs)
                finally:
                    _running.reset(token)
        finally:
            if getattr(self, "is_horse", False):
                process_exiting()  # RQ ends the horse with os._exit right after this returns

    return perform_job


def _wrap_handle_exception(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def handle_exception(self: Any, job: Any, *exc_info: Any) -> Any:
        running = _running.get()
        exc = exc_info[1] if len(exc_info) > 1 else None
        if running is not None and isinstance(exc, BaseException) and running[1].job_id == job.id:
            # handle_job_failure, right after this, retries on the same condition.
            retried = (
                bool(getattr(job, "should_retry", False))
                and getattr(self, "_stopped_job_id", None) != job.id
            )
            failed(running[0], running[1], exc, handled=retried)
        return original(self, job, *exc_info)

    return handle_exception


def _function(job: Any) -> str:
    try:
        name = job.func_name
    except Exception:  # a job whose data cannot be deserialized
        name = None
    return name if isinstance(name, str) and name else "unknown"


def _call_of(job: Any) -> tuple[Callable[..., Any] | None, tuple[Any, ...], dict[str, Any]]:
    try:
        target = job.func
        args, kwargs = tuple(job.args), dict(job.kwargs)
    except Exception:  # not importable or not deserializable: RQ reports that itself
        return None, (), {}
    return (target if callable(target) else None), args, kwargs


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:  # RQ stores UTC
        value = value.replace(tzinfo=timezone.utc)
    return float(value.timestamp())


def _as_int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


_patches = LibraryPatches(_SYSTEM, "rq.worker", _patch_rq)
