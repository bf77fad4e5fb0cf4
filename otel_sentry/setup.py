"""Builds and installs everything ``init()`` promises, once per process.

Order matters and is fixed here: settings are resolved and validated before anything is
touched, so a bad value leaves the process exactly as it was. Then sentry_sdk (errors, transport),
then the OpenTelemetry ``TracerProvider`` (resource, sampler, span processors), then the
instrumentations. A second identical ``init()`` is a no-op; a different one is an error, because
two configurations in one process would mean double export or silently ignored settings.

OpenTelemetry lets a process set its global tracer provider once. We install one provider whose
span processing goes through a switchboard we own, so ``shutdown()`` then ``init()`` (tests,
reloaders, notebooks) rewires the same provider instead of leaving instrumented code a dead one.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from types import FrameType
from typing import Any

import sentry_sdk
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

from otel_sentry import scrub
from otel_sentry._version import __version__
from otel_sentry.config import ConfigError, Settings, resolve
from otel_sentry.instrument import llm, registry
from otel_sentry.pressure import LoadShedder
from otel_sentry.roots import LocalRootTracker
from otel_sentry.scrub import scrub_text
from otel_sentry.scrub_spans import ScrubbingSpanExporter
from otel_sentry.sentry import asgi, capture, dedupe, exit_spool, jobs
from otel_sentry.sentry.events import link_events, unlink_events
from otel_sentry.sentry.exporter import TransactionExporter
from otel_sentry.sentry.gen_ai import GenAiBreadcrumbs
from otel_sentry.sentry.limits import fit_event
from otel_sentry.sentry.noise import NoiseFilter
from otel_sentry.sentry.privacy import NoEventScrubber, SentryHooks
from otel_sentry.sentry.propagator import SentryPropagator
from otel_sentry.sentry.sampler import SentrySampler
from otel_sentry.sentry.transactions import TransactionDefaults
from otel_sentry.sentry.transport import EnvelopeTransport

__all__ = ["current_settings", "flush", "init", "shutdown"]

_log = logging.getLogger("otel_sentry")
_lock = threading.RLock()
_lock_held_for_fork = False


def _before_fork() -> None:
    # A fork while another thread is inside init() or shutdown() would copy a half-built setup
    # and a lock nobody in the child can release: let that call finish first (briefly).
    global _lock_held_for_fork
    _lock_held_for_fork = _lock.acquire(timeout=5)


def _after_fork_in_parent() -> None:
    global _lock_held_for_fork
    if _lock_held_for_fork:
        _lock_held_for_fork = False
        _lock.release()


def _after_fork_in_child() -> None:
    # The exporter, its senders and the transport restart their own threads and sockets in
    # their at-fork hooks; the child only needs a lock of its own.
    global _lock, _lock_held_for_fork
    _lock, _lock_held_for_fork = threading.RLock(), False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )


class _Switchboard(SpanProcessor):
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


class _SwitchableSampler(Sampler):
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


@dataclass
class _Installed:
    settings: Settings
    instrumented: list[str]
    sentry_client: bool


_installed: _Installed | None = None
_provider: TracerProvider | None = None
_switchboard = _Switchboard()
_sampler = _SwitchableSampler(ParentBased(TraceIdRatioBased(1.0)))
_atexit_registered = False


def current_settings() -> Settings | None:
    """The settings of the active ``init()``, or None."""
    installed = _installed
    return installed.settings if installed else None


def init(**options: Any) -> Settings:
    """Resolve settings, then install sentry_sdk, the tracer provider and instrumentations."""
    global _installed, _atexit_registered
    settings = resolve(options)
    with _lock:
        if _installed is not None:
            changed = _explicit_changes(_installed.settings, settings, options)
            if not changed:
                return _installed.settings
            raise ConfigError(_conflict_message(changed))
        scrub.configure(_scrubber(settings))
        client = _init_sentry(settings)
        provider = _install_provider(settings)
        sampler = _build_sampler(settings)
        _sampler.delegate = sampler
        _switchboard.targets = tuple(_span_processors(settings, sampler, client))
        if client:
            link_events(_defaults(settings))
        _install_propagator()
        instrumented = registry.enable(provider, settings.instrument) if settings.instrument else []
        instrumented += _instrument_llm(settings)
        instrumented += _instrument_data(provider, settings)
        _installed = _Installed(settings, instrumented, client)
        if settings.gc_freeze:
            _freeze_startup_objects()
        if not _atexit_registered:
            # Registered after sentry_sdk's own atexit hook, so it runs first: spans are
            # handed to the transport before the transport drains and closes.
            atexit.register(_at_exit)
            _install_sigterm_flush()
            _atexit_registered = True
    _announce(settings, instrumented)
    return settings


_frozen = False


def _freeze_startup_objects() -> None:
    """Take what exists after the first init() out of the garbage collector's full passes.

    sentry_sdk, the OpenTelemetry SDK and the instrumentations add ~90k objects that live as
    long as the process; every full (generation 2) collection walks them all, a 45 ms pause per
    pass on the soak machine (71 ms with them, 26 ms for the bare app; docs/design.md). Frozen,
    they are skipped: the pause is the app's own again. Objects still alive then are mostly
    modules, classes and configuration; a cycle among them that becomes garbage later is never
    collected, so this runs once per process and collects first. With a pre-fork server it also
    keeps the children from writing to the parent's pages.
    """
    global _frozen
    if _frozen:
        return
    _frozen = True
    gc.collect()
    gc.freeze()


def _instrument_data(provider: TracerProvider, settings: Settings) -> list[str]:
    """The slow-query threshold, and cache spans over Redis once its instrumentation is on (so
    the Redis command span nests inside the cache span)."""
    from otel_sentry.instrument import db

    db.set_slow_query_threshold(settings.db_slow_query_ms)
    if not settings.cache_prefixes:
        return []
    try:
        from otel_sentry.instrument.cache import instrument_redis_cache

        instrument_redis_cache(settings.cache_prefixes, tracer_provider=provider)
    except ImportError:
        _log.warning("otel-sentry: cache_prefixes is set but redis is not installed; ignoring it")
        return []
    return ["redis-cache"]


def flush(timeout: float = 2.0) -> bool:
    """Export what is pending, then drain sentry_sdk's transport. True if everything made it."""
    deadline = time.monotonic() + timeout
    ok = _switchboard.force_flush(int(timeout * 1000))
    client = sentry_sdk.get_client()
    if client.is_active():
        client.flush(timeout=timeout)
        transport = client.transport
        if isinstance(transport, EnvelopeTransport):
            # What waited for Sentry gets the rest of the time; a disk spool keeps the rest.
            ok = transport.drain(max(0.0, deadline - time.monotonic())) and ok
    return ok


