"""The OpenTelemetry side of ``init()``: one tracer provider for the process, rewired per init.

OpenTelemetry lets a process set its global tracer provider once. We install one whose span
processing goes through a switchboard and whose sampler is a switchable delegate, both ours, so
``shutdown()`` then ``init()`` (tests, reloaders, notebooks) rewires the same provider instead of
leaving instrumented code a dead one. Here too: the resource, span limits, the sampler, the span
processors of each destination (Sentry transactions, OTLP, the user's exporters), the
propagator and the instrumentations.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import (
    ReadableSpan,
    Span,
    SpanLimits,
    SpanProcessor,
    TracerProvider,
)
from opentelemetry.sdk.trace.sampling import (
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

from otel_sentry._internal.config import ConfigError, Settings
from otel_sentry._internal.instrument import fastapi_native, llm, registry
from otel_sentry._internal.instrument.llm_totals import LlmTotals
from otel_sentry._internal.pressure import LoadShedder
from otel_sentry._internal.roots import LocalRootTracker
from otel_sentry._internal.scrub import scrub_text
from otel_sentry._internal.scrub_spans import ScrubbingSpanExporter
from otel_sentry._internal.sentry import keep_errors, sessions, tracing_api
from otel_sentry._internal.sentry.gen_ai import GenAiBreadcrumbs
from otel_sentry._internal.sentry.keep_errors import HeldSegments
from otel_sentry._internal.sentry.noise import NoiseFilter
from otel_sentry._internal.sentry.profiles import ProfileRecorder
from otel_sentry._internal.sentry.propagator import SentryPropagator
from otel_sentry._internal.sentry.sampler import SentrySampler
from otel_sentry._internal.sentry.span_processor import TransactionExporter
from otel_sentry._internal.sentry.transactions import TransactionDefaults

__all__ = [
    "build_sampler",
    "install_propagator",
    "install_provider",
    "instrument",
    "reset",
    "span_processors",
    "switchboard",
]

_log = logging.getLogger("otel_sentry")


class Switchboard(SpanProcessor):
    """The one processor the provider knows; forwards to the processors of the current init()."""

    def __init__(self) -> None:
        self.targets: tuple[SpanProcessor, ...] = ()

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        for target in self.targets:
            target.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for target in self.targets:
            target.on_end(span)

    def shutdown(self) -> None:
        targets, self.targets = self.targets, ()
        for target in targets:
            target.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(t.force_flush(timeout_millis) for t in self.targets)


class SwitchableSampler(Sampler):
    """Delegates to the sampler of the current init(); a provider's sampler is fixed at birth."""

    def __init__(self, delegate: Sampler) -> None:
        self.delegate = delegate

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        return self.delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return self.delegate.get_description()


switchboard = Switchboard()
_sampler = SwitchableSampler(ParentBased(TraceIdRatioBased(1.0)))
_provider: TracerProvider | None = None


def reset() -> None:
    """``shutdown()``: the processors of this init() stop; the provider stays for the next one."""
    switchboard.shutdown()
    keep_errors.errored.enabled = False
    keep_errors.errored.clear()
    _sampler.delegate = ParentBased(TraceIdRatioBased(1.0))
    tracing_api.uninstall()


def install_provider(settings: Settings) -> TracerProvider:
    global _provider
    resource = _resource(settings)
    if _provider is not None:
        if _provider.sampler is _sampler and _provider.resource != resource:
            # Instrumentations keep the tracers (and through them the Resource object) they got
            # at the first init(); swapping the attributes inside that one object is the only
            # way a re-init with a new service name, release or environment reaches them.
            _provider.resource._attributes = resource.attributes  # type: ignore[assignment]
        return _provider
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        # Someone (the user, another distro) installed an SDK provider first. Exporting from
        # it still works; its sampler stays theirs, which doctor reports.
        _log.warning(
            "otel-sentry: a TracerProvider was already installed; adding otel-sentry's export "
            "to it, but its sampler (%s) decides what is sampled",
            current.sampler.get_description(),
        )
        current.add_span_processor(switchboard)
        _provider = current
        return current
    provider = TracerProvider(
        resource=resource, sampler=_sampler, shutdown_on_exit=False, span_limits=_span_limits()
    )
    provider.add_span_processor(switchboard)
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def _resource(settings: Settings) -> Resource:
    attrs: dict[str, Any] = {"deployment.environment.name": settings.environment}
    if settings.service_name:
        attrs["service.name"] = settings.service_name
    if settings.release:
        attrs["service.version"] = settings.release
    extra = settings.resource_attributes
    if extra:
        attrs.update(extra)
    # Resource.create also merges OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; ours win.
    return Resource.create(attrs)


# OpenTelemetry leaves attribute values unbounded by default; one 5 MiB attribute would make the
# whole transaction too big for Sentry (1 MiB per item) and the OTLP request huge. The standard
# variables still win when set.
_ATTRIBUTE_VALUE_LIMIT = 16_384


def _span_limits() -> SpanLimits:
    if os.environ.get("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT") or os.environ.get(
        "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"
    ):
        return SpanLimits()
    return SpanLimits(max_attribute_length=_ATTRIBUTE_VALUE_LIMIT)


def build_sampler(settings: Settings, noise: NoiseFilter) -> SentrySampler:
    """The sampler of this init(), made the provider's."""
    sampler = SentrySampler(
        rate=settings.traces_sample_rate,
        traces_sampler=settings.traces_sampler,
        # The user's rules first: ``/health=1`` keeps health checks despite the noise rules.
        rules=(*settings.sampling_rules, *noise.sampling_rules()),
        shedder=LoadShedder() if settings.load_shedding else None,
    )
    _sampler.delegate = sampler
    return sampler


