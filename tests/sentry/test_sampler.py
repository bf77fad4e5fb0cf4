"""SentrySampler: Sentry's precedence (sampler, rules, parent, rate), sample_rand, children."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context, set_value
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState

from otel_sentry._internal.sentry.dsc import CONTEXT_KEY, IncomingTrace, consistent_sample_rand
from otel_sentry._internal.sentry.noise import NoiseFilter
from otel_sentry._internal.sentry.sampler import SentrySampler, decision_from_trace_state
from otel_sentry._internal.sentry.sessions import RequestSessions, SessionTracker

RNG = random.Random(7)


def _remote_parent(sampled: bool, incoming: IncomingTrace | None = None) -> Context:
    ctx = SpanContext(
        trace_id=RNG.getrandbits(128),
        span_id=RNG.getrandbits(64),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else 0),
    )
    context = trace.set_span_in_context(NonRecordingSpan(ctx))
    if incoming is not None:
        context = set_value(CONTEXT_KEY, incoming, context)
    return context


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_rate_is_honoured_within_three_sigma(rate: float) -> None:
    sampler = SentrySampler(rate=rate)
    n = 20_000
    kept = sum(
        sampler.should_sample(None, RNG.getrandbits(128), "GET /x").decision.is_sampled()
        for _ in range(n)
    )
    sigma = math.sqrt(n * rate * (1 - rate))
    assert abs(kept - n * rate) <= 3 * sigma + 1e-9
    assert sampler.drops_since_last_call() == n - kept
    assert sampler.drops_since_last_call() == 0


def test_decision_is_sample_rand_below_rate_and_travels_in_trace_state() -> None:
    sampler = SentrySampler(rate=0.3)
    for _ in range(2_000):
        result = sampler.should_sample(None, RNG.getrandbits(128), "job")
        rand, rate = decision_from_trace_state(result.trace_state)  # type: ignore[misc]
        assert rate == 0.3
        assert 0 <= rand < 1
        assert result.decision.is_sampled() == (rand < rate)
        if result.decision.is_sampled():
            assert result.attributes["sentry.sample_rand"] == rand  # type: ignore[index]


def test_traces_sampler_wins_and_sees_the_context() -> None:
    seen: list[dict[str, Any]] = []

    def choose(context: dict[str, Any]) -> float:
        seen.append(context)
        return 0.0 if context["attributes"].get("url.path") == "/health" else 1.0

    sampler = SentrySampler(rate=0.5, traces_sampler=choose)
    health = sampler.should_sample(None, 1 << 70, "GET /health", attributes={"url.path": "/health"})
    other = sampler.should_sample(None, 1 << 70, "GET /x", attributes={"url.path": "/x"})
    parent = _remote_parent(sampled=False)
    overrides_parent = sampler.should_sample(
        parent, 1 << 70, "GET /x", attributes={"url.path": "/x"}
    )
    assert not health.decision.is_sampled()
    assert other.decision.is_sampled()
    assert overrides_parent.decision.is_sampled()
    assert seen[0]["name"] == "GET /health"
    assert seen[2]["parent_sampled"] is False


@pytest.mark.parametrize("bad", [1.5, -1, "yes", float("nan")])
def test_a_broken_traces_sampler_drops_rather_than_raises(bad: Any) -> None:
    sampler = SentrySampler(traces_sampler=lambda _ctx: bad)
    assert sampler.should_sample(None, 123, "x").decision is Decision.DROP


def test_a_raising_traces_sampler_drops() -> None:
    def explode(_ctx: dict[str, Any]) -> float:
        raise RuntimeError("bug in user code")

    assert (
        SentrySampler(traces_sampler=explode).should_sample(None, 1, "x").decision is Decision.DROP
    )


def test_rules_match_route_path_and_name() -> None:
    sampler = SentrySampler(
        rate=1.0, rules=[("/health", 0.0), ("/api/v1/projects/*", 1.0), ("*", 0.0)]
    )
    decide = lambda name, **attrs: sampler.should_sample(  # noqa: E731
        None, RNG.getrandbits(128), name, attributes=attrs
    ).decision.is_sampled()
    assert not decide("GET /health")
    assert not decide("GET", **{"url.path": "/health"})
    assert decide("GET /api/v1/projects/{id}", **{"http.route": "/api/v1/projects/{id}"})
    assert decide("GET", **{"http.target": "/api/v1/projects/7?x=1"})
    assert not decide("GET /other")


def test_parent_decision_is_inherited_with_upstream_rate_and_rand() -> None:
    sampler = SentrySampler(rate=0.0)
    incoming = IncomingTrace(sampled=True, dsc={"sample_rate": "0.25", "sample_rand": "0.125"})
    result = sampler.should_sample(_remote_parent(True, incoming), 99, "GET /x")
    assert result.decision.is_sampled()
    assert decision_from_trace_state(result.trace_state) == (0.125, 0.25)

    unsampled = IncomingTrace(sampled=False, dsc={"sample_rate": "0.25", "sample_rand": "0.7"})
    dropped = SentrySampler(rate=1.0).should_sample(_remote_parent(False, unsampled), 99, "GET /x")
    assert not dropped.decision.is_sampled()  # the front end said no: nothing sent, 0 travels on
    assert decision_from_trace_state(dropped.trace_state) == (0.7, 0.25)


def test_w3c_parent_without_sentry_baggage_is_honoured() -> None:
    assert SentrySampler(rate=0.0).should_sample(_remote_parent(True), 5, "x").decision.is_sampled()
    assert (
        not SentrySampler(rate=1.0)
        .should_sample(_remote_parent(False), 5, "x")
        .decision.is_sampled()
    )


def test_deferred_upstream_decision_is_made_here() -> None:
    incoming = IncomingTrace(sampled=None, dsc={"sample_rand": "0.05"})
    ctx = _remote_parent(False, incoming)
    assert SentrySampler(rate=0.1).should_sample(ctx, 5, "x").decision.is_sampled()
    assert not SentrySampler(rate=0.01).should_sample(ctx, 5, "x").decision.is_sampled()


# Every (rate, decision) pair a consistent sample_rand exists for: not sampled at 1.0 or
# sampled at 0.0 cannot happen.
CONSISTENT = [
    (rate, sampled)
    for rate in (0.0, 0.001, 0.3, 0.999999, 1.0)
    for sampled in (True, False)
    if not ((sampled and rate == 0.0) or (not sampled and rate == 1.0))
]


@pytest.mark.parametrize(("rate", "sampled"), CONSISTENT)
def test_derived_sample_rand_agrees_with_the_upstream_decision(rate: float, sampled: bool) -> None:
    for _ in range(500):
        rand = consistent_sample_rand(RNG.getrandbits(128), rate, sampled)
        assert 0 <= rand < 1
        assert (rand < rate) == sampled


def test_children_follow_the_root_and_unsampled_spans_are_not_recorded() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=SentrySampler(rate=0.5))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    kept_roots = 0
    for _ in range(400):
        with tracer.start_as_current_span("root") as root:
            with tracer.start_as_current_span("child", attributes={"k": "v"}) as child:
                assert child.is_recording() == root.is_recording()
                assert child.get_span_context().trace_state == root.get_span_context().trace_state
            kept_roots += root.is_recording()
    spans = exporter.get_finished_spans()
    assert len(spans) == 2 * kept_roots
    assert all(s.attributes["k"] == "v" for s in spans if s.name == "child")  # type: ignore[index]
    assert all("sentry.sample_rate" in s.attributes for s in spans if s.name == "root")  # type: ignore[operator]


def test_the_decision_in_trace_state_is_what_the_public_api_builds() -> None:
    # The root's state is built without TraceState's per-pair checks (sampler._with_decision):
    # it must be the state update() gives, header included, with or without upstream entries.
    sampler = SentrySampler(rate=0.5)
    result = sampler.should_sample(None, RNG.getrandbits(128), "GET /x")
    state = result.trace_state
    assert state is not None
    value = state["sentry"]
    assert state == TraceState().update("sentry", value)
    assert state.to_header() == f"sentry={value}"
    upstream = TraceState([("vendor", "abc"), ("sentry", "r:0.1;s:1.0")])
    parent = SpanContext(
        trace_id=RNG.getrandbits(128),
        span_id=RNG.getrandbits(64),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=upstream,
    )
    context = trace.set_span_in_context(NonRecordingSpan(parent))
    child_state = sampler.should_sample(context, parent.trace_id, "GET /x").trace_state
    assert child_state is not None
    assert list(child_state.items()) == [("sentry", child_state["sentry"]), ("vendor", "abc")]


def test_unsampled_requests_are_counted_once_and_noise_never() -> None:
    # Release health counts what the sampler drops (sessions.py); the sampler tells it when no
    # rule matched, and it then skips its own noise rules. A user's rule that matches must
    # still leave the noise check to the tracker.
    envelopes: list[Any] = []
    flusher = RequestSessions(envelopes.append, release="1.0", environment="test")
    noise = NoiseFilter({"health", "preflight"})
    tracker = SessionTracker(flusher, noise)
    sampler = SentrySampler(
        rate=0.0, rules=(("/reports/*", 0.0), ("*/internal/*", 0.0), *noise.sampling_rules())
    )
    sampler.count_unsampled = tracker.count_unsampled
    requests = [
        ("GET /items/{id}", {"http.route": "/items/{id}", "url.path": "/items/1"}),  # no rule
        ("GET /reports/{id}", {"http.route": "/reports/{id}", "url.path": "/reports/2"}),  # user
        ("GET /health", {"http.route": "/health", "url.path": "/health"}),  # noise
        ("GET /internal/health", {"url.path": "/internal/health"}),  # a user rule, and noise
        ("OPTIONS /items/1", {"url.path": "/items/1"}),  # a preflight
    ]
    for name, attributes in requests:
        result = sampler.should_sample(
            None, RNG.getrandbits(128), name, SpanKind.SERVER, attributes
        )
        assert not result.decision.is_sampled()
    flusher.flush()
    aggregates = [
        aggregate
        for envelope in envelopes
        for item in envelope.items
        for aggregate in item.payload.json["aggregates"]
    ]
    assert sum(a.get("exited", 0) for a in aggregates) == 2  # /items and /reports
    flusher.kill()
