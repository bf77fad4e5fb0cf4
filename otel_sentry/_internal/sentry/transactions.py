"""A segment of finished OTel spans -> the transaction event Sentry's SDKs would have sent.

Pure data building, no I/O: the exporter calls :func:`build_transaction` on its own thread and
hands the result to the transport. Field by field this follows what sentry_sdk puts in a
transaction (``contexts.trace``, ``spans``, ``transaction_info.source``), so Sentry's trace
view and its Queries, Caches, Queues and AI insights read it as their own.

    >>> event, dsc = build_transaction(segment, TransactionDefaults())  # doctest: +SKIP
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from otel_sentry._internal.sentry.dsc import DSC_ATTRIBUTE, DscSource, dsc_for_context
from otel_sentry._internal.sentry.gen_ai import add_sentry_gen_ai_data
from otel_sentry._internal.sentry.llm_totals import llm_measurements
from otel_sentry._internal.sentry.segments import Segment
from otel_sentry._internal.sentry.semantics import SpanSemantics, interpret

__all__ = [
    "DSC_ATTRIBUTE",
    "MEASUREMENT_UNIT",
    "MEASUREMENT_VALUE",
    "TransactionDefaults",
    "build_transaction",
    "dsc_for",
    "dsc_transaction_name",
]

# Attributes that carry our own bookkeeping: kept off span data.
_INTERNAL = frozenset({DSC_ATTRIBUTE, "sentry.op", "sentry.description", "sentry.source"})
# Transaction sources whose names are low-cardinality, so they may travel in the DSC.
_LOW_CARDINALITY = frozenset({"route", "custom", "task", "component", "view"})


@dataclass(frozen=True)
class TransactionDefaults(DscSource):
    sdk: Mapping[str, Any] = field(default_factory=dict)
    # sentry_sdk puts these on every event, transactions included (its server_name defaults
    # to the host name).
    server_name: str | None = None
    dist: str | None = None


def _event_id() -> str:
    # An id, not a secret: uuid4() reads os.urandom per call, a system call per transaction
    # (slow in sandboxed kernels); random reseeds itself in a forked child.
    return f"{random.getrandbits(128):032x}"


def _hex_span(span_id: int) -> str:
    return f"{span_id:016x}"


def _strip_internal(data: dict[str, Any]) -> dict[str, Any]:
    """Span data as Sentry gets it: our bookkeeping keys removed, in place (json encodes
    tuples as lists already, so nothing else needs converting)."""
    for key in _INTERNAL.intersection(data):
        del data[key]
    return data


def attributes_of(span: ReadableSpan) -> dict[str, Any]:
    """A span's attributes as a plain dict, read once.

    ``ReadableSpan.attributes`` is a read-only proxy over ``BoundedAttributes``, whose every
    lookup runs Python code; the semantics look up a dozen keys per span. The SDK keeps a plain
    dict inside; we copy it directly when it is there (a C-level copy), else go the slow way.
    """
    inner = getattr(getattr(span, "_attributes", None), "_dict", None)
    if isinstance(inner, dict):
        return dict(inner)
    return dict(span.attributes or {})


def _span(span: ReadableSpan, trace_id: str) -> dict[str, Any]:
    attrs = attributes_of(span)
    sem = interpret(span.name, span.kind, attrs, span.status.status_code)
    _strip_internal(attrs)
    if sem.op.startswith("gen_ai"):
        add_sentry_gen_ai_data(attrs)
    out: dict[str, Any] = {
        "trace_id": trace_id,
        "span_id": _hex_span(span.context.span_id),
        "op": sem.op,
        "description": sem.description,
        "status": _status(span, sem),
        "start_timestamp": (span.start_time or 0) / 1e9,
        "timestamp": (span.end_time or span.start_time or 0) / 1e9,
        "origin": "auto.otel",
        "data": attrs,
    }
    if span.parent is not None:
        out["parent_span_id"] = _hex_span(span.parent.span_id)
    tags = _pop_tags(attrs)
    if tags:
        out["tags"] = tags
    measurements = _measurements(span)
    if measurements:
        out["measurements"] = measurements
    return out


# What sentry_sdk's span API (sentry/tracing_api.py) records that OpenTelemetry has no field for:
# a measurement is a span event carrying these attributes, as @sentry/node records it, and a
# Sentry status (``not_found``, ``cancelled``...) is the description of an ERROR status.
MEASUREMENT_VALUE = "sentry.measurement_value"
MEASUREMENT_UNIT = "sentry.measurement_unit"
_SENTRY_STATUSES = frozenset(
    {
        "aborted",
        "already_exists",
        "cancelled",
        "data_loss",
        "deadline_exceeded",
        "failed_precondition",
        "internal_error",
        "invalid_argument",
        "not_found",
        "out_of_range",
        "permission_denied",
        "resource_exhausted",
        "unauthenticated",
        "unavailable",
        "unimplemented",
        "unknown_error",
    }
)


def _status(span: ReadableSpan, sem: SpanSemantics) -> str:
    status = span.status
    if status.status_code is StatusCode.ERROR and status.description in _SENTRY_STATUSES:
        return status.description
    return sem.status


def _measurements(span: ReadableSpan) -> dict[str, dict[str, Any]] | None:
    events = span.events
    if not events:
        return None
    out: dict[str, dict[str, Any]] = {}
    for event in events:
        attrs = event.attributes
        if attrs and MEASUREMENT_VALUE in attrs:
            out[event.name] = {
                "value": attrs[MEASUREMENT_VALUE],
                "unit": attrs.get(MEASUREMENT_UNIT, ""),
            }
    return out or None


def _pop_tags(attrs: dict[str, Any]) -> dict[str, str]:
    """A child span's ``sentry.tag.*`` attributes, moved out of its data into its tags."""
    keys = [key for key in attrs if key.startswith(_TAG_PREFIX)]
    return {key[len(_TAG_PREFIX) :]: str(attrs.pop(key)) for key in keys}