def shutdown(timeout: float = 2.0) -> None:
    """Flush, stop exporting and close the Sentry client. ``init()`` may be called again."""
    global _installed
    with _lock:
        if _installed is None:
            return
        # One budget for all of it: a hanging Sentry must not hold a SIGTERM'd process for
        # the sum of every component's own timeout.
        deadline = time.monotonic() + timeout
        flush(timeout)
        for target in _switchboard.targets:
            if isinstance(target, TransactionExporter):
                target.shutdown_timeout = max(0.1, deadline - time.monotonic())
        _switchboard.shutdown()
        unlink_events()
        _sampler.delegate = ParentBased(TraceIdRatioBased(1.0))
        if _installed.sentry_client:
            sentry_sdk.get_client().close(timeout=max(0.1, deadline - time.monotonic()))
            sentry_sdk.get_global_scope().set_client(None)  # a no-op client, not the closed one
        _installed = None


def _at_exit() -> None:
    try:
        shutdown()
    except Exception:  # exiting: never turn a clean exit into a traceback
        _log.debug("otel-sentry: shutdown at exit failed", exc_info=True)


def _explicit_changes(old: Settings, new: Settings, options: dict[str, Any]) -> list[str]:
    """Options passed to this call whose value differs from the active one.

    Values that came from the environment or defaults don't count: a library or an app module
    calling a bare ``init()`` after the process was set up (by the launcher, or a test harness)
    joins the existing setup instead of failing.
    """
    changed = [
        f.name
        for f in fields(Settings)
        if f.name in options and getattr(old, f.name) != getattr(new, f.name)
    ]
    old_code, new_code = dict(old.code), dict(new.code)
    changed += [k for k in new_code if k in options and old_code.get(k) is not new_code[k]]
    return changed


def _install_propagator() -> None:
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


