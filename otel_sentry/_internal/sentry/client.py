"""sentry_sdk's client as ``init()`` sets it up: our transport, hooks and integrations.

Errors, logs and sessions are sentry_sdk's to send; traces are OpenTelemetry's. So its own
tracing is off, the integrations whose job OpenTelemetry's instrumentations do are switched off
(they cost requests CPU for spans that would never be sent), every event leaves through one chain
of hooks (noise filter, the user's hook, the one scrubber, Sentry's size limit), and envelopes
travel through :class:`~otel_sentry._internal.sentry.transport.EnvelopeTransport` with its spool.
"""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import sentry_sdk
from opentelemetry.trace import SpanKind

from otel_sentry._internal import logs, scrub
from otel_sentry._internal.config import ConfigError, Settings
from otel_sentry._internal.roots import local_root
from otel_sentry._internal.sentry import (
    arq_rq,
    asgi,
    capture,
    celery_tasks,
    dedupe,
    exit_spool,
    sessions,
)
from otel_sentry._internal.sentry.hooks import NoEventScrubber, SentryHooks
from otel_sentry._internal.sentry.limits import fit_event
from otel_sentry._internal.sentry.noise import NoiseFilter
from otel_sentry._internal.sentry.raised_in import raised_in
from otel_sentry._internal.sentry.semantics import interpret
from otel_sentry._internal.sentry.transactions import TransactionDefaults, attributes_of
from otel_sentry._internal.sentry.transport import EnvelopeTransport
from otel_sentry._version import __version__

__all__ = ["close_sentry", "init_sentry", "transaction_defaults"]

_log = logging.getLogger("otel_sentry")


def init_sentry(settings: Settings, noise: NoiseFilter) -> bool:
    """sentry_sdk's client, set up to send what OpenTelemetry does not: errors, logs, sessions.

    False when nothing is to be sent to Sentry (disabled, or neither a DSN nor a transport).
    """
    transport = settings.transport
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
        # Release health is counted from server spans (sentry/sessions.py), for every framework;
        # its middlewares' own request sessions would count Django, Flask and aiohttp twice.
        "auto_session_tracking": False,
    }
    if settings.send_default_pii:
        # Only when opted in: sentry_sdk >= 2.7x deprecates the flag in favour of
        # data_collection, and its default (off) is already ours.
        kwargs["send_default_pii"] = True
    if settings.enable_logs:
        kwargs["enable_logs"] = True
    if settings.profiles_sample_rate is not None:
        # sentry_sdk sets its profiler up from it; root spans start it (sentry/profiles.py).
        kwargs["profiles_sample_rate"] = settings.profiles_sample_rate
    if transport is None:
        kwargs["transport"] = EnvelopeTransport
        # Our transport adds the source lines off the request thread (sentry/capture.py).
        kwargs["include_source_context"] = False
    if settings.integrations is not None:
        kwargs["integrations"] = settings.integrations
    if transport is not None:
        kwargs["transport"] = transport
    kwargs["integrations"] = _tuned_integrations(list(kwargs.get("integrations") or ()))
    # Every exit of sentry_sdk: noise filter, then the user's hook, then the one scrubber last
    # (see sentry/hooks.py); sentry_sdk's own EventScrubber is off so allow-lists hold.
    hooks = SentryHooks(
        scrub.current(),
        noise,
        before_send=settings.before_send,
        before_send_transaction=settings.before_send_transaction,
        before_breadcrumb=settings.before_breadcrumb,
        before_send_log=settings.before_send_log,
    )
    kwargs["before_send"] = _fitted(hooks.before_send)
    kwargs["before_send_transaction"] = hooks.before_send_transaction
    if settings.before_breadcrumb is not None:
        # Only the user's: breadcrumbs are scrubbed with their event, and a pass-through hook
        # would cost every recorded breadcrumb (every INFO log line) a call for nothing.
        kwargs["before_breadcrumb"] = hooks.before_breadcrumb
    kwargs["before_send_log"] = hooks.before_send_log
    kwargs["event_scrubber"] = NoEventScrubber()
    if settings.spotlight:
        kwargs["spotlight"] = (
            True if settings.spotlight.lower() in ("1", "true") else settings.spotlight
        )
    _add_sentry_sdk_options(kwargs, settings.sentry_sdk_options, own_transport=transport is None)
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
        client.transport.source_context = (
            settings.sentry_sdk_options.get("include_source_context") is not False
        )
    sessions.install(
        client,
        settings.release,
        enabled=settings.sentry_sdk_options.get("auto_session_tracking") is not False,
    )
    capture.speed_up_queryset_repr()
    logs.quiet_server_lifecycle()
    capture.warm_installed_modules()
    dedupe.install()
    asgi.install()
    celery_tasks.install()
    arq_rq.install()
    _name_errors_like_their_request()
    return True