_resource_cache: tuple[object, dict[str, Any]] | None = None


def _resource_context(resource: Resource) -> dict[str, Any]:
    # One resource per process in practice: convert it once, not once per transaction. Keyed by
    # the attributes object, which a re-init replaces.
    global _resource_cache
    cached = _resource_cache
    if cached is None or cached[0] is not resource.attributes:
        cached = (resource.attributes, _strip_internal(dict(resource.attributes)))
        _resource_cache = cached
    return cached[1]


def dsc_transaction_name(root: ReadableSpan | None, trace_id: int) -> str | None:
    """The root's name for the DSC, when the root is this trace's and its name is low-cardinality.

    Every envelope of a trace must carry the same DSC, so the outgoing headers, the errors and
    the transaction all take the name from the root span the same way.
    """
    if root is None or root.context is None or root.context.trace_id != trace_id:
        return None
    sem = interpret(root.name, root.kind, attributes_of(root), root.status.status_code)
    return sem.description if sem.source in _LOW_CARDINALITY else None


def dsc_for(
    root: ReadableSpan, attrs: Mapping[str, Any], sem: SpanSemantics, defaults: TransactionDefaults
) -> dict[str, str]:
    """The trace's DSC: the frozen upstream one when we continue a trace, else ours as head."""
    name = sem.description if sem.source in _LOW_CARDINALITY else None
    return dsc_for_context(root.context, None, defaults, attrs.get(DSC_ATTRIBUTE), name)