def _install_sigterm_flush() -> None:
    """Flush on SIGTERM, then let the previous handler (or the default) do what it did.

    atexit alone is not enough: servers such as uvicorn re-raise SIGTERM with the default
    handler after their graceful shutdown, which ends the process without running atexit.
    When they restore the handler they found at startup, that is this one.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)
    if getattr(previous, "_otel_sentry", False):
        return

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        _at_exit()
        if callable(previous):
            previous(signum, frame)
            return
        signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        signal.raise_signal(signum)

    on_sigterm._otel_sentry = True  # type: ignore[attr-defined]
    with contextlib.suppress(ValueError, OSError):  # not the main interpreter's main thread
        signal.signal(signal.SIGTERM, on_sigterm)


def _conflict_message(changed: list[str]) -> str:
    return (
        "otel_sentry.init() was already called with different settings "
        f"(changed: {', '.join(changed)}). Two configurations in one process would export twice "
        "or ignore one of them. Fix: call init() once at startup, or call "
        "otel_sentry.shutdown() before initializing again."
    )


def _init_sentry(settings: Settings) -> bool:
    transport = settings.option("transport")
    if not settings.enabled or (settings.dsn is None and transport is None):
        return False
    _check_spool_dir(settings)
    kwargs: dict[str, Any] = {
        "dsn": settings.dsn,
        "environment": settings.environment,
        "release": settings.release,
        "debug": settings.debug,
        # Traces are OpenTelemetry's job here; sentry_sdk creating its own transactions would
        # double them, and its header injection would fight the OTel propagator.
        "traces_sample_rate": None,
        "trace_propagation_targets": [],
        "disabled_integrations": _replaced_integrations(),
        # Relay trims strings past 8 KiB anyway; trimming here keeps events under its 1 MiB
        # item limit (sentry_sdk leaves them unbounded by default, a 3 MiB message included).
        "max_value_length": 8192,
    }
    if settings.send_default_pii:
        # Only when opted in: sentry_sdk >= 2.7x deprecates the flag in favour of
        # data_collection, and its default (off) is already ours.
        kwargs["send_default_pii"] = True
    if settings.enable_logs:
        kwargs["enable_logs"] = True
    if transport is None:
        kwargs["transport"] = EnvelopeTransport
        # Our transport adds the source lines off the request thread (sentry/capture.py).
        kwargs["include_source_context"] = False
    for name in ("integrations", "transport"):
        value = settings.option(name)
        if value is not None:
            kwargs[name] = value
    kwargs["integrations"] = _tuned_integrations(list(kwargs.get("integrations") or ()))
    # Every exit of sentry_sdk: noise filter, then the user's hook, then the one scrubber last
    # (see sentry/privacy.py); sentry_sdk's own EventScrubber is off so allow-lists hold.
    hooks = SentryHooks(
        scrub.current(),
        NoiseFilter(settings.noise_filters),
        before_send=settings.option("before_send"),
        before_send_transaction=settings.option("before_send_transaction"),
        before_breadcrumb=settings.option("before_breadcrumb"),
        before_send_log=settings.option("before_send_log"),
    )
    kwargs["before_send"] = _fitted(hooks.before_send)
    kwargs["before_send_transaction"] = hooks.before_send_transaction
    if settings.option("before_breadcrumb") is not None:
        # Only the user's: breadcrumbs are scrubbed with their event, and a pass-through hook
        # would cost every recorded breadcrumb (every INFO log line) a call for nothing.
        kwargs["before_breadcrumb"] = hooks.before_breadcrumb
    kwargs["before_send_log"] = hooks.before_send_log
    kwargs["event_scrubber"] = NoEventScrubber()
    if settings.spotlight:
        kwargs["spotlight"] = (
            True if settings.spotlight.lower() in ("1", "true") else settings.spotlight
        )
    sentry_sdk.init(**kwargs)
    # sentry_sdk honours disabled_integrations only the first time an integration is seen in
    # the process: if any client set one up before us, ours gets it anyway. Its patched code
    # asks the current client for the integration, so removing it from ours switches it off.
    if not settings.debug:
        # sentry_sdk keeps its logger at DEBUG and filters per record, so every envelope it
        # sends builds a LogRecord nobody reads (a measurable share of a send's CPU).
        logging.getLogger("sentry_sdk.errors").setLevel(logging.INFO)
    client = sentry_sdk.get_client()
    for integration in kwargs["disabled_integrations"]:
        client.integrations.pop(integration.identifier, None)
    if isinstance(client.transport, EnvelopeTransport):
        _use_spool(client.transport, settings)
        client.transport.keep_at_exit(
            exit_spool.choose(settings.dsn, settings.spool_dir, settings.spool_at_exit)
        )
        client.transport.source_context = kwargs.get("include_source_context") is False
    capture.speed_up_queryset_repr()
    capture.warm_installed_modules()
    dedupe.install()
    asgi.install()
    jobs.install()
    return True


def _fitted(hook: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """``hook``, then Sentry's size limit: an event over 1 MiB would be refused whole."""

    def before_send(event: Any, hint: Any) -> Any:
        event = hook(event, hint)
        return fit_event(event) if event is not None else None

    return before_send


