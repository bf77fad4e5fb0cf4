"""Background jobs: arq producer and consumer spans, the trace carried inside the job.

opentelemetry-python-contrib has no arq instrumentation (checked at 0.66b1); the unrelated
``opentelemetry-instrumentation-arq`` on PyPI (one 0.50b1 release by a third party) is not part
of it, and records none of the queue attributes below. So this is our own code:

- ``ArqRedis.enqueue_job`` runs inside a PRODUCER ``publish <function>`` span
  (``messaging.system`` ``arq``, the queue, the job id);
- the trace headers travel in the serialized job itself, under one extra key of the dict arq
  serializes (``{"t", "f", "a", "k", "et"}`` + ``otel_sentry_trace``). arq reads the keys it
  knows and ignores the rest, so a worker without this instrumentation runs the job unchanged,
  the function's arguments stay exactly what the caller passed (a reserved keyword argument
  would break an uninstrumented worker's call), and no second Redis key or round trip is
  needed (a side key could also be read before it is written). It works with any
  ``job_serializer`` that can serialize a dict of strings;
- each attempt runs inside a CONSUMER ``process <function>`` span that continues it, with
  ``messaging.message.retry.count`` = ``job_try - 1`` and the receive latency measured from the
  enqueue time arq records (``et``) on the first attempt, and from the moment a retry became
  due (its score) on the next ones: arq reschedules the same job instead of publishing a new
  one, and the earlier attempts' run time is not time spent waiting in the queue.

An exception fails the job for good (arq retries only on ``Retry``): it is recorded on the span
and reported to observers as unhandled. ``Retry`` is control flow, not an error, unless it was
raised ``from`` an exception: that cause is recorded as a handled failure of the attempt.

Only the OpenTelemetry API is used; arq is patched once it is imported.

    from otel_sentry._internal.instrument.arq_jobs import instrument_arq
    instrument_arq()        # init() does this when arq is installed
"""

from __future__ import annotations

import asyncio
import functools
import pickle
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from datetime import datetime
from typing import Any
from uuid import uuid4

from opentelemetry.trace import Status, StatusCode, TracerProvider

from otel_sentry._internal.instrument.job_runs import (
    JobRun,
    LibraryPatches,
    consume,
    failed,
    publish,
)

__all__ = ["CARRIER_KEY", "arq_is_instrumented", "instrument_arq", "uninstrument_arq"]


CARRIER_KEY = "otel_sentry_trace"
"""Key of the serialized job dict that carries the trace headers of the publish span."""

_SYSTEM = "arq"
_MARK = "_otel_sentry_arq"

# The headers the current enqueue_job call puts in the job it serializes (producer side), and
# those read from the job a worker task is running (consumer side; each arq job runs in a task
# of its own, and the function's task is created after the job was read).
_outgoing: ContextVar[dict[str, str] | None] = ContextVar("otel_sentry_arq_out", default=None)
_incoming: ContextVar[dict[str, str] | None] = ContextVar("otel_sentry_arq_in", default=None)


_patches: LibraryPatches


def arq_is_instrumented() -> bool:
    return _patches.active


def instrument_arq(tracer_provider: TracerProvider | None = None) -> bool:
    """Trace arq's enqueueing and job runs; idempotent. False when arq is not installed.

    arq is patched when it is imported (now, if it already was): a process that never uses it
    does not pay for importing it.
    """
    return _patches.instrument(tracer_provider)


def uninstrument_arq() -> None:
    """Restore what was patched; jobs already wrapped by a running worker run untraced."""
    _patches.uninstrument()


def _patch_arq(patches: LibraryPatches) -> None:
    import arq.connections
    import arq.worker

    patches.replace(arq.connections.ArqRedis, "enqueue_job", _wrap_enqueue)
    patches.replace(arq.connections, "serialize_job", _wrap_serialize)
    patches.replace(arq.worker, "deserialize_job_raw", _wrap_deserialize)
    patches.replace(arq.worker.Worker, "run_job", _wrap_run_job)


