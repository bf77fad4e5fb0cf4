"""An OpenTelemetry ``Sampler`` that decides the way Sentry's SDKs do.

For a local root span: ``traces_sampler(context)`` if given, else the first matching sampling
rule, else the upstream's decision, else ``traces_sample_rate``; the decision is
``sample_rand < rate``. The context has sentry_sdk's shape, so a ``traces_sampler`` written for
it runs unchanged: ``transaction_context`` (name, op, source as the bridge will send them),
``parent_sampled``, ``parent_sample_rate``, and for a server request ``asgi_scope`` or
``wsgi_environ``: the real object where the instrumentation hands it over
(instrument/sampling_carrier.py), else one rebuilt from the span's attributes.

Children follow their parent. Unsampled spans are non-recording (almost free) while the
decision, rate and ``sample_rand`` still travel in the span's ``tracestate`` so outgoing headers
tell downstream services what was decided.

    >>> provider = TracerProvider(sampler=SentrySampler(rate=0.1))   # doctest: +SKIP
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import (
    Link,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceState,
    get_current_span,
)
from opentelemetry.util.types import Attributes

from otel_sentry._internal.counters import DropCounter
from otel_sentry._internal.instrument.sampling_carrier import (
    carry_request_objects,
    request_carrier,
    request_objects_from_attributes,
)
from otel_sentry._internal.pressure import LoadShedder
from otel_sentry._internal.sentry.dsc import (
    DSC_ATTRIBUTE,
    TRACE_STATE_KEY,
    consistent_sample_rand,
    decision_from_trace_state,
    incoming_trace,
    rand_from_trace_id,
    serialize_baggage,
)
from otel_sentry._internal.sentry.semantics import interpret

__all__ = [
    "SAMPLE_RAND_ATTRIBUTE",
    "SAMPLE_RATE_ATTRIBUTE",
    "TRACE_STATE_KEY",
    "SentrySampler",
    "decision_from_trace_state",
    "sampling_context",
]

_log = logging.getLogger("otel_sentry")

SAMPLE_RATE_ATTRIBUTE = "sentry.sample_rate"
SAMPLE_RAND_ATTRIBUTE = "sentry.sample_rand"

_EMPTY_STATE = TraceState()

TracesSampler = Callable[[dict[str, Any]], "float | bool | int | None"]


class SentrySampler(Sampler):
    """Sentry's sampling decision for each local root; children follow their parent.

    ``rate``: ``traces_sample_rate``. ``traces_sampler``: sentry_sdk's callback, given the
    sampling context described above; it wins over everything else. ``rules``: ``(glob, rate)``
    pairs matched against route, path and span name, first match wins. ``shedder``: lowers the
    rate under load (pressure.py). ``should_sample`` runs on the request thread of every span:
    it takes no lock, and a child's decision is two attribute reads.
    """

    def __init__(
        self,
        rate: float = 1.0,
        traces_sampler: TracesSampler | None = None,
        rules: Sequence[tuple[str, float]] = (),
        shedder: LoadShedder | None = None,
    ) -> None:
        self.rate = rate
        self.shedder = shedder
        self.traces_sampler = traces_sampler
        if traces_sampler is not None:
            # Only then do server instrumentations show their scope/environ to us.
            carry_request_objects()
        self.rules = tuple((re.compile(fnmatch.translate(p)), r, p) for p, r in rules)
        # All rules in one pattern, in order: one match per candidate string instead of one per
        # rule (the noise rules alone are a dozen, tried on every root span).
        self._rules_pattern = _combined(self.rules)
        self._rule_rates = tuple(r for _, r, _ in self.rules)
        self._drops = DropCounter()
        # Release health (sessions.py) counts every request: unsampled server roots are
        # counted here, as they start, since no span processor ever sees them.
        # The last argument is True when no sampling rule matched the request (so no noise
        # rule did either, they are among the rules): the tracker skips matching them again.
        self.count_unsampled: Callable[[str, Attributes, int, bool], None] | None = None
        # keep_error_traces (keep_errors.py): record what is not sampled instead of dropping it.
        self.keep_unsampled = False

    def drops_since_last_call(self) -> int:
        """Roots dropped for their sample rate since the last call (backpressure: the shedder's)."""
        return self._drops.since_last_call()

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        parent = get_current_span(parent_context).get_span_context()
        if parent.is_valid and not parent.is_remote:
            # A child in this process: follow the root, carry its trace state along.
            # The SDK takes the span's attributes from the result: pass them through.
            if parent.trace_flags.sampled:
                return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, parent.trace_state)
            if self.keep_unsampled and get_current_span(parent_context).is_recording():
                return SamplingResult(Decision.RECORD_ONLY, attributes, parent.trace_state)
            return SamplingResult(Decision.DROP, None, parent.trace_state)

        incoming = incoming_trace(parent_context) if parent.is_valid else None
        parent_sampled: bool | None = None
        if parent.is_valid:
            parent_sampled = (
                incoming.sampled if incoming is not None else parent.trace_flags.sampled
            )
        rand = incoming.sample_rand if incoming is not None else None

        # no_rule: the rules were tried and none matched, so neither did the noise rules among
        # them; release health need not try those again (sessions.py).
        no_rule = False
        if self.traces_sampler is not None:
            rate = self._sampler_rate(
                name, kind, attributes, parent_sampled, incoming, trace_id, parent
            )
        else:
            rate = self._rule_rate(name, attributes)
            no_rule = rate is None
        if rate is not None:
            if rand is None:
                rand = rand_from_trace_id(trace_id)
            sampled = rand < rate
        elif parent_sampled is not None:
            sampled = parent_sampled
            upstream_rate = incoming.sample_rate if incoming is not None else None
            rate = upstream_rate if upstream_rate is not None else self.rate
            if rand is None:
                rand = consistent_sample_rand(trace_id, rate, sampled)
        else:
            rate = self.rate
            if rand is None:
                rand = rand_from_trace_id(trace_id)
            sampled = rand < rate

        shed = False
        shedder = self.shedder
        if shedder is not None:
            shedder.watch_running_loop()
            if shedder.factor < 1.0:
                # Overloaded (pressure.py): keep the traces with the lowest sample_rand, the
                # same ones every shedding service keeps; the kept carry the effective rate.
                rate = rate * shedder.factor
                if sampled and rand >= rate:
                    sampled, shed = False, True
                    shedder.count_drop()

        state = _with_decision(
            parent.trace_state if parent.is_valid else _EMPTY_STATE, f"r:{rand:.6f};s:{rate!r}"
        )
        if not sampled and (shed or not self.keep_unsampled or rate <= 0):
            # A rate of 0 (noise rules, a sampler's "never") is not recorded for errors either.
            if not shed:
                self._drops.add()
            count = self.count_unsampled
            if count is not None and kind is SpanKind.SERVER:
                count(name, attributes, trace_id, no_rule)
            return SamplingResult(Decision.DROP, None, state)
        kept = dict(attributes) if attributes else {}
        kept[SAMPLE_RATE_ATTRIBUTE] = rate
        kept[SAMPLE_RAND_ATTRIBUTE] = rand
        if incoming is not None and incoming.dsc:
            kept[DSC_ATTRIBUTE] = serialize_baggage(incoming.dsc)
        if not sampled:
            # keep_error_traces: recorded but not sampled (keep_errors.py decides at its end,
            # and counts it if dropped); the span processors see it, sessions included.
            return SamplingResult(Decision.RECORD_ONLY, kept, state)
        return SamplingResult(Decision.RECORD_AND_SAMPLE, kept, state)

    def _sampler_rate(
        self,
        name: str,
        kind: SpanKind | None,
        attributes: Attributes,
        parent_sampled: bool | None,
        incoming: Any,
        trace_id: int,
        parent: SpanContext,
    ) -> float | None:
        """What the user's ``traces_sampler`` says, or None to fall back on the parent/rate."""
        assert self.traces_sampler is not None
        context = sampling_context(
            name, kind, attributes, parent_sampled, incoming, trace_id, parent
        )
        try:
            value = self.traces_sampler(context)
        except Exception:  # a user callback must never break a request
            _log.exception("otel-sentry: traces_sampler raised; dropping this trace")
            return 0.0
        if value is None:
            return None
        if isinstance(value, bool) or (isinstance(value, (int, float)) and 0 <= value <= 1):
            return float(value)
        _log.warning("otel-sentry: traces_sampler returned %r, not a rate in [0, 1]", value)
        return 0.0

    def _rule_rate(self, name: str, attributes: Attributes) -> float | None:
        """The rate of the first sampling rule that matches, or None when none does."""
        if self._rules_pattern is not None:
            match = self._rules_pattern.match
            for candidate in _rule_candidates(name, attributes):
                found = match(candidate)
                if found is not None:
                    # Group i + 1 wraps rule i; the first that took part is the rule that matched.
                    groups = found.groups()
                    for i, rule_rate in enumerate(self._rule_rates):
                        if groups[i] is not None:
                            return rule_rate
        elif self.rules:
            for candidate in _rule_candidates(name, attributes):
                for pattern, rule_rate, _raw in self.rules:
                    if pattern.match(candidate):
                        return rule_rate
        return None

    def get_description(self) -> str:
        return f"SentrySampler{{rate={self.rate}, rules={len(self.rules)}}}"


