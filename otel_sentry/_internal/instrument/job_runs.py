"""What arq and RQ jobs share: the queue attributes, the trace carrier, the consumer span.

``arq_jobs.py`` and ``rq_jobs.py`` only find the places to hook into their library; the spans
they start look the same and follow the messaging conventions that Celery's do
(``celery_tasks.py``): a PRODUCER ``publish <function>`` span around enqueueing whose context
travels in the job, and a CONSUMER ``process <function>`` span per attempt that continues it,
with ``messaging.system``, ``messaging.destination.name`` (the queue), ``messaging.message.id``
(the job id), ``messaging.message.retry.count`` and ``messaging.message.receive.latency`` (ms).
``code.function.name`` names the job's function: it is what a trace reader looks for (Sentry
names the transaction after it).

Observers (the Sentry side registers one; this package never imports it) are told when an
attempt runs and how it failed, while the consumer span is current, so whatever they capture
links to it; and when a process is about to end without exit hooks (RQ's work horse).

    with consume(JobRun("rq", "jobs.send", job_id, "default", 0, func, args, kwargs), carrier):
        func(*args, **kwargs)
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider

from otel_sentry._version import __version__

__all__ = [
    "JobObserver",
    "JobRun",
    "LibraryPatches",
    "add_observer",
    "consume",
    "failed",
    "process_exiting",
    "publish",
    "remove_observer",
    "tracer_for",
]

_log = logging.getLogger("otel_sentry")

_EXIT_FLUSH_MILLIS = 2000


@dataclass(frozen=True, slots=True)
class JobRun:
    """One attempt at running a job, as observers see it."""

    system: str  # "arq" | "rq"
    function: str  # the name the job was enqueued under
    job_id: str
    queue: str
    retry_count: int  # 0 on the first attempt
    # What the worker calls, and with what; observers use them to recognize secret arguments.
    target: Callable[..., Any] | None = None
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


class JobObserver(Protocol):
    def running(self, run: JobRun) -> AbstractContextManager[object]:
        """Entered once the attempt's consumer span is current, exited before it ends."""

    def failed(self, run: JobRun, exc: BaseException, *, handled: bool) -> None:
        """The attempt failed with ``exc``: ``handled`` when a retry follows, else for good."""

    def process_exiting(self) -> None:
        """The process ends next, without exit hooks (``os._exit``): send what is pending."""


_observers: list[JobObserver] = []


def add_observer(observer: JobObserver) -> None:
    if observer not in _observers:
        _observers.append(observer)


def remove_observer(observer: JobObserver) -> None:
    if observer in _observers:
        _observers.remove(observer)


def tracer_for(system: str, provider: trace.TracerProvider | None) -> Tracer:
    return trace.get_tracer(f"otel_sentry.{system}", __version__, provider)


@contextlib.contextmanager
def publish(
    tracer: Tracer, system: str, function: str, queue: str, job_id: str | None
) -> Iterator[tuple[Span, dict[str, str]]]:
    """A PRODUCER span around enqueueing; yields it and the trace headers to carry in the job."""
    attributes: dict[str, Any] = {
        "messaging.system": system,
        "messaging.operation.type": "publish",
        "messaging.destination.name": queue,
        "code.function.name": function,
    }
    if job_id:
        attributes["messaging.message.id"] = job_id
    with tracer.start_as_current_span(
        f"publish {function}", kind=SpanKind.PRODUCER, attributes=attributes
    ) as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        yield span, carrier


@contextlib.contextmanager
def consume(
    tracer: Tracer,
    run: JobRun,
    carrier: Mapping[str, str] | None,
    enqueued_at: float | None,
) -> Iterator[Span]:
    """The attempt's CONSUMER span, continuing ``carrier``, with the observers inside it.

    ``enqueued_at`` (Unix seconds) is when the job was published or became due; the receive
    latency is measured from it, clamped at 0 against clock skew between producer and worker.
    An exception escaping the block is not recorded here: the caller knows which ones are
    failures (:func:`failed`) and which only mean "run again".
    """
    parent = propagate.extract(carrier) if carrier else None
    attributes: dict[str, Any] = {
        "messaging.system": run.system,
        "messaging.operation.type": "process",
        "messaging.destination.name": run.queue,
        "messaging.message.id": run.job_id,
        "messaging.message.retry.count": run.retry_count,
        "code.function.name": run.function,
    }
    if enqueued_at is not None:
        attributes["messaging.message.receive.latency"] = max(
            0, round((time.time() - enqueued_at) * 1000)
        )
    with (
        tracer.start_as_current_span(
            f"process {run.function}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span,
        contextlib.ExitStack() as stack,
    ):
        for observer in list(_observers):
            try:
                stack.enter_context(observer.running(run))
            except Exception:  # an observer must never stop a job from running
                _log.debug("otel-sentry: job observer failed", exc_info=True)
        yield span


def failed(span: Span, run: JobRun, exc: BaseException, *, handled: bool) -> None:
    """Record a failed attempt on its span and tell the observers (while the span is current)."""
    if span.is_recording():
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    for observer in list(_observers):
        try:
            observer.failed(run, exc, handled=handled)
        except Exception:
            _log.debug("otel-sentry: job observer failed", exc_info=True)


def process_exiting() -> None:
    """Export what is pending: the caller's process ends with ``os._exit``, skipping atexit."""
    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    if callable(force_flush):
        # Bounded: a backend that does not answer must not hold a finished job's process long.
        force_flush(_EXIT_FLUSH_MILLIS)
    for observer in list(_observers):
        try:
            observer.process_exiting()
        except Exception:
            _log.debug("otel-sentry: job observer failed", exc_info=True)


class LibraryPatches:
    """One job library's patches, applied when it is imported (now, if it already was).

    A process that never imports the library does not pay for importing it. ``apply`` wraps
    what it needs through :meth:`replace`; it runs at most once while instrumented, and as a
    post-import hook inside the app's own ``import``, so a failure there is logged and undone,
    never raised.
    """

    def __init__(self, system: str, loaded: str, apply: Callable[[LibraryPatches], None]) -> None:
        self.system = system
        self.active = False
        self._loaded = loaded  # the module whose presence means the library is imported
        self._apply = apply
        self._provider: TracerProvider | None = None
        self._tracer: Tracer | None = None
        self._hooked = False
        self._originals: list[tuple[Any, str, Any]] = []

    def instrument(self, tracer_provider: TracerProvider | None) -> bool:
        """Idempotent; False when the library is not installed."""
        if importlib.util.find_spec(self.system) is None:
            return False
        self._provider = tracer_provider
        self._tracer = None
        self.active = True
        if self._loaded in sys.modules:
            self._on_import(sys.modules[self.system])
        elif not self._hooked:
            from wrapt import register_post_import_hook

            register_post_import_hook(self._on_import, self.system)
            self._hooked = True
        return True

    def uninstrument(self) -> None:
        """Restore what was patched."""
        self.active = False
        for owner, name, original in reversed(self._originals):
            setattr(owner, name, original)
        self._originals.clear()

    def tracer(self) -> Tracer:
        if self._tracer is None:
            self._tracer = tracer_for(self.system, self._provider)
        return self._tracer

    def replace(self, owner: Any, name: str, wrapper: Callable[[Any], Any]) -> None:
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        setattr(owner, name, wrapper(original))
        self._originals.append((owner, name, original))

    def _on_import(self, _module: object) -> None:
        try:
            if self.active and not self._originals:
                self._apply(self)
        except Exception:
            self.uninstrument()
            _log.warning(
                "otel-sentry: this %s version is not supported; no %s spans",
                self.system,
                self.system,
                exc_info=True,
            )