def _wrap_enqueue(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def enqueue_job(self: Any, function: str, *args: Any, **kwargs: Any) -> Any:
        if not _patches.active:
            return await original(self, function, *args, **kwargs)
        # arq would make the same id; made here, the publish span can name it.
        job_id = kwargs.get("_job_id") or uuid4().hex
        kwargs["_job_id"] = job_id
        queue = kwargs.get("_queue_name") or self.default_queue_name
        with publish(_patches.tracer(), _SYSTEM, function, queue, job_id) as (span, carrier):
            token = _outgoing.set(carrier)
            try:
                job = await original(self, function, *args, **kwargs)
            finally:
                _outgoing.reset(token)
            if job is None and span.is_recording():
                # A job with this id exists already: nothing was published.
                span.set_attribute("messaging.arq.duplicate", True)
            return job

    return enqueue_job


def _wrap_serialize(original: Callable[..., bytes]) -> Callable[..., bytes]:
    @functools.wraps(original)
    def serialize_job(*args: Any, serializer: Callable[[Any], bytes] | None = None) -> bytes:
        carrier = _outgoing.get()
        if carrier:
            inner = serializer or pickle.dumps

            def serializer(data: dict[str, Any]) -> bytes:
                return inner({**data, CARRIER_KEY: carrier})

        return original(*args, serializer=serializer)

    return serialize_job


def _wrap_deserialize(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def deserialize_job_raw(
        raw: bytes, *, deserializer: Callable[[bytes], Any] | None = None
    ) -> Any:
        inner = deserializer or pickle.loads
        _incoming.set(None)

        def reading(data: bytes) -> Any:
            decoded = inner(data)
            carrier = decoded.get(CARRIER_KEY) if isinstance(decoded, dict) else None
            if isinstance(carrier, Mapping):
                _incoming.set({str(k): str(v) for k, v in carrier.items()})
            return decoded

        return original(raw, deserializer=reading)

    return deserialize_job_raw


def _wrap_run_job(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def run_job(self: Any, *args: Any, **kwargs: Any) -> Any:
        # Wrapped here rather than when the worker is built, so that init() in the worker's
        # on_startup (after it was built) traces its jobs too. Functions and cron jobs alike.
        if _patches.active and not getattr(self, _MARK, False):
            for name, function in self.functions.items():
                coroutine = getattr(function, "coroutine", None)
                if coroutine is not None and not getattr(coroutine, _MARK, False):
                    function.coroutine = _wrap_job(name, coroutine, self)
            setattr(self, _MARK, True)
        return await original(self, *args, **kwargs)

    return run_job


def _wrap_job(name: str, coroutine: Callable[..., Any], worker: Any) -> Callable[..., Any]:
    from arq.worker import Retry

    @functools.wraps(coroutine)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if not _patches.active:
            return await coroutine(ctx, *args, **kwargs)
        job_try = _as_int(ctx.get("job_try"), 1)
        job = JobRun(
            _SYSTEM,
            name,
            str(ctx.get("job_id") or ""),
            str(worker.queue_name),
            max(0, job_try - 1),
            coroutine,
            (ctx, *args),
            kwargs,
        )
        with consume(_patches.tracer(), job, _incoming.get(), _waiting_since(ctx, job_try)) as span:
            try:
                return await coroutine(ctx, *args, **kwargs)
            except Retry as exc:
                if isinstance(exc.__cause__, Exception):
                    failed(span, job, exc.__cause__, handled=True)
                raise
            except Exception as exc:
                failed(span, job, exc, handled=False)
                raise
            except asyncio.CancelledError:
                # A timeout, an abort or the worker stopping: arq decides which, after this.
                span.set_status(Status(StatusCode.ERROR, "cancelled"))
                raise

    setattr(run, _MARK, True)
    return run


def _waiting_since(ctx: Mapping[str, Any], job_try: int) -> float | None:
    if job_try > 1:
        score = ctx.get("score")
        if isinstance(score, (int, float)) and not isinstance(score, bool):
            return float(score) / 1000
    enqueued = ctx.get("enqueue_time")
    return enqueued.timestamp() if isinstance(enqueued, datetime) else None


def _as_int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


_patches = LibraryPatches(_SYSTEM, "arq.worker", _patch_arq)
