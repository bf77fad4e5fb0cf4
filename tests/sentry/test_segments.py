"""SegmentBuffer: one segment per local root; late, orphaned and excess spans are not lost."""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from otel_sentry._internal.sentry.segments import SegmentBuffer


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _recorded() -> tuple[InMemorySpanExporter, TracerProvider]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter, provider


def _feed(buffer: SegmentBuffer, spans: tuple[ReadableSpan, ...]) -> list[object]:
    return [s for s in (buffer.add(span) for span in spans) if s is not None]


def test_children_wait_for_their_root_and_nest() -> None:
    exporter, provider = _recorded()
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("root"):
        with tracer.start_as_current_span("a"), tracer.start_as_current_span("a1"):
            pass
        with tracer.start_as_current_span("b"):
            pass
    buffer = SegmentBuffer()
    [segment] = _feed(buffer, exporter.get_finished_spans())
    assert segment.root.name == "root"  # type: ignore[attr-defined]
    assert sorted(s.name for s in segment.children) == ["a", "a1", "b"]  # type: ignore[attr-defined]
    assert buffer.pending == 0


def test_a_remote_parent_makes_a_local_root() -> None:
    exporter, provider = _recorded()
    remote = SpanContext(1, 2, is_remote=True, trace_flags=TraceFlags(1))
    with provider.get_tracer("t").start_as_current_span(
        "server", context=set_span_in_context(NonRecordingSpan(remote))
    ):
        pass
    [segment] = _feed(SegmentBuffer(), exporter.get_finished_spans())
    assert segment.root.name == "server"  # type: ignore[attr-defined]
    assert segment.kind == "complete"  # type: ignore[attr-defined]


def test_a_child_that_ends_after_its_root_is_sent_late_not_lost() -> None:
    exporter, provider = _recorded()
    tracer = provider.get_tracer("t")
    root = tracer.start_span("root")
    ctx = set_span_in_context(root)
    straggler = tracer.start_span("background", context=ctx)
    root.end()
    straggler.end()
    [first, late] = _feed(SegmentBuffer(), exporter.get_finished_spans())
    assert first.children == []  # type: ignore[attr-defined]
    assert late.kind == "late"  # type: ignore[attr-defined]
    assert late.root.name == "background"  # type: ignore[attr-defined]


def test_orphans_are_released_after_max_wait_and_when_full() -> None:
    exporter, provider = _recorded()
    tracer = provider.get_tracer("t")
    root = tracer.start_span("never-ends")
    for i in range(5):
        tracer.start_span(f"child{i}", context=set_span_in_context(root)).end()
    clock = Clock()
    buffer = SegmentBuffer(max_wait=10, clock=clock)
    assert _feed(buffer, exporter.get_finished_spans()) == []
    assert buffer.expire() == []
    clock.now = 11
    orphans = buffer.expire()
    assert sorted(o.root.name for o in orphans) == [f"child{i}" for i in range(5)]
    assert all(o.kind == "orphan" for o in orphans)
    assert buffer.pending == 0

    small = SegmentBuffer(max_pending=3, clock=Clock())
    _feed(small, exporter.get_finished_spans())
    # Over the bound, the oldest waiting group (all five share a parent) is released whole.
    assert len(small.expire()) == 5
    assert small.pending == 0


def test_more_than_max_children_is_capped_and_counted() -> None:
    exporter, provider = _recorded()
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("root"):
        for i in range(1_050):
            with tracer.start_as_current_span(f"s{i}"):
                pass
    [segment] = _feed(SegmentBuffer(max_children=1_000), exporter.get_finished_spans())
    assert len(segment.children) == 1_000  # type: ignore[attr-defined]
    assert segment.dropped == 50  # type: ignore[attr-defined]
    assert segment.children[0].name == "s0"  # type: ignore[attr-defined]  # earliest kept


def test_flush_all_releases_everything_waiting() -> None:
    exporter, provider = _recorded()
    tracer = provider.get_tracer("t")
    root = tracer.start_span("open")
    tracer.start_span("done", context=set_span_in_context(root)).end()
    buffer = SegmentBuffer()
    _feed(buffer, exporter.get_finished_spans())
    [orphan] = buffer.expire(flush_all=True)
    assert orphan.root.name == "done"
