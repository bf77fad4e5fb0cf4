"""The dynamic sampling context (DSC): what a trace's head decided, carried in ``baggage``.

Sentry samples whole traces: the service that starts a trace fixes ``sample_rate``,
``sample_rand`` and ``sampled`` and every downstream service honours them; the DSC travels as
``sentry-`` prefixed ``baggage`` entries and is frozen the moment it is received or first sent.

    >>> dsc = parse_baggage("sentry-trace_id=abc,sentry-sample_rate=0.5,other=1")
    >>> dsc.values["sample_rate"], dsc.foreign
    ('0.5', ('other=1',))
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

from opentelemetry.context import Context, create_key, get_value
from opentelemetry.trace import SpanContext, TraceState

__all__ = [
    "BAGGAGE_MAX_BYTES",
    "BAGGAGE_MAX_MEMBERS",
    "CONTEXT_KEY",
    "DSC_ATTRIBUTE",
    "TRACE_STATE_KEY",
    "DscSource",
    "IncomingTrace",
    "ParsedBaggage",
    "consistent_sample_rand",
    "decision_from_trace_state",
    "dsc_for_context",
    "format_rate",
    "format_sample_rand",
    "head_dsc",
    "incoming_trace",
    "parse_baggage",
    "rand_from_trace_id",
    "serialize_baggage",
]

BAGGAGE_MAX_BYTES = 8192
BAGGAGE_MAX_MEMBERS = 180
_PREFIX = "sentry-"

# The propagator stores what it extracted under this key; the sampler and the processors read it.
CONTEXT_KEY = create_key("otel_sentry.incoming_trace")
# The upstream's frozen DSC, as baggage, on a continued root span (for the export thread).
DSC_ATTRIBUTE = "sentry.dsc"
# The root's sampling inputs, in the span context's tracestate: "r:<sample_rand>;s:<sample_rate>".
TRACE_STATE_KEY = "sentry"


@dataclass(frozen=True, slots=True)
class ParsedBaggage:
    values: Mapping[str, str]  # the sentry- entries, prefix removed, decoded
    foreign: tuple[str, ...]  # other vendors' members, kept verbatim


@dataclass(frozen=True, slots=True)
class IncomingTrace:
    """What an upstream service told us about the trace: its decision and its frozen DSC."""

    sampled: bool | None  # None: the upstream deferred the decision
    dsc: Mapping[str, str] | None  # None: no sentry baggage came (a non-Sentry upstream)
    foreign_baggage: tuple[str, ...] = ()

    @property
    def sample_rate(self) -> float | None:
        return _float(self.dsc.get("sample_rate")) if self.dsc else None

    @property
    def sample_rand(self) -> float | None:
        value = _float(self.dsc.get("sample_rand")) if self.dsc else None
        return value if value is not None and 0.0 <= value < 1.0 else None


def incoming_trace(context: Context | None) -> IncomingTrace | None:
    value = get_value(CONTEXT_KEY, context)
    return value if isinstance(value, IncomingTrace) else None


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value


def parse_baggage(header: str) -> ParsedBaggage:
    """Split a ``baggage`` header into Sentry's entries and everyone else's. Never raises."""
    values: dict[str, str] = {}
    foreign: list[str] = []
    for raw_member in header.split(","):
        member = raw_member.strip()
        if not member:
            continue
        key, sep, value = member.partition("=")
        key = key.strip()
        if not sep or not key:
            continue
        if key.startswith(_PREFIX):
            # Drop baggage properties (";prop") and undecodable bytes rather than fail.
            raw = value.split(";", 1)[0].strip()
            values[unquote(key[len(_PREFIX) :])] = unquote(raw, errors="replace")
        else:
            foreign.append(member)
    return ParsedBaggage(values, tuple(foreign))


def serialize_baggage(dsc: Mapping[str, str], foreign: tuple[str, ...] = ()) -> str:
    """Sentry's entries first, then other vendors', never past the W3C limits."""
    members = [f"{_PREFIX}{k}={quote(str(v), safe='')}" for k, v in dsc.items() if v != ""]
    members.extend(foreign)
    out: list[str] = []
    size = 0
    for member in members:
        extra = len(member.encode()) + (1 if out else 0)
        if len(out) >= BAGGAGE_MAX_MEMBERS or size + extra > BAGGAGE_MAX_BYTES:
            continue  # keep what fits; a later, shorter member may still fit
        out.append(member)
        size += extra
    return ",".join(out)


_RAND_BITS = 56
_RAND_SCALE = float(1 << _RAND_BITS)


def rand_from_trace_id(trace_id: int) -> float:
    """A uniform value in [0, 1) from the trace id's random low bits, to 6 decimals.

    Deriving it (rather than drawing it) makes the decision reproducible from the trace id alone,
    and costs no call to a random generator on the request path.
    """
    return int((trace_id & ((1 << _RAND_BITS) - 1)) / _RAND_SCALE * 1_000_000) / 1_000_000


def consistent_sample_rand(trace_id: int, rate: float, sampled: bool) -> float:
    """An upstream decided without sending ``sample_rand``: pick one that agrees with it."""
    u = rand_from_trace_id(trace_id)
    value = u * rate if sampled else rate + u * (1.0 - rate)
    value = int(value * 1_000_000) / 1_000_000
    if not sampled and value < rate:  # rounding down could cross the boundary
        value = rate
    return min(value, 0.999999)


def format_rate(rate: float) -> str:
    return repr(float(rate)) if rate not in (0.0, 1.0) else str(int(rate))


def format_sample_rand(rand: float) -> str:
    return f"{rand:.6f}"


def head_dsc(
    *,
    trace_id: int,
    public_key: str | None,
    sample_rate: float,
    sample_rand: float,
    sampled: bool,
    release: str | None,
    environment: str | None,
    transaction: str | None,
    org_id: str | None,
) -> dict[str, str]:
    """The DSC this service creates when it is the head of a trace."""
    dsc = {"trace_id": f"{trace_id:032x}"}
    if public_key:
        dsc["public_key"] = public_key
    dsc["sample_rate"] = format_rate(sample_rate)
    dsc["sample_rand"] = format_sample_rand(sample_rand)
    dsc["sampled"] = "true" if sampled else "false"
    if release:
        dsc["release"] = release
    if environment:
        dsc["environment"] = environment
    if transaction:
        dsc["transaction"] = transaction
    if org_id:
        dsc["org_id"] = org_id
    return dsc


def decision_from_trace_state(trace_state: TraceState) -> tuple[float, float] | None:
    """(sample_rand, sample_rate) that the trace's root recorded, if it was ours."""
    value = trace_state.get(TRACE_STATE_KEY)
    if not value:
        return None
    try:
        rand_part, rate_part = value.split(";", 1)
        return float(rand_part[2:]), float(rate_part[2:])
    except ValueError:
        return None


