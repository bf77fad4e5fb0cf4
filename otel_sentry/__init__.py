"""otel-sentry: instrument once with OpenTelemetry, land in Sentry as if Sentry's SDK had sent it.

    import otel_sentry
    otel_sentry.init()          # reads SENTRY_DSN, SENTRY_ENVIRONMENT, OTEL_* ...

The public API is what this module exports (``__all__``), plus two public submodules:
``otel_sentry.inbox`` (the local Sentry-compatible ingest for tests and demos) and
``otel_sentry.testing`` (its pytest fixtures). Everything else is private and may change
without notice; ``tests/test_exported_members.py`` pins this list.
"""

from __future__ import annotations

from otel_sentry._internal.celery_worker import init_celery_worker
from otel_sentry._internal.config import ConfigError
from otel_sentry._internal.context import add_breadcrumb, set_context, set_tag, set_user
from otel_sentry._internal.instrument.arq_jobs import instrument_arq
from otel_sentry._internal.instrument.cache import instrument_redis_cache
from otel_sentry._internal.instrument.celery_tasks import instrument_celery
from otel_sentry._internal.instrument.db import instrument_databases
from otel_sentry._internal.instrument.llm import agent_span, llm_span, tool_span
from otel_sentry._internal.instrument.rq_jobs import instrument_rq
from otel_sentry._internal.instrument.web import allow_trace_headers
from otel_sentry._internal.log_config import configure_logging
from otel_sentry._internal.logs import SentryRouter, add_trace_context
from otel_sentry._internal.options import InitOptions
from otel_sentry._internal.scrub import scrub_text, scrub_value
from otel_sentry._internal.sentry.crons import monitor
from otel_sentry._internal.settings import Settings
from otel_sentry._internal.setup import current_settings, flush, init, shutdown
from otel_sentry._version import __version__

__all__ = [
    "ConfigError",
    "InitOptions",
    "SentryRouter",
    "Settings",
    "__version__",
    "add_breadcrumb",
    "add_trace_context",
    "agent_span",
    "allow_trace_headers",
    "configure_logging",
    "current_settings",
    "flush",
    "init",
    "init_celery_worker",
    "instrument_arq",
    "instrument_celery",
    "instrument_databases",
    "instrument_redis_cache",
    "instrument_rq",
    "llm_span",
    "monitor",
    "scrub_text",
    "scrub_value",
    "set_context",
    "set_tag",
    "set_user",
    "shutdown",
    "tool_span",
]