def sampling_context(
    name: str,
    kind: SpanKind | None,
    attributes: Attributes,
    parent_sampled: bool | None,
    incoming: Any,
    trace_id: int,
    parent: SpanContext,
) -> dict[str, Any]:
    """What sentry_sdk gives a ``traces_sampler``, for a local root span about to start.

    ``transaction_context`` has ``Transaction.to_json()``'s keys; ``op``, ``name`` and ``source``
    are what the bridge will send for the transaction, read from the name and attributes known
    at start. Only local roots get here, only with a ``traces_sampler``: the cost is theirs.
    """
    attrs = dict(attributes or {})
    span_kind = kind if kind is not None else SpanKind.INTERNAL
    sem = interpret(name, span_kind, _with_route_of_name(name, span_kind, attrs), StatusCode.UNSET)
    context: dict[str, Any] = {
        "transaction_context": {
            "trace_id": f"{trace_id:032x}",
            "span_id": None,  # chosen after sampling
            "parent_span_id": f"{parent.span_id:016x}" if parent.is_valid else None,
            "same_process_as_parent": False,
            "op": sem.op,
            "description": sem.description,
            "start_timestamp": None,
            "timestamp": None,
            "origin": "auto.otel",
            "data": attrs,
            "name": sem.description,
            "source": sem.source,
            "sampled": None,
        },
        "parent_sampled": parent_sampled,
        "parent_sample_rate": incoming.sample_rate if incoming is not None else None,
        "name": name,
        "kind": kind.name if kind is not None else None,
        "attributes": attrs,
    }
    if span_kind is SpanKind.SERVER:
        _add_request(context, attrs, sem.op)
    return context