def _add_sentry_sdk_options(
    kwargs: dict[str, Any], given: Mapping[str, Any], *, own_transport: bool
) -> None:
    """The user's other sentry_sdk keywords (``sdk_options.py``, ``passed``), over ours."""
    for name, value in given.items():
        if name == "trace_ignore_status_codes":
            continue  # the noise filter's job here (noise.py); sentry_sdk has no transactions
        if name == "auto_session_tracking":
            continue  # sentry/sessions.py's (init_sentry); the middlewares' stay off
        if name == "disabled_integrations":
            kwargs[name] = [*kwargs[name], *(value or ())]
        elif name == "include_source_context" and own_transport:
            continue  # our transport adds them off the request thread, or not (init_sentry)
        else:
            kwargs[name] = value


def transaction_defaults(settings: Settings) -> TransactionDefaults:
    """What every transaction and DSC of this process carries (release, environment, keys)."""
    parts = settings.dsn_parts
    sdk_options = settings.sentry_sdk_options
    return TransactionDefaults(
        release=settings.release,
        environment=settings.environment,
        public_key=parts.public_key if parts else None,
        org_id=settings.org_id or (parts.org_id if parts else None),
        sdk={"name": "sentry.python.otel_sentry", "version": __version__},
        server_name=_text(sdk_options.get("server_name")) or socket.gethostname(),
        dist=_text(sdk_options.get("dist")),
    )


def _text(value: Any) -> str | None:
    return str(value).strip() or None if value is not None else None