def span_processors(
    settings: Settings,
    sampler: SentrySampler,
    has_client: bool,
    noise: NoiseFilter,
    defaults: TransactionDefaults,
) -> list[SpanProcessor]:
    """The processors of each destination, made the switchboard's."""
    processors: list[SpanProcessor] = []
    exporter: TransactionExporter | None = None
    destinations = settings.span_export
    processors.append(LocalRootTracker())
    # Each request's LLM calls summed on its root span, for every destination below.
    processors.append(LlmTotals(track_roots=False))
    if has_client:
        processors.append(GenAiBreadcrumbs())
    if "sentry" in destinations and has_client:
        # sentry_sdk's profilers, started by root spans; before the exporter, whose worker
        # needs a root's profile stopped by the time it builds the transaction.
        profiles = ProfileRecorder.from_client()
        if profiles is not None:
            processors.append(profiles)
        held = None
        if settings.keep_error_traces:
            # Unsampled traces are recorded and held until their root ends (keep_errors.py).
            held = HeldSegments(max_bytes=int(settings.keep_error_traces_max_mb * 2**20))
            sampler.keep_unsampled = True
            keep_errors.errored.enabled = True
        exporter = TransactionExporter(
            defaults,
            sampler=sampler,
            before_send_transaction=settings.before_send_transaction,
            noise=noise,
            profiles=profiles,
            held=held,
        )
        processors.append(exporter)
        # sentry_sdk.start_transaction(), start_span(), @trace: OTel spans of this provider.
        tracing_api.install()
    session_tracker = sessions.tracker(noise) if has_client else None
    if session_tracker is not None:
        processors.append(session_tracker)
        sampler.count_unsampled = session_tracker.count_unsampled  # never reach a processor
    others: list[SpanProcessor] = []
    if "otlp" in destinations:
        others.append(_otlp_processor(settings))
    exporters = settings.span_exporters or ()
    if settings.enabled and exporters:
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        others.extend(BatchSpanProcessor(ScrubbingSpanExporter(e)) for e in exporters)
    processors.extend(others)
    if exporter is not None and exporter.held is not None:
        exporter.forward_kept = tuple(others)  # what keep_error_traces keeps goes there too
    switchboard.targets = tuple(processors)
    return processors


def _otlp_processor(settings: Settings) -> SpanProcessor:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise ConfigError(
            f"export={settings.export!r} sends spans over OTLP/HTTP, but the exporter is not "
            "installed. Fix: pip install 'otel-sentry[otlp]'."
        ) from exc
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    endpoint = settings.otlp_endpoint
    headers: dict[str, str] | None = None
    if endpoint is None:
        parts = settings.dsn_parts
        assert parts is not None  # resolve() guarantees a DSN or an endpoint for otlp
        endpoint = parts.otlp_traces_url
        headers = {"x-sentry-auth": f"sentry sentry_key={parts.public_key}"}
    elif settings.sources.get("otlp_endpoint") == "env:OTEL_EXPORTER_OTLP_ENDPOINT":
        # The generic variable names a base URL; the signal path is appended, as the spec says.
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    # Scrubbed in the batch processor's thread, just before the bytes are built.
    exporter = ScrubbingSpanExporter(OTLPSpanExporter(endpoint=endpoint, headers=headers))
    return BatchSpanProcessor(exporter)


def install_propagator() -> None:
    """Ours, unless OTEL_PROPAGATORS names others but not ours: then theirs, and a warning.

    ``sentry`` counts as ours here too: it is what people write, and init() knows what they meant.
    """
    named = [p.strip() for p in os.environ.get("OTEL_PROPAGATORS", "").split(",") if p.strip()]
    if named and not {"otel_sentry", "sentry"} & set(named):
        _log.warning(
            "otel-sentry: OTEL_PROPAGATORS=%s does not include 'otel_sentry': sentry-trace and "
            "baggage from Sentry's JS SDKs will not be read. Add 'otel_sentry' to continue their "
            "traces.",
            ",".join(named),
        )
        return
    propagate.set_global_textmap(SentryPropagator())


def instrument(provider: TracerProvider, settings: Settings) -> list[str]:
    """Enable the instrumentations ``settings.instrument`` asks for; the names enabled."""
    fastapi_native.configure(
        mode=settings.fastapi_telemetry, operation_spans=settings.fastapi_operation_spans
    )
    names = ["fastapi"] if registry.use_fastapi_native(settings.instrument) else []
    if settings.instrument:
        names += registry.enable(provider, settings.instrument)
    names += _instrument_llm(settings)
    names += _instrument_data(provider, settings)
    return names


def _instrument_llm(settings: Settings) -> list[str]:
    llm.configure_llm(
        capture_content=settings.capture_llm_content,
        content_mode=settings.llm_content_mode,
        http_spans=settings.llm_http_spans,
        # Every captured prompt and completion goes through the one scrubber.
        scrub_content=scrub_text,
    )
    wanted = settings.instrument
    if wanted is False:
        return []
    done = llm.instrument_llm_clients()
    return [name for name in done if wanted is True or name in wanted]


def _instrument_data(provider: TracerProvider, settings: Settings) -> list[str]:
    """The slow-query threshold, and cache spans over Redis once its instrumentation is on (so
    the Redis command span nests inside the cache span)."""
    from otel_sentry._internal.instrument import db

    db.set_slow_query_threshold(settings.db_slow_query_ms)
    if not settings.cache_prefixes:
        return []
    try:
        from otel_sentry._internal.instrument.cache import instrument_redis_cache

        instrument_redis_cache(settings.cache_prefixes, tracer_provider=provider)
    except ImportError:
        _log.warning("otel-sentry: cache_prefixes is set but redis is not installed; ignoring it")
        return []
    return ["redis-cache"]