def _with_route_of_name(name: str, kind: SpanKind, attrs: dict[str, Any]) -> dict[str, Any]:
    """``attrs`` with ``http.route`` from the span name when the route is set only later.

    Django's instrumentation names the span ``GET items/<int:id>`` at start and records
    ``http.route`` when the response is ready: the bridge's transaction is named by that route.
    A name that is the method and the raw path (plain ASGI) is no route.
    """
    if kind is not SpanKind.SERVER or "http.route" in attrs:
        return attrs
    method, _, rest = name.partition(" ")
    if not rest or method != attrs.get("http.request.method", attrs.get("http.method")):
        return attrs
    path = attrs.get("url.path") or str(attrs.get("http.target", "")).partition("?")[0]
    if not path:
        url = attrs.get("http.url") or attrs.get("url.full")
        path = _path_of(url) if isinstance(url, str) else ""
    # Without a path there is nothing to tell a route from: leave it to the bridge's reading.
    return attrs if not path or rest == path else {**attrs, "http.route": rest}


def _path_of(url: str) -> str:
    start = url.find("/", url.find("://") + 3) if "://" in url else 0
    return url[start:].partition("?")[0].partition("#")[0] if start != -1 else "/"


def _add_request(context: dict[str, Any], attrs: dict[str, Any], op: str) -> None:
    """``asgi_scope`` or ``wsgi_environ``, as sentry_sdk's ASGI and WSGI integrations give it."""
    carrier = request_carrier()
    if isinstance(carrier, Mapping):
        if "REQUEST_METHOD" in carrier:  # a WSGI environ (Django's request.META is the same)
            context["wsgi_environ"] = carrier
            return
        if carrier.get("type") in ("http", "websocket"):
            context["asgi_scope"] = carrier
            return
    if op == "http.server":
        # The server's kind is not in the attributes: both, rebuilt, so either sampler runs.
        context["wsgi_environ"], context["asgi_scope"] = request_objects_from_attributes(attrs)


def _with_decision(base: TraceState, value: str) -> TraceState:
    """``base`` with ``sentry=value`` first, as ``TraceState.update`` gives it.

    ``update``/``add`` check the pair against the W3C grammar with a regex and then build a new
    state that checks every pair again: a few microseconds on every root span, request sampled
    or not. Our pair always passes (a fixed key; digits, ``r:``, ``;s:`` and a float's repr),
    so a state without other entries (the root of a trace, the usual case) is built directly.
    """
    if base or not _STATE_IS_A_DICT:
        return base.update(TRACE_STATE_KEY, value)
    state = TraceState.__new__(TraceState)
    state._dict = {TRACE_STATE_KEY: value}
    return state


# TraceState keeps its pairs in ``_dict`` (OpenTelemetry's API, 1.x); if a release stops
# doing so, _with_decision goes the public way.
_STATE_IS_A_DICT = isinstance(getattr(_EMPTY_STATE, "_dict", None), dict)


def _combined(rules: Sequence[tuple[re.Pattern[str], float, str]]) -> re.Pattern[str] | None:
    """One pattern for all rules, in order, each the only capturing group of its alternative."""
    if not rules:
        return None
    try:
        combined = re.compile("|".join(f"({p.pattern})" for p, _, _ in rules))
    except re.error:  # a rule's own groups clash with another's: match them one by one
        return None
    # fnmatch may add groups of its own (named, on older Pythons): then we cannot tell which
    # alternative matched from the group numbers; match rule by rule instead.
    return combined if combined.groups == len(rules) else None


def _rule_candidates(name: str, attributes: Mapping[str, Any] | None) -> list[str]:
    """The strings a rule may match: route, path (no query), span name, and the name sans method."""
    out: list[str] = []
    if attributes:
        for key in ("http.route", "url.path", "http.target"):
            value = attributes.get(key)
            if isinstance(value, str):
                out.append(value.split("?", 1)[0])
    out.append(name)
    method, _, rest = name.partition(" ")
    if rest and method.isupper():
        out.append(rest)
    return out
