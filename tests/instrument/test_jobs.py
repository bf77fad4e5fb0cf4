"""Celery spans from ``instrument_celery()`` with any OpenTelemetry backend (no Sentry here).

Celery's own code runs for real: ``apply_async`` publishes onto kombu's in-memory transport, and
the published message is executed through ``build_tracer``, the function a worker's pool calls,
with the request a worker builds from that message. The spans land in an in-memory exporter.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery, signals
from celery.app.trace import build_tracer
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from otel_sentry._internal.instrument.celery_tasks import (
    PUBLISHED_AT_HEADER,
    instrument_celery,
    uninstrument_celery,
)


class FlakyError(RuntimeError):
    pass


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    assert not CeleryInstrumentor().is_instrumented_by_opentelemetry
    assert instrument_celery(provider)
    try:
        yield exporter
    finally:
        # The instrumentation is process-wide; later tests instrument with their own provider.
        uninstrument_celery()
        CeleryInstrumentor().uninstrument()


@pytest.fixture
def app() -> Celery:
    app = Celery("jobs_unit", broker="memory://")
    app.conf.update(task_default_queue="reports", broker_connection_retry_on_startup=True)
    return app


def _published(app: Celery, task: Any, *args: Any) -> dict[str, Any]:
    """Publish once; the request a worker would build from the message."""
    seen: dict[str, Any] = {}

    def keep(headers: dict[str, Any] | None = None, **_: Any) -> None:
        seen.update(headers or {})

    signals.before_task_publish.connect(keep, weak=False)
    try:
        task.apply_async(args)
    finally:
        signals.before_task_publish.disconnect(keep)
    return {**seen, "delivery_info": {"exchange": "", "routing_key": "reports", "priority": 0}}


def _by_kind(exporter: InMemorySpanExporter, kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.kind is kind]


def test_publish_and_process_carry_the_messaging_attributes(
    spans: InMemorySpanExporter, app: Celery
) -> None:
    @app.task(name="reports.build")
    def build(n: int) -> int:
        return n

    request = _published(app, build, 3)
    assert isinstance(request[PUBLISHED_AT_HEADER], float)
    time.sleep(0.02)
    build_tracer(build.name, build, app=app)(request["id"], (3,), {}, request)

    [publish] = _by_kind(spans, SpanKind.PRODUCER)
    assert publish.attributes is not None
    assert publish.attributes["messaging.system"] == "celery"
    assert publish.attributes["messaging.operation.type"] == "publish"
    assert publish.attributes["messaging.destination.name"] == "reports"
    assert publish.attributes["messaging.message.id"] == request["id"]

    [process] = _by_kind(spans, SpanKind.CONSUMER)
    attrs = process.attributes
    assert attrs is not None
    assert attrs["messaging.system"] == "celery"
    assert attrs["messaging.operation.type"] == "process"
    assert attrs["messaging.destination.name"] == "reports"
    assert attrs["messaging.message.id"] == request["id"]
    assert attrs["messaging.message.retry.count"] == 0
    latency = attrs["messaging.message.receive.latency"]
    assert isinstance(latency, int) and 20 <= latency < 5000
    # The consumer continues the producer's trace from the message headers.
    assert process.parent is not None
    assert process.parent.span_id == publish.context.span_id
    assert process.context.trace_id == publish.context.trace_id
    assert process.status.status_code is not StatusCode.ERROR


def test_an_attempt_that_retries_is_an_error_and_the_retry_counts(
    spans: InMemorySpanExporter, app: Celery
) -> None:
    @app.task(
        bind=True,
        name="reports.flaky",
        autoretry_for=(FlakyError,),
        max_retries=1,
        default_retry_delay=0,
    )
    def flaky(self: Any) -> str:
        if self.request.retries == 0:
            raise FlakyError("not yet")
        return "done"

    request = _published(app, flaky)
    tracer = build_tracer(flaky.name, flaky, app=app)
    retried: list[dict[str, Any]] = []

    def keep_retry(headers: dict[str, Any] | None = None, **_: Any) -> None:
        retried.append(dict(headers or {}))

    signals.before_task_publish.connect(keep_retry, weak=False)
    try:
        tracer(request["id"], (), {}, request)  # attempt 0 fails and publishes the retry
    finally:
        signals.before_task_publish.disconnect(keep_retry)
    [retry_message] = retried
    assert retry_message["retries"] == 1
    tracer(request["id"], (), {}, {**retry_message, "delivery_info": request["delivery_info"]})

    first, second = sorted(_by_kind(spans, SpanKind.CONSUMER), key=lambda s: s.start_time or 0)
    assert first.attributes is not None and second.attributes is not None
    assert first.attributes["messaging.message.retry.count"] == 0
    assert first.status.status_code is StatusCode.ERROR
    assert [e.attributes["exception.type"] for e in first.events if e.attributes] == [
        "tests.instrument.test_jobs.FlakyError"
    ]
    assert second.attributes["messaging.message.retry.count"] == 1
    assert second.status.status_code is not StatusCode.ERROR
    # The retry continues the publish span its failed attempt started.
    republish = next(
        s
        for s in _by_kind(spans, SpanKind.PRODUCER)
        if s.parent and s.parent.span_id == first.context.span_id
    )
    assert second.parent is not None and second.parent.span_id == republish.context.span_id