def _check_spool_dir(settings: Settings) -> None:
    """Before anything is set up, so a bad directory leaves the process untouched."""
    if settings.spool_dir is None:
        return
    problem = exit_spool.usable(Path(settings.spool_dir))
    if problem is not None:
        raise ConfigError(
            f"spool_dir (OTEL_SENTRY_SPOOL_DIR) = {settings.spool_dir!r} is not a usable "
            f"directory: {problem}. Fix: point it at a writable directory, or unset it to keep "
            "waiting envelopes in memory."
        )


def _use_spool(transport: EnvelopeTransport, settings: Settings) -> None:
    max_bytes = int(settings.spool_max_mb * (1 << 20))
    try:
        transport.use_spool(settings.spool_dir, max_bytes)
    except OSError as exc:  # checked at startup; a disk that fails since keeps us in memory
        _log.warning("otel-sentry: spool_dir unusable (%s); keeping envelopes in memory", exc)
        transport.use_spool(None, max_bytes)


def _tuned_integrations(given: list[Any]) -> list[Any]:
    """sentry_sdk's Django integration without its tracing work, unless the user passed one.

    It stays on for errors: it forks the scope per request, captures through Django's
    ``got_request_exception`` (inside the OTel request span) and adds the request. Its
    transaction, middleware and signal spans are never sent here but cost ~160 us per request
    (benchmarks/django_errors.py: bare 338 us, default integration 592 us, these 428 us).
    """
    try:
        from sentry_sdk.integrations.django import DjangoIntegration
    except Exception:  # Django is not installed
        return given
    if any(isinstance(i, DjangoIntegration) for i in given):
        return given
    lean = DjangoIntegration(
        middleware_spans=False,
        signals_spans=False,
        cache_spans=False,
        db_transaction_spans=False,
        http_methods_to_capture=(),  # no transaction of its own; the scope is still forked
    )
    return [*given, lean]


_REPLACED = (
    ("sentry_sdk.integrations.starlette", "StarletteIntegration"),
    ("sentry_sdk.integrations.fastapi", "FastApiIntegration"),
    ("sentry_sdk.integrations.httpx", "HttpxIntegration"),
    ("sentry_sdk.integrations.openai", "OpenAIIntegration"),
    ("sentry_sdk.integrations.anthropic", "AnthropicIntegration"),
    ("sentry_sdk.integrations.celery", "CeleryIntegration"),
    ("sentry_sdk.integrations.redis", "RedisIntegration"),
    ("sentry_sdk.integrations.sqlalchemy", "SqlalchemyIntegration"),
    ("sentry_sdk.integrations.asyncpg", "AsyncPGIntegration"),
)


def _replaced_integrations() -> list[Any]:
    """sentry_sdk integrations whose job OpenTelemetry and our own middleware do here.

    Starlette/FastAPI: ~400 us per request even with tracing off (see sentry/asgi.py).
    httpx: its spans and headers are the OTel instrumentation's and the propagator's job.
    OpenAI/Anthropic: auto-enabled when the SDK is installed; they would start a second span per
    call and capture every failed call as an issue of its own, beside the request's error
    (GenAI spans are instrument/llm.py's and the Anthropic SDK's job).
    Celery: its own transactions and task headers compete with the OTel ones (sentry/jobs.py).
    Redis, SQLAlchemy, asyncpg: their spans never reach a transaction here (the OTel
    instrumentations and instrument/db.py, cache.py record them), yet they still build spans and
    breadcrumbs per command: a Redis GET cost ~1.9x the CPU with RedisIntegration on.
    """
    _skip_replaced_auto_integrations()
    out: list[Any] = []
    for module, name in _REPLACED:
        # Only already-imported ones can be active: a client set up before ours enabled them.
        loaded = sys.modules.get(module)
        if loaded is not None and hasattr(loaded, name):
            out.append(getattr(loaded, name))
    return out


