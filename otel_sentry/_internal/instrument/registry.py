"""The official OpenTelemetry instrumentations installed here, and turning them on.

We enable the contrib instrumentors through the same ``opentelemetry_instrumentor`` entry points
that ``opentelemetry-instrument`` uses, so ``init()`` and the launcher instrument the same
libraries, honour ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` alike, and skip an instrumentor whose
library is missing or of an unsupported version instead of failing.

    >>> [i.name for i in discover() if i.usable]            # doctest: +SKIP
    ['aiohttp-server', 'fastapi', 'flask', 'httpx', 'redis', 'sqlalchemy', 'starlette']

Web servers: ``fastapi``, ``starlette``, ``flask``, ``django`` and ``aiohttp-server`` each give a
request one server span named after its route (``GET /items/{item_id}``); the generic ``asgi``
and ``wsgi`` layers beneath some of them stay off by default.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from opentelemetry.trace import TracerProvider

from otel_sentry._internal.instrument import fastapi_native
from otel_sentry._internal.instrument.arq_jobs import instrument_arq
from otel_sentry._internal.instrument.celery_tasks import instrument_celery
from otel_sentry._internal.instrument.db import DATABASE_INSTRUMENTATIONS, query_tracer_provider
from otel_sentry._internal.instrument.django_setup import when_settings_known
from otel_sentry._internal.instrument.outgoing import httpx_hooks
from otel_sentry._internal.instrument.rq_jobs import instrument_rq
from otel_sentry._internal.instrument.sampling_carrier import patch_loaded
from otel_sentry._internal.instrument.web import MESSAGE_SPANS, starlette_without_message_spans

__all__ = ["Instrumentation", "discover", "enable", "use_fastapi_native"]

_log = logging.getLogger("otel_sentry")

# Options we pass to particular instrumentors. The ASGI layer's per-message "http send" and
# "http receive" spans say nothing a trace reader needs, and cost as much as the request span.
_OPTIONS: dict[str, dict[str, Any]] = {
    "fastapi": {"exclude_spans": MESSAGE_SPANS},
    # Record where each request goes, so the propagator can keep trace headers from third parties.
    "httpx": httpx_hooks(),
    "httpx2": httpx_hooks(),  # the client under the openai and anthropic SDKs
}

# What we add on top of an instrumentor, called right after it is enabled: the contrib Celery
# instrumentation records no messaging.system, destination, retry count or receive latency; the
# Starlette one takes no option to leave out the ASGI message spans (instrument/web.py).
_EXTENSIONS: dict[str, Callable[[TracerProvider], object]] = {
    "celery": instrument_celery,
    "starlette": lambda _provider: starlette_without_message_spans(),
}

# Names `instrument` accepts for libraries traced by our own code (instrument/llm_clients.py), not
# by an entry point.
_OWN_INSTRUMENTATIONS = frozenset({"openai", "anthropic", "arq", "rq"})

# Job queues without an official instrumentation (opentelemetry-python-contrib has none for
# arq or RQ): our own, enabled like an entry point's when the library is installed.
_OWN_JOB_QUEUES: dict[str, Callable[[TracerProvider], bool]] = {
    "arq": instrument_arq,
    "rq": instrument_rq,
}

# Instrumentors this module enabled (not the user, nor the launcher before init()).
_by_us: dict[str, bool] = {}

# Instrumentors whose spans duplicate or contradict what another one already gives us.
_SKIP_BY_DEFAULT = frozenset({"asgi", "wsgi", "dbapi", "logging", "system_metrics", "threading"})


@dataclass(frozen=True, slots=True)
class Instrumentation:
    name: str
    distribution: str | None
    conflict: str | None  # why it can't be used here (library missing, wrong version), else None
    disabled_by: str | None  # the setting that turned it off, else None

    @property
    def usable(self) -> bool:
        return self.conflict is None and self.disabled_by is None


def _conflict(ep: EntryPoint) -> str | None:
    try:
        from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts
    except ImportError:  # opentelemetry-instrumentation not installed: no instrumentors either
        return "opentelemetry-instrumentation is not installed"
    dist = ep.dist
    if dist is None:
        return None
    conflict = get_dist_dependency_conflicts(dist)
    return None if conflict is None else str(conflict)


def _library_conflict(instrumentor: Any) -> str | None:
    # One distribution can ship several instrumentors (httpx and httpx2): its dependency check
    # passes while one of them has no library to instrument.
    from opentelemetry.instrumentation.dependencies import get_dependency_conflicts

    conflict = get_dependency_conflicts(instrumentor.instrumentation_dependencies())
    return None if conflict is None else str(conflict)


def discover(
    wanted: bool | tuple[str, ...] = True, environ: dict[str, str] | None = None
) -> list[Instrumentation]:
    """Every installed instrumentor, with whether (and why not) it would be enabled."""
    env = os.environ if environ is None else environ
    excluded = {x.strip() for x in env.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",")}
    out: list[Instrumentation] = []
    for ep in sorted(entry_points(group="opentelemetry_instrumentor"), key=lambda e: e.name):
        disabled_by: str | None = None
        if wanted is False:
            disabled_by = "instrument=false"
        elif "*" in excluded or ep.name in excluded:
            disabled_by = "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
        elif isinstance(wanted, tuple) and ep.name not in wanted:
            disabled_by = "instrument (not listed)"
        elif wanted is True and ep.name in _SKIP_BY_DEFAULT:
            disabled_by = "off by default (name it in instrument= to enable)"
        dist = ep.dist.name if ep.dist is not None else None
        conflict = _conflict(ep)
        if conflict is None:
            try:
                conflict = _library_conflict(ep.load()())
            except Exception as exc:  # a broken instrumentation package: report, don't fail
                conflict = f"cannot load: {exc}"
        out.append(Instrumentation(ep.name, dist, conflict, disabled_by))
    return out


def enable(
    tracer_provider: TracerProvider,
    wanted: bool | tuple[str, ...] = True,
    **kwargs: Any,
) -> list[str]:
    """Instrument every usable library; returns the names enabled. Never raises for one library."""
    by_name = {ep.name: ep for ep in entry_points(group="opentelemetry_instrumentor")}
    if isinstance(wanted, tuple):
        unknown = sorted(set(wanted) - set(by_name) - _OWN_INSTRUMENTATIONS)
        if unknown:
            _log.warning(
                "otel-sentry: no installed instrumentation named %s (installed: %s); "
                "install opentelemetry-instrumentation-<name> or fix `instrument`",
                ", ".join(unknown),
                ", ".join(sorted(by_name)) or "none",
            )
    enabled: list[str] = []
    for info in discover(wanted):
        if not info.usable:
            continue
        if info.name == "fastapi" and not fastapi_native.use_contrib():
            # The native telemetry records the server spans instead; a contrib instrumentation
            # an earlier init() of this process enabled would make FastAPI step aside.
            if _by_us.pop("fastapi", None) is not None:
                by_name["fastapi"].load()().uninstrument()
            continue
        try:
            instrumentor = by_name[info.name].load()()
            if not instrumentor.is_instrumented_by_opentelemetry:
                _by_us[info.name] = True
                options = {**_OPTIONS.get(info.name, {}), **kwargs}
                provider = tracer_provider
                if info.name in DATABASE_INSTRUMENTATIONS:
                    # Statements without literals, one span per query: see instrument/db.py.
                    provider = query_tracer_provider(tracer_provider)
                if info.name == "django":  # not before the project's settings are known
                    when_settings_known(
                        info.name,
                        functools.partial(
                            instrumentor.instrument, tracer_provider=provider, **options
                        ),
                    )
                else:
                    instrumentor.instrument(tracer_provider=provider, **options)
            extend = _EXTENSIONS.get(info.name)
            if extend is not None:
                extend(tracer_provider)
            enabled.append(info.name)
        except Exception:  # one broken instrumentation must not stop the app from starting
            _log.exception("otel-sentry: instrumenting %s failed; continuing without it", info.name)
    enabled += _enable_job_queues(tracer_provider, wanted)
    # The server instrumentations just loaded show their request to a sampler that asked for it.
    patch_loaded()
    return enabled


def use_fastapi_native(wanted: bool | tuple[str, ...]) -> bool:
    """Set FastAPI's own telemetry up as ``wanted`` says; whether it traces the requests.

    Called once per ``init()``. FastAPI's telemetry traces every app as soon as a provider is
    set, so it is told whether FastAPI is wanted (``instrument``,
    ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``) even when the contrib instrumentation or nothing
    records the spans (instrument/fastapi_native.py).
    """
    if not fastapi_native.native():
        return False
    excluded = {
        x.strip() for x in os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",")
    }
    wanted_fastapi = not (wanted is False or "*" in excluded or "fastapi" in excluded) and (
        wanted is True or "fastapi" in wanted
    )
    tracing = wanted_fastapi and not fastapi_native.use_contrib()
    fastapi_native.use_native(tracing=tracing)
    return tracing


def _enable_job_queues(provider: TracerProvider, wanted: bool | tuple[str, ...]) -> list[str]:
    excluded = {
        x.strip() for x in os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",")
    }
    enabled: list[str] = []
    for name, instrument in _OWN_JOB_QUEUES.items():
        if wanted is False or (isinstance(wanted, tuple) and name not in wanted):
            continue
        if "*" in excluded or name in excluded:
            continue
        try:
            if instrument(provider):  # False: the library is not installed
                enabled.append(name)
        except Exception:
            _log.exception("otel-sentry: instrumenting %s failed; continuing without it", name)
    return enabled
