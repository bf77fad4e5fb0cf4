"""keep_error_traces: unsampled traces recorded, held until their root ends, kept for an error.

Spans come from a real tracer provider whose sampler is ours at a rate that samples nothing
(``keep_unsampled`` on); the held segments run on an injected clock.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from benchmarks.extrapolation import estimate, run
from otel_sentry._internal.sentry.keep_errors import (
    KEEP_ATTRIBUTE,
    HeldSegments,
    errored,
    estimated_bytes,
    forward_kept,
)
from otel_sentry._internal.sentry.propagator import HeadDsc, SentryPropagator
from otel_sentry._internal.sentry.sampler import SentrySampler
from otel_sentry._internal.sentry.segments import Segment


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Recorder(SimpleSpanProcessor):
    """Every span that ends, sampled or not (a SimpleSpanProcessor exports sampled ones only)."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        super().__init__(self.exporter)
        self.ended: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)
        super().on_end(span)


@pytest.fixture
def recorded() -> Iterator[tuple[trace.Tracer, Recorder]]:
    sampler = SentrySampler(rate=1e-9)
    sampler.keep_unsampled = True
    provider = TracerProvider(sampler=sampler)
    recorder = Recorder()
    provider.add_span_processor(recorder)
    errored.enabled = True
    yield provider.get_tracer("tests"), recorder
    errored.enabled = False
    errored.clear()


def _feed(held: HeldSegments, spans: list[ReadableSpan]) -> list[Segment]:
    return [s for s in (held.add(span) for span in spans) if s is not None]


def test_unsampled_traces_are_recorded_but_still_say_not_sampled_downstream(
    recorded: tuple[trace.Tracer, Recorder],
) -> None:
    tracer, recorder = recorded
    carrier: dict[str, str] = {}
    with tracer.start_as_current_span("root") as root, tracer.start_as_current_span("child"):
        SentryPropagator(HeadDsc(public_key="pk")).inject(carrier)
    assert root.is_recording() is False  # ended
    assert [s.name for s in recorder.ended] == ["child", "root"]
    assert not any(s.context.trace_flags.sampled for s in recorder.ended)
    # The head's decision travels on: the next service does not sample this trace.
    assert carrier["sentry-trace"].endswith("-0")
    assert int(carrier["traceparent"].rsplit("-", 1)[1], 16) & 1 == 0  # the sampled flag
    assert recorder.exporter.get_finished_spans() == ()  # OTLP-style processors skip them


def test_an_ok_segment_is_dropped_and_counted_with_its_spans(
    recorded: tuple[trace.Tracer, Recorder],
) -> None:
    tracer, recorder = recorded
    with tracer.start_as_current_span("root"), tracer.start_as_current_span("child"):
        pass
    held = HeldSegments(max_bytes=2**20, clock=Clock())
    assert _feed(held, recorder.ended) == []
    assert held.drops_since_last_call() == (1, 2)
    assert held.drops_since_last_call() == (0, 0)


@pytest.mark.parametrize("how", ["error status", "exception event", "captured event"])
def test_a_segment_with_an_error_is_kept_whole(
    recorded: tuple[trace.Tracer, Recorder], how: str
) -> None:
    tracer, recorder = recorded
    with tracer.start_as_current_span("root"):
        with tracer.start_as_current_span("ok child"):
            pass
        with tracer.start_as_current_span("failing child") as child:
            if how == "error status":
                child.set_status(Status(StatusCode.ERROR))
            elif how == "exception event":
                child.record_exception(ValueError("no"))
            else:  # what events.py does when an error event is captured under the span
                errored.mark(child.get_span_context().trace_id)
    held = HeldSegments(max_bytes=2**20, clock=Clock())
    [segment] = _feed(held, recorder.ended)
    assert segment.root.name == "root"
    assert sorted(s.name for s in segment.children) == ["failing child", "ok child"]
    assert (segment.errored, segment.head_sampled, segment.kind) == (True, False, "complete")
    assert held.drops_since_last_call() == (0, 0)


def test_a_child_ending_after_its_kept_root_is_sent_too(
    recorded: tuple[trace.Tracer, Recorder],
) -> None:
    tracer, recorder = recorded
    held = HeldSegments(max_bytes=2**20, clock=Clock())
    with tracer.start_as_current_span("failing request") as root:
        root.set_status(Status(StatusCode.ERROR))
        background = tracer.start_span("background write")
    ok_root = tracer.start_span("ok request")
    with trace.use_span(ok_root, end_on_exit=True):
        ok_background = tracer.start_span("background read")
    [kept] = _feed(held, recorder.ended)  # both roots ended; only the failing one is kept
    assert kept.root.name == "failing request"
    background.end()
    ok_background.end()
    late = _feed(held, recorder.ended[2:])
    assert [(s.root.name, s.kind, s.errored) for s in late] == [("background write", "late", True)]
    # The ok request: its root, then its late child, as sampled out.
    assert held.drops_since_last_call() == (1, 2)