def build_transaction(
    segment: Segment, defaults: TransactionDefaults
) -> tuple[dict[str, Any], dict[str, str]]:
    """(transaction event, DSC for the envelope header)."""
    root = segment.root
    attrs = attributes_of(root)
    sem = interpret(root.name, root.kind, attrs, root.status.status_code)
    dsc = dsc_for(root, attrs, sem, defaults)
    if segment.errored:
        # keep_error_traces: a transaction with an error is kept with probability 1, so it
        # counts once in Sentry's extrapolation (1 / sample_rate), head-sampled or not.
        dsc = {**dsc, "sample_rate": "1.0", "sampled": "true"}
    data = _strip_internal(dict(attrs))
    trace_id = f"{root.context.trace_id:032x}"
    trace_context: dict[str, Any] = {
        "trace_id": trace_id,
        "span_id": _hex_span(root.context.span_id),
        "op": sem.op,
        "status": _status(root, sem),
        "origin": "auto.otel",
        "data": data,
    }
    if root.parent is not None:
        trace_context["parent_span_id"] = _hex_span(root.parent.span_id)
    event: dict[str, Any] = {
        "type": "transaction",
        "event_id": _event_id(),
        "platform": "python",
        "transaction": sem.description,
        "transaction_info": {"source": sem.source},
        "start_timestamp": (root.start_time or 0) / 1e9,
        "timestamp": (root.end_time or root.start_time or 0) / 1e9,
        "contexts": {
            "trace": trace_context,
            "otel": {"resource": _resource_context(root.resource)},
        },
        "spans": [_span(child, trace_id) for child in segment.children],
    }
    if data.get("profiler_id"):  # a continuous profiler ran (sentry/profiles.py)
        event["contexts"]["profile"] = {"profiler_id": data["profiler_id"]}
    if defaults.release:
        event["release"] = defaults.release
    if defaults.environment:
        event["environment"] = defaults.environment
    if defaults.server_name:
        event["server_name"] = defaults.server_name
    if defaults.dist:
        event["dist"] = defaults.dist
    if defaults.sdk:
        event["sdk"] = dict(defaults.sdk)
    tags, user = _tags_and_user(data)
    if segment.kind != "complete":
        # A late or orphaned piece of a trace: same trace id, flagged so nobody mistakes it
        # for a whole request.
        tags["otel_sentry.segment"] = segment.kind
    if not segment.head_sampled:
        tags["otel_sentry.kept_for"] = "error"  # the sample rate alone would have left it out
    if tags:
        event["tags"] = tags
    if user:
        event["user"] = user
    # The app's own measurements win over the LLM totals of the same name.
    measurements = {**llm_measurements(data), **(_measurements(root) or {})}
    if measurements:
        event["measurements"] = measurements
    if sem.op == "http.server":
        request = _request(attrs)
        if request:
            event["request"] = request
    return event, dsc


_USER_FIELDS = (("enduser.id", "id"), ("enduser.name", "username"), ("user.email", "email"))
_TAG_PREFIX = "sentry.tag."


def _tags_and_user(attrs: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """Tags and user that ``otel_sentry.set_tag`` / ``set_user`` wrote on the root span."""
    tags: dict[str, str] = {}
    user: dict[str, str] = {}
    if any(key.startswith(_TAG_PREFIX) for key in attrs):
        for key, value in attrs.items():
            if key.startswith(_TAG_PREFIX):
                tags[key[len(_TAG_PREFIX) :]] = str(value)
    for attribute, field_name in _USER_FIELDS:
        value = attrs.get(attribute)
        if value is not None:
            user[field_name] = str(value)
    return tags, user


def _request(attrs: Mapping[str, Any]) -> dict[str, Any]:
    method = attrs.get("http.request.method") or attrs.get("http.method")
    scheme = attrs.get("url.scheme") or attrs.get("http.scheme")
    host = attrs.get("server.address") or attrs.get("http.host") or attrs.get("net.host.name")
    port = attrs.get("server.port") or attrs.get("net.host.port")
    path = attrs.get("url.path") or str(attrs.get("http.target") or "").split("?", 1)[0]
    out: dict[str, Any] = {}
    if method:
        out["method"] = method
    if scheme and host and path:
        netloc = f"{host}:{port}" if port and str(port) not in ("80", "443") else str(host)
        # No query string: it is where tokens hide, and Sentry's request.url must not carry it.
        out["url"] = f"{scheme}://{netloc}{path}"
    return out
