"""Spans to OTLP (or any exporter) are scrubbed copies; clean spans pass through untouched."""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from otel_sentry._internal.scrub import FILTERED, Scrubber
from otel_sentry._internal.scrub_spans import ScrubbingSpanExporter, scrub_span


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "shop", "db.password": "r1"}))
    provider.add_span_processor(SimpleSpanProcessor(ScrubbingSpanExporter(memory, Scrubber())))
    return provider, memory


def test_secrets_in_attributes_events_links_and_status_are_replaced() -> None:
    provider, memory = _provider()
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("GET /cb") as span:
        span.set_attribute("http.url", "https://api.test/cb?code=1&token=s1")
        span.set_attribute("http.request.header.authorization", ("Bearer s2abcdef",))
        span.set_attribute("http.route", "/cb")
        span.add_event("exception", {"exception.message": "failed password=s3 for ada"})
        span.set_status(Status(StatusCode.ERROR, "upstream said api_key=s4"))
    [out] = memory.get_finished_spans()
    assert out.attributes is not None
    assert out.attributes["http.url"] == "https://api.test/cb?code=1&token=[Filtered]"
    assert out.attributes["http.request.header.authorization"] == FILTERED
    assert out.attributes["http.route"] == "/cb"
    assert out.events[0].attributes == {"exception.message": "failed password=[Filtered] for ada"}
    assert out.status.description == "upstream said api_key=[Filtered]"
    assert out.resource.attributes["db.password"] == FILTERED
    assert out.resource.attributes["service.name"] == "shop"
    assert out.context == span.get_span_context()


def test_a_clean_span_is_not_copied() -> None:
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("GET /items/{id}") as span:
        span.set_attribute("http.route", "/items/{id}")
        span.set_attribute("http.status_code", 200)
    [finished] = memory.get_finished_spans()
    assert scrub_span(finished, Scrubber()) is finished
