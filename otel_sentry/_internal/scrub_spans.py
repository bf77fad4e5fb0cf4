"""OpenTelemetry spans scrubbed before any exporter sees them (OTLP, or the user's own).

Wraps a ``SpanExporter``: the batch processor calls ``export`` on its own thread, so the work
stays off the request path. ``ReadableSpan`` is immutable; a span is copied only when its name,
attributes, events, links or status description held something to replace. The resource is
scrubbed once per process, not per span.

    >>> BatchSpanProcessor(ScrubbingSpanExporter(OTLPSpanExporter()))   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Link, Status

from otel_sentry._internal import scrub
from otel_sentry._internal.scrub import Scrubber

__all__ = ["ScrubbingSpanExporter", "scrub_span"]


def _attributes(holder: Any) -> Mapping[str, Any]:
    # The SDK keeps a plain dict inside BoundedAttributes; reading it avoids a Python-level
    # lookup per key. Only read, never written.
    inner = getattr(getattr(holder, "_attributes", None), "_dict", None)
    if isinstance(inner, dict):
        return inner
    return dict(getattr(holder, "attributes", None) or {})


_resources: dict[int, tuple[Resource, Resource]] = {}


def _resource(scrubber: Scrubber, resource: Resource) -> Resource:
    cached = _resources.get(id(scrubber))
    if cached is not None and cached[0] is resource:
        return cached[1]
    attrs = dict(resource.attributes)
    scrubbed = scrubber.scrub_mapping(attrs)
    out = resource if scrubbed is attrs else Resource(dict(scrubbed), resource.schema_url)
    _resources.clear()
    _resources[id(scrubber)] = (resource, out)
    return out


def scrub_span(span: ReadableSpan, scrubber: Scrubber | None = None) -> ReadableSpan:
    """``span``, or a scrubbed copy of it when something in it had to be replaced."""
    s = scrubber or scrub.current()
    name = s.scrub_text(span.name)
    attrs = _attributes(span)
    new_attrs = s.scrub_mapping(attrs)
    events: Sequence[Event] = span.events
    new_events = [_event(s, e) for e in events]
    links: Sequence[Link] = span.links
    new_links = [_link(s, link) for link in links]
    status = span.status
    if status.description:
        description = s.scrub_text(status.description)
        if description is not status.description:
            status = Status(status.status_code, description)
    resource = _resource(s, span.resource)
    if (
        name is span.name
        and new_attrs is attrs
        and all(a is b for a, b in zip(new_events, events, strict=True))
        and all(a is b for a, b in zip(new_links, links, strict=True))
        and status is span.status
        and resource is span.resource
    ):
        return span
    return ReadableSpan(
        name=name,
        context=span.context,
        parent=span.parent,
        resource=resource,
        attributes=dict(new_attrs),
        events=new_events,
        links=new_links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _event(s: Scrubber, event: Event) -> Event:
    attrs = _attributes(event)
    new_attrs = s.scrub_mapping(attrs)
    name = s.scrub_text(event.name)
    if new_attrs is attrs and name is event.name:
        return event
    return Event(name, dict(new_attrs), event.timestamp)


def _link(s: Scrubber, link: Link) -> Link:
    attrs = _attributes(link)
    new_attrs = s.scrub_mapping(attrs)
    return link if new_attrs is attrs else Link(link.context, dict(new_attrs))


class ScrubbingSpanExporter(SpanExporter):
    """Any ``SpanExporter``, fed scrubbed spans. ``scrubber`` None: the active one at export."""

    def __init__(self, exporter: SpanExporter, scrubber: Scrubber | None = None) -> None:
        self.exporter = exporter
        self.scrubber = scrubber

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        s = self.scrubber or scrub.current()
        return self.exporter.export([scrub_span(span, s) for span in spans])

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)
