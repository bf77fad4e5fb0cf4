"""One function per benchmarked setup; each configures the whole process the way a user would.

A setup runs before the app is built (instrumentations patch FastAPI) and returns how to drain
it and what it produced, so the runner can compare that with what the ingest received::

    configured = SETUPS["otel_otlp"](Options(rate=1.0, mode="sentry", sink_dsn=dsn))
    ...  # build the app, send requests
    configured.drain(60.0)
    configured.produced()

Setups only configure; they never time anything. Where a setup counts what it produced, it does
so with one extra call per span (well under 1 us per request), documented at each counter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

__all__ = [
    "RATE_SUBSET",
    "SETUPS",
    "Configured",
    "Options",
    "Produced",
    "SpanCounter",
]

Unit = Literal["transactions", "spans"]


@dataclass(frozen=True)
class Options:
    """What the runner passes to a setup: the sample rate, the export mode and where the sink is."""

    rate: float = 1.0
    mode: str = "sentry"
    sink_dsn: str = ""

    @property
    def sink_url(self) -> str:
        parts = urlsplit(self.sink_dsn)
        return f"{parts.scheme}://{parts.hostname}:{parts.port}"


@dataclass(frozen=True)
class Produced:
    """What the process itself counted, to set against what the sink received.

    ``after_sampling`` says whether the counts are of kept traces only (the sampler ran before
    the counter) or of everything recorded (the SDK samples later, as SentrySpanProcessor does).
    """

    spans: int | None = None
    roots: int | None = None
    after_sampling: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"spans": self.spans, "roots": self.roots, "after_sampling": self.after_sampling}


def _no_drain(timeout: float) -> None:
    return None


def _nothing_counted() -> Produced:
    return Produced()


@dataclass
class Configured:
    """A configured process: ``drain`` flushes and shuts the SDKs down, ``produced`` counts."""

    drain: Callable[[float], None] = _no_drain
    produced: Callable[[], Produced] = _nothing_counted
    delivers: Unit | None = None
    notes: list[str] = field(default_factory=list)


class SpanCounter(SpanProcessor):
    """Counts ended spans and local roots; the process's own tally of what it had to export.

    Added last to a provider, so it sees only spans that the sampler kept and the real
    processors already handled.
    """

    def __init__(self, after_sampling: bool = True) -> None:
        self.spans = 0
        self.roots = 0
        self.after_sampling = after_sampling

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if not span.context.trace_flags.sampled:
            return  # recorded for keep_error_traces, not sampled: not the head's to export
        self.spans += 1
        parent = span.parent
        if parent is None or parent.is_remote:
            self.roots += 1

    def produced(self) -> Produced:
        return Produced(self.spans, self.roots, self.after_sampling)


# -- building blocks ------------------------------------------------------------------------------


def _resource() -> Any:
    from opentelemetry.sdk.resources import Resource

    return Resource.create({"service.name": "otel-sentry-bench"})


def _instrument_fastapi(**options: Any) -> None:
    # Patches fastapi.FastAPI itself (as opentelemetry-instrument does), so apps created later
    # are instrumented with the global tracer provider.
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor().instrument(**options)


def _sdk_provider(rate: float) -> Any:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(resource=_resource(), sampler=ParentBased(TraceIdRatioBased(rate)))
    trace.set_tracer_provider(provider)
    return provider


def _drain_provider(provider: Any, timeout: float) -> None:
    provider.force_flush(int(timeout * 1000))
    provider.shutdown()


def _sentry_init(options: Options, **extra: Any) -> None:
    import sentry_sdk
    from sentry_sdk.integrations.httpx import HttpxIntegration

    sentry_sdk.init(
        dsn=options.sink_dsn,
        traces_sample_rate=options.rate,
        # The httpx client here is the load generator, standing in for a remote caller that
        # sends no trace headers; Sentry's httpx integration would make every request continue
        # the driver's trace (one sample_rand for all of them) and skew sampling.
        disabled_integrations=[HttpxIntegration()],
        **extra,
    )


def _sentry_drain(timeout: float) -> None:
    import sentry_sdk

    client = sentry_sdk.get_client()
    # flush() also sends the pending client reports, which is where dropped events show up.
    client.flush(timeout=timeout)
    client.close(timeout=timeout)


# -- the setups -----------------------------------------------------------------------------------


def bare(options: Options) -> Configured:
    """FastAPI with no instrumentation: the baseline every overhead is measured from."""
    return Configured()


def otel_api(options: Options) -> Configured:
    """The OTel FastAPI instrumentation with only the API: spans are non-recording no-ops."""
    _instrument_fastapi()
    return Configured()


def otel_sdk(options: Options) -> Configured:
    """SDK TracerProvider recording every span, with no processor: the cost of recording."""
    _sdk_provider(options.rate)
    _instrument_fastapi()
    return Configured(drain=lambda timeout: None)


def otel_sdk_floor(options: Options) -> Configured:
    """SDK recording only the server span (ASGI send/receive spans excluded), no processor.

    Not an anchor: the floor under any exporter that uses the official FastAPI instrumentation
    the way otel_sentry does, so a profile of our overhead can be read against it.
    """
    _sdk_provider(options.rate)
    _instrument_fastapi(exclude_spans=["receive", "send"])
    return Configured(drain=lambda timeout: None)


def otel_native_floor(options: Options) -> Configured:
    """SDK recording FastAPI's own server span (FastAPI >= 0.165 telemetry), no processor.

    The floor under otel_sentry now that it uses FastAPI's telemetry: the same server span as
    otel_sdk_floor's, recorded by FastAPI itself instead of the contrib ASGI middleware, with the
    operation spans off as otel_sentry leaves them (instrument/fastapi_native.py).
    """
    from otel_sentry._internal.instrument import fastapi_native

    if not fastapi_native.native():
        return Configured(notes=["the installed FastAPI has no native telemetry (>= 0.165)"])
    _sdk_provider(options.rate)
    fastapi_native.configure(mode="native", operation_spans=False)
    fastapi_native.use_native(tracing=True)
    return Configured(drain=lambda timeout: None)


def otel_otlp(options: Options) -> Configured:
    """The OTel reference pipeline: BatchSpanProcessor + OTLP/HTTP (protobuf) to the sink."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = _sdk_provider(options.rate)
    exporter = OTLPSpanExporter(endpoint=f"{options.sink_url}/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    counter = SpanCounter()
    provider.add_span_processor(counter)
    _instrument_fastapi()
    return Configured(
        drain=lambda timeout: _drain_provider(provider, timeout),
        produced=counter.produced,
        delivers="spans",
    )


def sentry_native(options: Options) -> Configured:
    """sentry_sdk on its own: FastApiIntegration (auto-enabled) makes one transaction a request."""
    _sentry_init(options)
    return Configured(drain=_sentry_drain, delivers="transactions")


def sentry_stream(options: Options) -> Configured:
    """sentry_sdk's span streaming (``trace_lifecycle="stream"``): spans sent as they finish."""
    import sentry_sdk

    _sentry_init(options, trace_lifecycle="stream")
    client = sentry_sdk.get_client()
    batcher = getattr(client, "span_batcher", None)
    if batcher is None:
        return Configured(
            drain=_sentry_drain,
            delivers="spans",
            notes=["sentry_sdk did not start a span batcher: stream mode is not active"],
        )
    counts = {"spans": 0, "roots": 0}
    add = batcher.add

    # Every span the SDK keeps goes through SpanBatcher.add (including those it then drops for
    # overflow); counting there costs one extra call per span.
    def counting_add(span: Any) -> None:
        counts["spans"] += 1
        if span.get("is_segment") is True:
            counts["roots"] += 1
        add(span)

    batcher.add = counting_add
    return Configured(
        drain=_sentry_drain,
        produced=lambda: Produced(counts["spans"], counts["roots"]),
        delivers="spans",
    )


def sentry_otel_processor(options: Options) -> Configured:
    """OTel SDK + sentry_sdk's SentrySpanProcessor and SentryPropagator, as Sentry documents."""
    from opentelemetry import trace
    from opentelemetry.propagate import set_global_textmap
    from opentelemetry.sdk.trace import TracerProvider
    from sentry_sdk.integrations.opentelemetry import SentryPropagator, SentrySpanProcessor

    _sentry_init(options, instrumenter="otel")
    # Sentry's docs leave OTel sampling at its default (always on): sentry_sdk applies
    # traces_sample_rate itself when the processor starts a transaction.
    provider = TracerProvider(resource=_resource())
    provider.add_span_processor(SentrySpanProcessor())
    counter = SpanCounter(after_sampling=False)
    provider.add_span_processor(counter)
    trace.set_tracer_provider(provider)
    set_global_textmap(SentryPropagator())
    _instrument_fastapi()

    def drain(timeout: float) -> None:
        # OTel first, so the processor has finished every transaction before sentry_sdk drains.
        _drain_provider(provider, timeout)
        _sentry_drain(timeout)

    return Configured(drain=drain, produced=counter.produced, delivers="transactions")


def otel_sentry(
    options: Options, fastapi_telemetry: str = "auto", keep_error_traces: bool = False
) -> Configured:
    """This project: ``otel_sentry.init`` exporting to the sink as Sentry envelopes or OTLP."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    import otel_sentry as project

    if options.mode not in ("sentry", "otlp"):
        raise ValueError(f"otel_sentry setup: --mode must be sentry or otlp, not {options.mode!r}")
    project.init(
        dsn=options.sink_dsn,
        traces_sample_rate=options.rate,
        export=options.mode,
        # Only the server side, like every other setup: instrumenting httpx would turn the load
        # generator's calls into the roots of the traces.
        instrument=("fastapi",),
        fastapi_telemetry=fastapi_telemetry,
        keep_error_traces=keep_error_traces,
    )
    provider = trace.get_tracer_provider()
    notes: list[str] = []
    produced: Callable[[], Produced] = _nothing_counted
    if isinstance(provider, TracerProvider):
        counter = SpanCounter()
        provider.add_span_processor(counter)
        produced = counter.produced
    else:
        notes.append(f"otel_sentry.init left a {type(provider).__name__}, not an SDK provider")
    return Configured(
        drain=lambda timeout: project.shutdown(timeout=timeout),
        produced=produced,
        delivers="transactions" if options.mode == "sentry" else "spans",
        notes=notes,
    )


def otel_sentry_contrib(options: Options) -> Configured:
    """This project with the contrib FastAPI instrumentation (``fastapi_telemetry="contrib"``).

    What otel_sentry costs on a FastAPI without native telemetry (< 0.165), or when the user
    keeps the contrib instrumentation: the same-run comparison for FastAPI's own telemetry.
    """
    return otel_sentry(options, fastapi_telemetry="contrib")


def otel_sentry_keep_errors(options: Options) -> Configured:
    """This project with ``keep_error_traces``: every trace recorded, the unsampled held until
    their root ends. At rate 1.0 the same as ``otel_sentry``, so measured at lower rates only."""
    return otel_sentry(options, keep_error_traces=True)


SETUPS: dict[str, Callable[[Options], Configured]] = {
    "bare": bare,
    "otel_api": otel_api,
    "otel_sdk": otel_sdk,
    "otel_sdk_floor": otel_sdk_floor,
    "otel_native_floor": otel_native_floor,
    "otel_otlp": otel_otlp,
    "sentry_native": sentry_native,
    "sentry_stream": sentry_stream,
    "sentry_otel_processor": sentry_otel_processor,
    "otel_sentry": otel_sentry,
    "otel_sentry_contrib": otel_sentry_contrib,
    "otel_sentry_keep_errors": otel_sentry_keep_errors,
}

# The setups measured again at a partial sample rate: the anchors the acceptance lines compare to.
RATE_SUBSET: tuple[str, ...] = (
    "bare",
    "otel_sdk_floor",
    "otel_native_floor",
    "otel_otlp",
    "sentry_native",
    "sentry_otel_processor",
)