def _skip_replaced_auto_integrations() -> None:
    """Take the replaced integrations off the list sentry_sdk walks at init.

    To find out whether a library is installed, sentry_sdk imports each auto-enabling
    integration's module, which imports the library: with the OpenAI and Anthropic SDKs installed
    that alone cost init() ~4 s of CPU (~60 MiB RSS) for integrations we then switch off. The list
    is sentry_sdk's private module state; if it ever moves we fall back to importing them.
    """
    try:
        from sentry_sdk import integrations

        auto = integrations._AUTO_ENABLING_INTEGRATIONS
    except (ImportError, AttributeError):
        return
    replaced = {f"{module}.{name}" for module, name in _REPLACED}
    auto[:] = [path for path in auto if path not in replaced]


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


def _resource(settings: Settings) -> Resource:
    attrs: dict[str, Any] = {"deployment.environment.name": settings.environment}
    if settings.service_name:
        attrs["service.name"] = settings.service_name
    if settings.release:
        attrs["service.version"] = settings.release
    extra = settings.option("resource_attributes")
    if extra:
        attrs.update(extra)
    # Resource.create also merges OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; ours win.
    return Resource.create(attrs)


def _install_provider(settings: Settings) -> TracerProvider:
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
        current.add_span_processor(_switchboard)
        _provider = current
        return current
    provider = TracerProvider(
        resource=resource, sampler=_sampler, shutdown_on_exit=False, span_limits=_span_limits()
    )
    provider.add_span_processor(_switchboard)
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


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


def _build_sampler(settings: Settings) -> SentrySampler:
    noise = NoiseFilter(settings.noise_filters).sampling_rules()
    return SentrySampler(
        rate=settings.traces_sample_rate,
        traces_sampler=settings.option("traces_sampler"),
        # The user's rules first: ``/health=1`` keeps health checks despite the noise rules.
        rules=(*settings.sampling_rules, *noise),
        shedder=LoadShedder() if settings.load_shedding else None,
    )


def _scrubber(settings: Settings) -> scrub.Scrubber:
    return scrub.Scrubber(
        extra_keys=settings.scrub_keys,
        patterns=settings.scrub_patterns,
        allow_keys=settings.scrub_allow_keys,
        callback=settings.option("scrub_callback"),
        send_default_pii=settings.send_default_pii,
    )


def _defaults(settings: Settings) -> TransactionDefaults:
    parts = settings.dsn_parts
    return TransactionDefaults(
        release=settings.release,
        environment=settings.environment,
        public_key=parts.public_key if parts else None,
        org_id=settings.org_id or (parts.org_id if parts else None),
        sdk={"name": "sentry.python.otel_sentry", "version": __version__},
    )


def _span_processors(
    settings: Settings, sampler: SentrySampler, has_client: bool
) -> list[SpanProcessor]:
    processors: list[SpanProcessor] = []
    destinations = settings.span_export
    processors.append(LocalRootTracker())
    if has_client:
        processors.append(GenAiBreadcrumbs())
    if "sentry" in destinations and has_client:
        processors.append(
            TransactionExporter(
                _defaults(settings),
                sampler=sampler,
                before_send_transaction=settings.option("before_send_transaction"),
                noise=NoiseFilter(settings.noise_filters),
            )
        )
    if "otlp" in destinations:
        processors.append(_otlp_processor(settings))
    exporters = settings.option("span_exporters") or ()
    if settings.enabled and exporters:
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        processors.extend(BatchSpanProcessor(ScrubbingSpanExporter(e)) for e in exporters)
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


def _announce(settings: Settings, instrumented: list[str]) -> None:
    if settings.profiles_sample_rate:
        _log.warning(
            "otel-sentry: profiles_sample_rate=%s is accepted but profiling is not wired up yet: "
            "no profiles are sent",
            settings.profiles_sample_rate,
        )
    if not settings.enabled:
        _log.info("otel-sentry: disabled (SENTRY_ENABLED=false): nothing is sent")
    elif settings.dsn is None and not settings.span_export and settings.option("transport") is None:
        _log.warning(
            "otel-sentry: no SENTRY_DSN and no OTEL_EXPORTER_OTLP_ENDPOINT: instrumentation is "
            "on (%s) but nothing is sent",
            ", ".join(instrumented) or "no libraries",
        )
    else:
        _log.info(
            "otel-sentry: sending to %s; environment=%s release=%s; instrumented: %s",
            " and ".join(settings.span_export) or "sentry (errors only)",
            settings.environment,
            settings.release,
            ", ".join(instrumented) or "nothing",
        )
