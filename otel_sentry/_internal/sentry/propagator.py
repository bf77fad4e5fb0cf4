"""One propagator for W3C ``traceparent``/``tracestate`` and Sentry's ``sentry-trace``/``baggage``.

Sentry's JS SDKs send ``sentry-trace`` + ``baggage`` (and ``traceparent`` only with
``propagateTraceparent: true``); sentry_sdk for Python reads only the first two; OpenTelemetry
services read only the W3C pair. This propagator reads all of them and writes all of them, so a
trace started in a Next.js page, continued by FastAPI and passed on to a Go service is one trace.

Extraction, and what wins when headers disagree:

1. ``sentry-trace`` when it is valid: its trace id, parent span id and flag (no flag = the
   decision was deferred to us). ``traceparent`` is the fallback; when both are valid and their
   trace ids differ, ``sentry-trace`` wins because the DSC in ``baggage`` belongs to it.
2. The ``sentry-`` entries of ``baggage`` are the head's frozen DSC, kept only if their
   ``trace_id`` (when present) matches the trace we continue. A rate and a decision without
   ``sample_rand`` get one derived that agrees with the decision. Other vendors' entries are kept
   and sent on unchanged.
3. Strict continuation: if the DSC's ``org_id`` and ours are both known and differ, the trace is
   not continued (a new one starts here); with ``strict_trace_continuation`` it is continued only
   when both are known and equal.

Anything malformed is ignored and a fresh trace starts: extraction never raises.

    set_global_textmap(SentryPropagator(head=HeadDsc(public_key="abc", release="1.0")))
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context, set_value
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otel_sentry._internal.instrument.outgoing import OUTGOING_URL
from otel_sentry._internal.roots import local_root
from otel_sentry._internal.sentry.dsc import (
    BAGGAGE_MAX_BYTES,
    CONTEXT_KEY,
    DscSource,
    IncomingTrace,
    consistent_sample_rand,
    dsc_for_context,
    format_sample_rand,
    incoming_trace,
    parse_baggage,
    serialize_baggage,
)
from otel_sentry._internal.sentry.transactions import dsc_transaction_name

__all__ = [
    "DEFAULT_DENIED_HOSTS",
    "HeadDsc",
    "SentryPropagator",
    "configure",
    "head_from_settings",
    "should_propagate",
]

_SENTRY_TRACE = re.compile(r"^[ \t]*([0-9a-f]{32})-([0-9a-f]{16})(?:-([01]))?[ \t]*$")
_W3C = TraceContextTextMapPropagator()
_MAX_HEADER = BAGGAGE_MAX_BYTES * 4  # longer incoming headers are not even parsed


# Third-party APIs that have no use for our trace ids: LLM providers, payment and cloud APIs.
DEFAULT_DENIED_HOSTS: tuple[str, ...] = (
    "api.openai.com",
    "api.anthropic.com",
    "generativelanguage.googleapis.com",
    "api.mistral.ai",
    "api.cohere.com",
    "api.cohere.ai",
    "api.groq.com",
    "api.together.xyz",
    "openrouter.ai",
    "api.stripe.com",
    "api.github.com",
    "amazonaws.com",
    "sentry.io",
)


def should_propagate(url: str | None, targets: tuple[str, ...] | None) -> bool:
    """Sentry's ``trace_propagation_targets`` rule: substring or regex match on the URL.

    ``targets=None`` means the default: everywhere except ``DEFAULT_DENIED_HOSTS``.
    """
    if url is None:
        return True  # an unknown destination (an instrumentation without our hook): as before
    if targets is None:
        host = url.split("://", 1)[-1].split("/", 1)[0].split("@")[-1].split(":")[0].lower()
        return not any(host == d or host.endswith("." + d) for d in DEFAULT_DENIED_HOSTS)
    for target in targets:
        if target in url:
            return True
        try:
            if re.search(target, url):
                return True
        except re.error:
            continue
    return False


@dataclass(frozen=True)
class HeadDsc(DscSource):
    """The DSC this service creates as head, and how it treats incoming traces and targets."""

    strict: bool = False
    propagation_targets: tuple[str, ...] | None = None


def _values(getter: Getter[CarrierT], carrier: CarrierT, name: str) -> list[str]:
    # Getters should return a list, but some hand back a bare string: accept both.
    values: Any = getter.get(carrier, name)
    if not values:
        return []
    if isinstance(values, str):
        return [values]
    return [v for v in values if isinstance(v, str)]


def _first(getter: Getter[CarrierT], carrier: CarrierT, name: str) -> str | None:
    values = _values(getter, carrier, name)
    if not values:
        return None
    return values[0] if len(values[0]) <= _MAX_HEADER else None


def _all(getter: Getter[CarrierT], carrier: CarrierT, name: str) -> str:
    joined = ",".join(_values(getter, carrier, name))
    return joined if len(joined) <= _MAX_HEADER else ""


def _parse_sentry_trace(value: str | None) -> tuple[int, int, bool | None] | None:
    if not value:
        return None
    match = _SENTRY_TRACE.match(value)
    if match is None:
        return None
    trace_id, span_id = int(match.group(1), 16), int(match.group(2), 16)
    if trace_id == 0 or span_id == 0:
        return None
    flag = match.group(3)
    return trace_id, span_id, (None if flag is None else flag == "1")


class SentryPropagator(TextMapPropagator):
    def __init__(
        self, head: HeadDsc | None = None, head_provider: Callable[[], HeadDsc] | None = None
    ) -> None:
        # No argument (as OTEL_PROPAGATORS=otel_sentry builds it): follow init()'s settings.
        self._head = head
        self._head_provider = head_provider or (None if head is not None else _head_from_settings)

    @property
    def head(self) -> HeadDsc:
        if self._head_provider is not None:
            return self._head_provider()
        return self._head or HeadDsc()

    @property
    def fields(self) -> set[str]:
        return {"sentry-trace", "baggage", "traceparent", "tracestate"}

    # -- extract -------------------------------------------------------------------------------
    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        try:
            return self._extract(carrier, context, getter)
        except Exception:  # hostile input must never break a request: start a fresh trace
            return context if context is not None else Context()

    def _extract(
        self, carrier: CarrierT, context: Context | None, getter: Getter[CarrierT]
    ) -> Context:
        base = context if context is not None else Context()
        sentry = _parse_sentry_trace(_first(getter, carrier, "sentry-trace"))
        w3c = trace.get_current_span(_W3C.extract(carrier, Context(), getter)).get_span_context()
        if sentry is not None:
            trace_id, span_id, sampled = sentry
            state = w3c.trace_state if w3c.is_valid and w3c.trace_id == trace_id else TraceState()
        elif w3c.is_valid:
            trace_id, span_id, sampled = w3c.trace_id, w3c.span_id, w3c.trace_flags.sampled
            state = w3c.trace_state
        else:
            return base
        baggage = parse_baggage(_all(getter, carrier, "baggage"))
        dsc: dict[str, str] | None = dict(baggage.values) if baggage.values else None
        if dsc is not None and dsc.get("trace_id", f"{trace_id:032x}") != f"{trace_id:032x}":
            dsc = None  # it describes another trace
        if not self._may_continue(dsc):
            # Not ours to continue: start a new trace here, and don't forward their DSC.
            return set_value(CONTEXT_KEY, IncomingTrace(None, None, baggage.foreign), base)
        if dsc is not None and sampled is None and dsc.get("sampled") in ("true", "false"):
            sampled = dsc["sampled"] == "true"
        if dsc is not None and "sample_rand" not in dsc and sampled is not None:
            rate = _rate(dsc.get("sample_rate"))
            if rate is not None and (rate > 0 or not sampled) and (rate < 1 or sampled):
                dsc["sample_rand"] = format_sample_rand(
                    consistent_sample_rand(trace_id, rate, sampled)
                )
        parent = SpanContext(
            trace_id=trace_id,
            span_id=span_id,
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT),
            trace_state=state,
        )
        context = trace.set_span_in_context(NonRecordingSpan(parent), base)
        return set_value(CONTEXT_KEY, IncomingTrace(sampled, dsc, baggage.foreign), context)

    def _may_continue(self, dsc: Mapping[str, str] | None) -> bool:
        theirs = dsc.get("org_id") if dsc else None
        ours = self.head.org_id
        if theirs and ours:
            return theirs == ours
        if self.head.strict:
            return not theirs and not ours
        return True

    # -- inject --------------------------------------------------------------------------------
    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        url = OUTGOING_URL.get()
        if url is not None:
            OUTGOING_URL.set(None)
        head = self.head
        if not should_propagate(url, head.propagation_targets):
            return
        span = trace.get_current_span(context)
        ctx = span.get_span_context()
        if not ctx.is_valid:
            return
        sampled = ctx.trace_flags.sampled
        setter.set(
            carrier, "sentry-trace", f"{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(sampled)}"
        )
        _W3C.inject(carrier, trace.set_span_in_context(span), setter)
        incoming = incoming_trace(context)
        dsc, foreign = _outgoing_dsc(ctx, incoming, head)
        existing = _existing_baggage(carrier)
        if existing:
            # Someone set baggage on this request already: keep their entries, replace ours.
            foreign = (*parse_baggage(existing).foreign, *foreign)
        value = serialize_baggage(dsc, tuple(dict.fromkeys(foreign)))
        if value:
            setter.set(carrier, "baggage", value)


def head_from_settings(settings: Any) -> HeadDsc:
    parts = settings.dsn_parts
    return HeadDsc(
        public_key=parts.public_key if parts else None,
        release=settings.release,
        environment=settings.environment,
        org_id=settings.org_id or (parts.org_id if parts else None),
        strict=settings.strict_trace_continuation,
        propagation_targets=settings.trace_propagation_targets,
    )


_NO_SETTINGS = HeadDsc()
_head = _NO_SETTINGS


def configure(head: HeadDsc | None) -> None:
    """What a propagator built without arguments puts in the DSCs it starts: ``init()`` calls
    this with :func:`head_from_settings`, ``shutdown()`` with None (no DSN: no DSC)."""
    global _head
    _head = head if head is not None else _NO_SETTINGS


def _head_from_settings() -> HeadDsc:
    return _head


def _rate(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and 0.0 <= value <= 1.0 else None


def _existing_baggage(carrier: Any) -> str | None:
    if isinstance(carrier, Mapping):
        for key in ("baggage", "Baggage"):
            value = carrier.get(key)
            if isinstance(value, str):
                return value
    return None


def _outgoing_dsc(
    ctx: SpanContext, incoming: IncomingTrace | None, head: HeadDsc
) -> tuple[dict[str, str], tuple[str, ...]]:
    foreign = incoming.foreign_baggage if incoming is not None else ()
    frozen = incoming is not None and bool(incoming.dsc)
    if not frozen and head.public_key is None:
        # No DSN here (or after shutdown()): a DSC without public_key is one Relay ignores, yet
        # every SDK downstream would freeze it as received. Better none: the next service that
        # has a DSN starts a valid one.
        return {}, tuple(foreign)
    name = None if frozen else dsc_transaction_name(local_root(), ctx.trace_id)
    return dsc_for_context(ctx, incoming, head, transaction=name), tuple(foreign)