@dataclass(frozen=True)
class DscSource:
    """What this service puts in a DSC it creates as the head of a trace."""

    public_key: str | None = None
    release: str | None = None
    environment: str | None = None
    org_id: str | None = None


def dsc_for_context(
    ctx: SpanContext,
    incoming: IncomingTrace | None,
    source: DscSource,
    upstream_baggage: object = None,
    transaction: str | None = None,
) -> dict[str, str]:
    """The trace's DSC as seen from a span: the upstream's, frozen, or ours as head.

    ``upstream_baggage`` is the ``sentry.dsc`` attribute of a continued root, for callers that
    have the span but not the request's context (the export thread).
    """
    if incoming is not None and incoming.dsc:
        return dict(incoming.dsc)
    if isinstance(upstream_baggage, str) and (values := parse_baggage(upstream_baggage).values):
        return dict(values)
    recorded = decision_from_trace_state(ctx.trace_state)
    rand, rate = recorded if recorded else (0.0, 1.0)
    return head_dsc(
        trace_id=ctx.trace_id,
        public_key=source.public_key,
        sample_rate=rate,
        sample_rand=rand,
        sampled=ctx.trace_flags.sampled,
        release=source.release,
        environment=source.environment,
        transaction=transaction,
        org_id=source.org_id,
    )
