"""Background jobs: Celery producer and consumer spans with the messaging attributes queues need.

The official Celery instrumentation (``opentelemetry-instrumentation-celery``) does the hard
part: an ``apply_async/<task>`` PRODUCER span around publishing, the trace context injected into
the task message's headers, and a ``run/<task>`` CONSUMER span that continues it in the worker,
one per attempt. It records Celery's own vocabulary (``celery.action``, ``celery.task_name``,
the old ``messaging.destination``) but none of what a queue dashboard reads. This module adds,
on the same spans, through Celery signals connected after the instrumentation's own:

- ``messaging.system`` (``celery``), ``messaging.operation.type`` (``publish``/``process``),
  ``messaging.destination.name`` (the routing key) and ``messaging.message.id`` (the task id);
- on the consumer, ``messaging.message.retry.count`` (0 on the first attempt) and
  ``messaging.message.receive.latency`` in milliseconds, from a publish timestamp this module
  puts in the message headers (a retry is a new message, with a new timestamp);
- an ERROR status and the recorded exception on an attempt that ends in a retry: the
  instrumentation only notes the retry reason, so a failed attempt would look successful.

Only the OpenTelemetry API is used; any backend reads these spans.

    from otel_sentry._internal.instrument.celery_tasks import instrument_celery
    instrument_celery()      # init() does this when Celery and its instrumentation are installed
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import Span, Status, StatusCode, TracerProvider

__all__ = [
    "PUBLISHED_AT_HEADER",
    "celery_is_instrumented",
    "instrument_celery",
    "uninstrument_celery",
]

_log = logging.getLogger("otel_sentry")

PUBLISHED_AT_HEADER = "otel_sentry_published_at"
"""Task message header: Unix time (seconds, float) at which the producer published the message."""

_SYSTEM = "celery"
_connected = False


def celery_is_instrumented() -> bool:
    """Whether :func:`instrument_celery` hooks are connected in this process."""
    return _connected


def instrument_celery(tracer_provider: TracerProvider | None = None) -> bool:
    """Instrument Celery (the official instrumentation, then our additions); idempotent.

    Returns False when Celery or its OpenTelemetry instrumentation is not installed. The
    additions are connected after the instrumentation's own signal handlers, because they
    decorate the spans those handlers start.
    """
    global _connected
    try:
        from celery import signals  # type: ignore[import-untyped]
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
    except ImportError:
        return False
    if _connected:
        return True
    instrumentor = CeleryInstrumentor()  # type: ignore[no-untyped-call]
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=tracer_provider)
    signals.before_task_publish.connect(_on_publish, weak=False)
    signals.task_prerun.connect(_on_prerun, weak=False)
    signals.task_retry.connect(_on_retry, weak=False)
    _connected = True
    return True


def uninstrument_celery() -> None:
    """Disconnect our additions (the official instrumentation is left as it is)."""
    global _connected
    if not _connected:
        return
    from celery import signals

    signals.before_task_publish.disconnect(_on_publish)
    signals.task_prerun.disconnect(_on_prerun)
    signals.task_retry.disconnect(_on_retry)
    _connected = False


def _task_span(task: Any, task_id: str | None, *, publish: bool) -> Span | None:
    # The instrumentation keeps its spans on the task object, keyed by (task id, is publish);
    # reading them there (rather than "the current span") cannot pick up an unrelated span.
    if task is None or task_id is None:
        return None
    from opentelemetry.instrumentation.celery import utils

    found = utils.retrieve_context(task, task_id, is_publish=publish)
    if found is None:
        return None
    span = found[0]
    return span if span.is_recording() else None


def _on_publish(
    sender: Any = None,
    headers: dict[str, Any] | None = None,
    routing_key: str | None = None,
    exchange: str | None = None,
    **_: Any,
) -> None:
    if headers is None:  # protocol 1 messages carry no headers to put the timestamp in
        return
    headers[PUBLISHED_AT_HEADER] = time.time()
    task_id = headers.get("id")
    task = _registered_task(sender)
    span = _task_span(task, task_id, publish=True)
    if span is None:
        return
    span.set_attributes(
        {
            "messaging.system": _SYSTEM,
            "messaging.operation.type": "publish",
            "messaging.destination.name": routing_key or exchange or "celery",
        }
    )


def _registered_task(sender: Any) -> Any:
    # before_task_publish's sender is the task *name*; the instrumentation resolves it the same way.
    if not isinstance(sender, str):
        return sender
    from celery import current_app

    return current_app.tasks.get(sender)


def _on_prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    span = _task_span(task, task_id, publish=False)
    if span is None:
        return
    request = task.request
    attributes: dict[str, Any] = {
        "messaging.system": _SYSTEM,
        "messaging.operation.type": "process",
        "messaging.message.id": task_id,
        "messaging.message.retry.count": int(getattr(request, "retries", 0) or 0),
    }
    destination = _destination(getattr(request, "delivery_info", None))
    if destination:
        attributes["messaging.destination.name"] = destination
    published = getattr(request, PUBLISHED_AT_HEADER, None)
    if isinstance(published, (int, float)) and not isinstance(published, bool):
        # Wall clocks of producer and worker differ slightly; a negative latency is clock skew.
        attributes["messaging.message.receive.latency"] = max(
            0, round((time.time() - published) * 1000)
        )
    span.set_attributes(attributes)


def _destination(delivery_info: Mapping[str, Any] | None) -> str | None:
    if not delivery_info:
        return None
    for key in ("routing_key", "exchange"):
        value = delivery_info.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _on_retry(sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
    span = _task_span(sender, getattr(request, "id", None), publish=False)
    if span is None:
        return
    # ``reason`` is Celery's Retry; the failure that caused it (if any) is its ``exc``.
    cause = getattr(reason, "exc", None)
    if isinstance(cause, BaseException):
        span.record_exception(cause)
        span.set_status(Status(StatusCode.ERROR, f"{type(cause).__name__}: {cause}"))
    else:
        span.set_status(Status(StatusCode.ERROR, str(reason) if reason else "retry"))