def _fitted(hook: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """``hook``, then Sentry's size limit: an event over 1 MiB would be refused whole."""

    def before_send(event: Any, hint: Any) -> Any:
        event = hook(event, hint)
        if event is None:
            return None
        sessions.note_event(event, hint)  # where sentry_sdk updates its session: after the hook
        return fit_event(event)

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
    """sentry_sdk's Django, Flask and aiohttp integrations, tuned, unless the user passed one.

    They stay on for errors: each forks the scope per request, captures unhandled exceptions (Django
    through ``got_request_exception`` and Flask through its signal of that name, inside the OTel
    request span; aiohttp just outside it, linked by events.py) and adds the request. Django: its
    transaction, middleware and signal spans are never sent here but cost ~160 us per request
    (benchmarks/django_errors.py: bare 338 us, default integration 592 us, these 428 us). Flask:
    no transaction of its own either. Their errors take the request's transaction name
    (:func:`_name_errors_like_their_request`); the styles chosen here only name an error when no
    server span of ours is there (the framework's instrumentation disabled): after the route
    (``/checkout/<int:id>``, ``POST /checkout/{id}``) rather than the view function.
    """
    tuned: tuple[tuple[str, str, dict[str, Any]], ...] = (
        (
            "sentry_sdk.integrations.django",
            "DjangoIntegration",
            {
                "middleware_spans": False,
                "signals_spans": False,
                "cache_spans": False,
                "db_transaction_spans": False,
                "http_methods_to_capture": (),  # no transaction of its own; scopes still forked
            },
        ),
        (
            "sentry_sdk.integrations.flask",
            "FlaskIntegration",
            {"transaction_style": "url", "http_methods_to_capture": ()},
        ),
        (
            "sentry_sdk.integrations.aiohttp",
            "AioHttpIntegration",
            {"transaction_style": "method_and_path_pattern"},
        ),
    )
    out = list(given)
    for module, name, options in tuned:
        try:
            integration = getattr(__import__(module, fromlist=[name]), name)
        except Exception:  # the framework is not installed (sentry_sdk raises DidNotEnable)
            continue
        if not any(isinstance(i, integration) for i in given):
            out.append(integration(**options))
    return out


_naming = False


def _name_errors_like_their_request() -> None:
    """Name an error after the transaction of the request it is linked to (idempotent).

    The framework integrations name their errors in their own way (Flask ``/checkout/<int:id>``,
    Django ``/checkout/{id}``) while the request's transaction is named by the bridge from the
    OTel server span (``POST /checkout/<int:id>``); with two names Sentry cannot pair the issue
    with the request. Registered on the global scope because its processors run after the global
    ones, among them events.py, which has linked the event to its span by then.
    """
    global _naming
    if not _naming:
        sentry_sdk.get_global_scope().add_event_processor(_request_transaction_name)
        _naming = True


def _request_transaction_name(event: Any, hint: Any) -> Any:
    """A named error linked to a server span of ours takes that span's transaction name."""
    if event.get("type") == "transaction" or not event.get("transaction"):
        return event
    trace_id = ((event.get("contexts") or {}).get("trace") or {}).get("trace_id")
    exc_info = (hint or {}).get("exc_info")
    origin = raised_in(exc_info[1]) if isinstance(exc_info, tuple) and len(exc_info) == 3 else None
    # The request's root span: current (Flask, Django capture inside it), or the one the
    # exception left (aiohttp captures after it ended).
    for root in (local_root(), origin.root if origin is not None else None):
        if (
            root is not None
            and root.kind is SpanKind.SERVER
            and root.context is not None
            and f"{root.context.trace_id:032x}" == trace_id
        ):
            sem = interpret(root.name, root.kind, attributes_of(root), root.status.status_code)
            event["transaction"] = sem.description
            event["transaction_info"] = {"source": sem.source}
            break
    return event


_REPLACED = (
    ("sentry_sdk.integrations.starlette", "StarletteIntegration"),
    ("sentry_sdk.integrations.fastapi", "FastApiIntegration"),
    ("sentry_sdk.integrations.httpx", "HttpxIntegration"),
    ("sentry_sdk.integrations.openai", "OpenAIIntegration"),
    ("sentry_sdk.integrations.anthropic", "AnthropicIntegration"),
    ("sentry_sdk.integrations.celery", "CeleryIntegration"),
    ("sentry_sdk.integrations.arq", "ArqIntegration"),
    ("sentry_sdk.integrations.rq", "RqIntegration"),
    ("sentry_sdk.integrations.redis", "RedisIntegration"),
    ("sentry_sdk.integrations.sqlalchemy", "SqlalchemyIntegration"),
    ("sentry_sdk.integrations.asyncpg", "AsyncPGIntegration"),
)


def _replaced_integrations() -> list[Any]:
    """sentry_sdk integrations whose job OpenTelemetry and our own middleware do here.

    Starlette/FastAPI: ~400 us per request even with tracing off (see sentry/asgi.py). httpx: its
    spans and headers are the OTel instrumentation's and the propagator's job. OpenAI/Anthropic:
    auto-enabled when the SDK is installed; they would start a second span per call and capture
    every failed call as an issue of its own, beside the request's error (GenAI spans are
    instrument/llm_clients.py's and the Anthropic SDK's job). Celery: its own transactions and task
    headers compete with the OTel ones (sentry/celery_tasks.py); arq and RQ likewise
    (sentry/arq_rq.py). Redis, SQLAlchemy, asyncpg: their spans never reach a transaction here (the
    OTel instrumentations and instrument/db.py, cache.py record them), yet they still build spans
    and breadcrumbs per command: a Redis GET cost ~1.9x the CPU with RedisIntegration on.
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


def close_sentry(timeout: float) -> None:
    """Flush and close the client; a no-op client takes its place (not the closed one)."""
    sentry_sdk.get_client().close(timeout=timeout)
    sentry_sdk.get_global_scope().set_client(None)
