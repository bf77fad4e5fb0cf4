"""Entry points for ``opentelemetry-instrument``: the same setup as ``otel_sentry.init()``, no code.

``opentelemetry-instrument <command>`` loads one distro, then one configurator, then calls the
distro for every installed instrumentor. Ours:

- :class:`SentryDistro` (``opentelemetry_distro: sentry``) makes our configurator the one that
  runs, and enables instrumentors the way ``init()`` does: with our options (FastAPI without
  per-message spans, httpx hooks for the propagation targets), skipping the ones ``init()``
  skips, and never instrumenting a library twice.
- :class:`SentryConfigurator` (``opentelemetry_configurator: sentry``) calls ``init()`` with no
  arguments, so everything comes from the environment (``SENTRY_*``, ``OTEL_*``). An app that
  also calls a bare ``init()`` joins that setup.

For someone else's OpenTelemetry SDK setup, piece by piece:

- ``OTEL_TRACES_SAMPLER=sentry``: :func:`sentry_sampler`, Sentry's sampling rules from the
  environment (``OTEL_TRACES_SAMPLER_ARG`` overrides the rate);
- ``OTEL_TRACES_EXPORTER=sentry``:
  ``otel_sentry._internal.sentry.span_exporter.SentrySpanExporter``, spans -> Sentry transactions,
  under the SDK's ``BatchSpanProcessor``;
- ``OTEL_PROPAGATORS=otel_sentry``: the propagator (``otel_sentry._internal.sentry.propagator``);
  not ``sentry``, the name sentry-sdk registers for its own.

    SENTRY_DSN=https://key@o1.ingest.sentry.io/2 opentelemetry-instrument uvicorn app:app
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.sdk._configuration import _BaseConfigurator
from opentelemetry.util._importlib_metadata import EntryPoint

from otel_sentry._internal.config import ConfigError, resolve
from otel_sentry._internal.instrument import registry
from otel_sentry._internal.parsers import parse_rate
from otel_sentry._internal.sentry.sampler import SentrySampler

__all__ = ["SentryConfigurator", "SentryDistro", "sentry_sampler"]

_log = logging.getLogger("otel_sentry")


class SentryDistro(BaseDistro):  # type: ignore[misc]  # the base class is untyped
    """Chooses our configurator and enables instrumentors with ``init()``'s options."""

    def __init__(self) -> None:
        self._usable: frozenset[str] | None = None

    def _configure(self, **kwargs: Any) -> None:
        # With opentelemetry-distro also installed, the launcher would run whichever
        # configurator it finds first; the distro runs before it looks, so we name ours.
        os.environ.setdefault("OTEL_PYTHON_CONFIGURATOR", "sentry")

    def load_instrumentor(self, entry_point: EntryPoint, **kwargs: Any) -> None:
        from opentelemetry import trace

        if self._usable is None:
            try:
                wanted = resolve({}).instrument
            except ConfigError:  # the configurator stops the start first; a default to be safe
                wanted = True
            self._usable = frozenset(i.name for i in registry.discover(wanted) if i.usable)
        if entry_point.name not in self._usable:
            return  # off by default, not listed in OTEL_SENTRY_INSTRUMENT, or no library
        # registry.enable skips what init() already instrumented and adds our options.
        registry.enable(trace.get_tracer_provider(), (entry_point.name,))


class SentryConfigurator(_BaseConfigurator):
    """``init()`` from the environment, before the application is imported."""

    def _configure(self, **kwargs: Any) -> None:
        from otel_sentry._internal.setup import init

        try:
            init()
        except ConfigError as exc:
            # The launcher would log two tracebacks and start the app unmonitored, which goes
            # unnoticed for weeks. A bad setting stops the start instead, as init() in code
            # does, with one line that names the setting and the fix.
            sys.stderr.write(f"otel-sentry: {exc}\n")
            sys.stderr.flush()
            os._exit(2)  # before the app is imported: nothing of it to clean up


def sentry_sampler(arg: str | float | None = None) -> SentrySampler:
    """``OTEL_TRACES_SAMPLER=sentry``: Sentry's rules, rate from the environment or the arg."""
    settings = resolve({})
    rate = settings.traces_sample_rate
    if arg is not None and str(arg).strip():
        try:
            rate = parse_rate(str(arg))
        except ValueError as exc:
            raise ConfigError(
                f"OTEL_TRACES_SAMPLER_ARG={arg!r} is not usable: {exc}. "
                "Fix: set it to a rate in [0, 1], or unset it to use SENTRY_TRACES_SAMPLE_RATE."
            ) from exc
    return SentrySampler(rate=rate, rules=settings.sampling_rules)
