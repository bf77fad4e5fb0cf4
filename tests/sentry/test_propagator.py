"""SentryPropagator: read and write sentry-trace, baggage, traceparent and tracestate."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider

from otel_sentry._internal.instrument.outgoing import set_outgoing_url
from otel_sentry._internal.sentry.dsc import BAGGAGE_MAX_BYTES, BAGGAGE_MAX_MEMBERS, incoming_trace
from otel_sentry._internal.sentry.propagator import HeadDsc, SentryPropagator, should_propagate
from otel_sentry._internal.sentry.sampler import SentrySampler

TRACE = "771a43a4192642f0b136d5159a501700"
SPAN = "b3a3c0d1e2f30415"
HEAD = HeadDsc(public_key="pk1", release="api@1", environment="prod", org_id="42")
PROVIDER = TracerProvider(sampler=SentrySampler(rate=1.0))
TRACER = PROVIDER.get_tracer("tests")


def _remote(context: Context) -> trace.SpanContext:
    return trace.get_current_span(context).get_span_context()


def test_sentry_trace_and_baggage_are_continued_and_frozen() -> None:
    baggage = (
        f"sentry-trace_id={TRACE},sentry-public_key=js,sentry-sample_rate=0.25,"
        "sentry-sample_rand=0.1,sentry-sampled=true,sentry-release=web%401,other=keep"
    )
    ctx = SentryPropagator(HEAD).extract({"sentry-trace": f"{TRACE}-{SPAN}-1", "baggage": baggage})
    remote = _remote(ctx)
    assert (f"{remote.trace_id:032x}", f"{remote.span_id:016x}") == (TRACE, SPAN)
    assert remote.is_remote and remote.trace_flags.sampled
    incoming = incoming_trace(ctx)
    assert incoming is not None and incoming.sampled is True
    assert incoming.dsc is not None and incoming.dsc["release"] == "web@1"
    assert incoming.foreign_baggage == ("other=keep",)


@pytest.mark.parametrize(("flag", "sampled"), [("-1", True), ("-0", False), ("", None)])
def test_the_flag_or_its_absence(flag: str, sampled: bool | None) -> None:
    ctx = SentryPropagator(HEAD).extract({"sentry-trace": f"{TRACE}-{SPAN}{flag}"})
    assert incoming_trace(ctx).sampled is sampled  # type: ignore[union-attr]


def test_traceparent_alone_is_continued() -> None:
    ctx = SentryPropagator(HEAD).extract({"traceparent": f"00-{TRACE}-{SPAN}-01"})
    remote = _remote(ctx)
    assert f"{remote.trace_id:032x}" == TRACE and remote.trace_flags.sampled


def test_sentry_trace_wins_over_a_conflicting_traceparent() -> None:
    other = "0af7651916cd43dd8448eb211c80319c"
    ctx = SentryPropagator(HEAD).extract(
        {"sentry-trace": f"{TRACE}-{SPAN}-1", "traceparent": f"00-{other}-{SPAN}-00"}
    )
    assert f"{_remote(ctx).trace_id:032x}" == TRACE


def test_a_dsc_for_another_trace_is_dropped() -> None:
    baggage = "sentry-trace_id=0af7651916cd43dd8448eb211c80319c,sentry-sample_rate=1"
    ctx = SentryPropagator(HEAD).extract({"sentry-trace": f"{TRACE}-{SPAN}-1", "baggage": baggage})
    assert incoming_trace(ctx).dsc is None  # type: ignore[union-attr]


def test_missing_sample_rand_is_derived_consistently() -> None:
    for flag, expect in (("1", True), ("0", False)):
        ctx = SentryPropagator(HEAD).extract(
            {"sentry-trace": f"{TRACE}-{SPAN}-{flag}", "baggage": "sentry-sample_rate=0.3"}
        )
        dsc = incoming_trace(ctx).dsc  # type: ignore[union-attr]
        assert dsc is not None
        assert (float(dsc["sample_rand"]) < 0.3) is expect


@pytest.mark.parametrize(
    ("theirs", "ours", "strict", "continued"),
    [
        ("42", "42", False, True),
        ("7", "42", False, False),
        (None, "42", False, True),
        ("7", None, False, True),
        (None, "42", True, False),
        ("42", "42", True, True),
        (None, None, True, True),
    ],
)
def test_strict_trace_continuation_by_org(
    theirs: str | None, ours: str | None, strict: bool, continued: bool
) -> None:
    baggage = "sentry-sample_rate=1" + (f",sentry-org_id={theirs}" if theirs else "")
    head = HeadDsc(org_id=ours, strict=strict)
    ctx = SentryPropagator(head).extract({"sentry-trace": f"{TRACE}-{SPAN}-1", "baggage": baggage})
    assert _remote(ctx).is_valid is continued
    if not continued:
        assert incoming_trace(ctx).dsc is None  # type: ignore[union-attr]  # never forwarded


def _inject(
    context: Context | None = None, propagator: SentryPropagator | None = None
) -> dict[str, str]:
    carrier: dict[str, str] = {}
    (propagator or SentryPropagator(HEAD)).inject(carrier, context)
    return carrier


def test_inject_as_head_writes_all_four_headers_and_a_head_dsc() -> None:
    with TRACER.start_as_current_span("root") as span:
        headers = _inject()
    ctx = span.get_span_context()
    assert headers["sentry-trace"] == f"{ctx.trace_id:032x}-{ctx.span_id:016x}-1"
    version, trace_id, span_id, flags = headers["traceparent"].split("-")
    assert (version, trace_id, span_id) == ("00", f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")
    assert int(flags, 16) & 1  # sampled (the SDK may also set W3C's "random" bit)
    assert headers["tracestate"].startswith("sentry=r:")
    baggage = dict(m.split("=", 1) for m in headers["baggage"].split(","))
    assert baggage["sentry-trace_id"] == f"{ctx.trace_id:032x}"
    assert baggage["sentry-public_key"] == "pk1" and baggage["sentry-release"] == "api%401"
    assert baggage["sentry-sample_rate"] == "1" and baggage["sentry-sampled"] == "true"
    assert baggage["sentry-org_id"] == "42"


def test_a_continued_trace_passes_the_frozen_dsc_and_foreign_entries_on() -> None:
    incoming_baggage = (
        f"sentry-trace_id={TRACE},sentry-release=web%401,sentry-sample_rate=0.5,vendor=x"
    )
    ctx = SentryPropagator(HEAD).extract(
        {"sentry-trace": f"{TRACE}-{SPAN}-1", "baggage": incoming_baggage}
    )
    with TRACER.start_as_current_span("server", context=ctx):
        from opentelemetry import context as otel_context

        token = otel_context.attach(ctx)
        try:
            with TRACER.start_as_current_span("client"):
                headers = _inject()
        finally:
            otel_context.detach(token)
    assert "sentry-release=web%401" in headers["baggage"]  # theirs, not ours (api@1)
    assert "sentry-public_key=pk1" not in headers["baggage"]
    assert headers["baggage"].endswith("vendor=x")
    assert headers["sentry-trace"].startswith(TRACE)


def test_unsampled_decision_travels_on() -> None:
    ctx = SentryPropagator(HEAD).extract({"sentry-trace": f"{TRACE}-{SPAN}-0"})
    provider = TracerProvider(sampler=SentrySampler(rate=1.0))
    with provider.get_tracer("t").start_as_current_span("server", context=ctx) as span:
        assert not span.is_recording()
        headers = _inject()
    assert headers["sentry-trace"].endswith("-0")
    assert int(headers["traceparent"].rsplit("-", 1)[1], 16) & 1 == 0


def test_existing_baggage_on_the_request_is_kept() -> None:
    carrier = {"baggage": "app=1,sentry-release=stale"}
    with TRACER.start_as_current_span("root"):
        SentryPropagator(HEAD).inject(carrier)
    assert carrier["baggage"].endswith("app=1")
    assert "stale" not in carrier["baggage"]


@pytest.mark.parametrize(
    ("url", "targets", "expected"),
    [
        ("https://api.openai.com/v1/chat/completions", None, False),
        ("https://eu.api.openai.com/v1", None, False),
        ("https://api.anthropic.com/v1/messages", None, False),
        ("http://payments.internal:8080/charge", None, True),
        ("https://notapi.openai.com.evil/x", None, True),
        ("https://api.internal/x", ("api.internal",), True),
        ("https://other/x", ("api.internal",), False),
        ("https://api.internal/x", (r"^https://api\.",), True),
        (None, ("api.internal",), True),
    ],
)
def test_propagation_targets(
    url: str | None, targets: tuple[str, ...] | None, expected: bool
) -> None:
    assert should_propagate(url, targets) is expected


def test_no_headers_to_a_denied_host() -> None:
    with TRACER.start_as_current_span("client"):
        set_outgoing_url("https://api.openai.com/v1/chat/completions")
        assert _inject() == {}
        set_outgoing_url("http://127.0.0.1:9/next-service")
        assert "sentry-trace" in _inject()


# -- hostile input ---------------------------------------------------------------------------
_HEX = "0123456789abcdef"
_pieces = st.one_of(
    st.text(alphabet=_HEX, min_size=0, max_size=40),
    st.sampled_from(
        [
            "0" * 32,
            "0" * 16,
            TRACE,
            SPAN,
            "-",
            "--",
            "-1",
            "-0",
            "-2",
            " ",
            "\t",
            "ÿ",
            "\u202e",
            "%",
            "%zz",
            "%E2%82",
        ]
    ),
    st.text(max_size=20),
)
_header = st.lists(_pieces, max_size=8).map("".join)
_member = st.tuples(
    st.one_of(
        st.sampled_from(
            [
                "sentry-trace_id",
                "sentry-sample_rate",
                "sentry-sample_rand",
                "sentry-sampled",
                "sentry-org_id",
                "sentry-release",
                "k",
                "",
            ]
        ),
        st.text(alphabet=string.printable, max_size=12),
    ),
    _header,
).map(lambda kv: f"{kv[0]}={kv[1]}")
_baggage = st.one_of(
    st.lists(_member, max_size=30).map(",".join),
    st.just("sentry-release=" + "x" * 20_000),
    st.just(",".join(f"k{i}=v" for i in range(400))),
    st.just("sentry-sample_rate=0.5," * 300),
)


@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    sentry_trace=st.one_of(st.none(), _header),
    traceparent=st.one_of(st.none(), _header.map(lambda h: "00-" + h)),
    baggage=st.one_of(st.none(), _baggage, st.lists(_baggage, max_size=3)),
)
def test_hostile_headers_never_raise_and_stay_within_limits(
    sentry_trace: str | None, traceparent: str | None, baggage: Any
) -> None:
    carrier: dict[str, Any] = {}
    if sentry_trace is not None:
        carrier["sentry-trace"] = sentry_trace
    if traceparent is not None:
        carrier["traceparent"] = traceparent
    if baggage is not None:
        carrier["baggage"] = baggage
    propagator = SentryPropagator(HEAD)
    ctx = propagator.extract(carrier)
    remote = _remote(ctx)
    if remote.is_valid:
        assert remote.trace_id != 0 and remote.span_id != 0
    with TRACER.start_as_current_span("server", context=ctx) as span:
        assert span.get_span_context().is_valid  # an invalid input starts a fresh, valid trace
        out: dict[str, str] = {}
        propagator.inject(out)
    assert len(out["baggage"].encode()) <= BAGGAGE_MAX_BYTES
    assert len(out["baggage"].split(",")) <= BAGGAGE_MAX_MEMBERS
    assert out["sentry-trace"].count("-") == 2


def _inject_under(ctx: Context, propagator: SentryPropagator) -> dict[str, str]:
    from opentelemetry import context as otel_context

    token = otel_context.attach(ctx)
    try:
        with TRACER.start_as_current_span("client"):
            return _inject(propagator=propagator)
    finally:
        otel_context.detach(token)


def test_without_a_dsn_no_sentry_dsc_is_started_but_foreign_baggage_and_ids_travel() -> None:
    # A DSC without public_key is one Relay ignores and every SDK downstream would freeze.
    no_dsn = SentryPropagator(HeadDsc(release="api@1"))
    ctx = SentryPropagator(HEAD).extract(
        {"traceparent": f"00-{TRACE}-{SPAN}-01", "baggage": "vendor=keep"}
    )
    headers = _inject_under(ctx, no_dsn)
    assert headers["sentry-trace"].startswith(f"{TRACE}-")
    assert "traceparent" in headers
    assert headers.get("baggage") == "vendor=keep"
    # A DSC that arrived is still passed on unchanged, DSN or not.
    frozen = SentryPropagator(HEAD).extract(
        {
            "sentry-trace": f"{TRACE}-{SPAN}-1",
            "baggage": f"sentry-trace_id={TRACE},sentry-public_key=up",
        }
    )
    assert "sentry-public_key=up" in _inject_under(frozen, no_dsn)["baggage"]
    # And with a DSN a head DSC is started as before.
    with TRACER.start_as_current_span("root"):
        assert "sentry-public_key=pk1" in _inject()["baggage"]