def test_children_waiting_past_the_timeout_are_decided_on_their_own(
    recorded: tuple[trace.Tracer, Recorder],
) -> None:
    tracer, recorder = recorded
    clock = Clock()
    held = HeldSegments(max_bytes=2**20, max_wait=60, clock=clock)
    root = tracer.start_span("long request")
    with trace.use_span(root):
        with tracer.start_as_current_span("ok step"):
            pass
        with tracer.start_as_current_span("failing step") as failing:
            failing.set_status(Status(StatusCode.ERROR))
    assert _feed(held, recorder.ended) == []
    clock.now = 59
    assert held.expire() == []
    clock.now = 61
    kept = held.expire()
    assert [(s.root.name, s.kind, s.errored) for s in kept] == [("failing step", "orphan", True)]
    assert held.drops_since_last_call() == (0, 1)  # "ok step", an orphan: no transaction
    assert held.shed == 0  # let go by the timeout, not the budget


def test_the_byte_budget_lets_the_oldest_go_and_counts_them(
    recorded: tuple[trace.Tracer, Recorder],
) -> None:
    tracer, recorder = recorded
    roots = []
    for i in range(4):
        root = tracer.start_span(f"request {i}")
        roots.append(root)
        with trace.use_span(root), tracer.start_as_current_span(f"step {i}"):
            pass
    one = estimated_bytes(recorder.ended[0])
    held = HeldSegments(max_bytes=2 * one, clock=Clock())
    assert _feed(held, recorder.ended) == []
    assert held.expire() == []
    # Four children of 2 fit: the two oldest were let go, counted as sampled out (no error).
    assert held.shed == 2
    assert held.buffer.pending == 2 and held.buffer.pending_bytes == 2 * one
    for root in roots:
        root.end()
    assert _feed(held, recorder.ended[4:]) == []
    # 4 transactions; 2 shed children + 4 roots + 2 children that waited = 8 spans.
    assert held.drops_since_last_call() == (4, 8)
    assert held.buffer.pending == 0 and held.buffer.pending_bytes == 0


def test_a_kept_segment_goes_to_the_other_destinations_as_sampled_marked_spans(
    recorded: tuple[trace.Tracer, Recorder],
) -> None:
    tracer, recorder = recorded
    with tracer.start_as_current_span("root") as root:
        root.set_status(Status(StatusCode.ERROR))
        with tracer.start_as_current_span("child"):
            pass
    [segment] = _feed(HeldSegments(max_bytes=2**20, clock=Clock()), recorder.ended)
    otlp = InMemorySpanExporter()
    forward_kept(segment, [SimpleSpanProcessor(otlp)])
    exported = otlp.get_finished_spans()
    assert sorted(s.name for s in exported) == ["child", "root"]
    assert all(s.context.trace_flags.sampled for s in exported)
    assert all((s.attributes or {}).get(KEEP_ATTRIBUTE) is True for s in exported)
    child = next(s for s in exported if s.name == "child")
    assert child.parent is not None and child.parent.span_id == root.get_span_context().span_id


def test_the_weighting_keeps_sentrys_extrapolation_within_10_percent() -> None:
    # docs/design.md: an endpoint failing 5% of the time at head rate 0.1, through the real
    # sampler, exporter and transaction builder; extrapolated as Relay does (1 / sample_rate).
    # Seeded (failures and trace ids): the same trials on every run. 20,000 requests put 10% at
    # about 5 standard deviations of the ok requests' sampling noise.
    for seed in (1, 2):
        arrived, failures = run(requests=20_000, failure_rate=0.05, keep=True, seed=seed)
        assert sum(a.failed for a in arrived) == failures  # every failure has its transaction
        total, rate = estimate(arrived, lambda a: 1 / a.sample_rate)
        assert abs(total / 20_000 - 1) < 0.10
        assert abs(rate / (failures / 20_000) - 1) < 0.10
        # The weighting it replaces: the head's rate on the extra transactions too.
        _, naive = estimate(arrived, lambda a: 1 / 0.1)
        assert naive / (failures / 20_000) > 2
