"""otel-sentry: instrument once with OpenTelemetry, land in Sentry as if Sentry's SDK had sent it.

    import otel_sentry
    otel_sentry.init()          # reads SENTRY_DSN, SENTRY_ENVIRONMENT, OTEL_* ...

Everything else in the package is private unless re-exported here.
"""

from __future__ import annotations

from otel_sentry._version import __version__
from otel_sentry.config import ConfigError, Settings
from otel_sentry.context import add_breadcrumb, set_context, set_tag, set_user
from otel_sentry.log_config import configure_logging
from otel_sentry.setup import current_settings, flush, init, shutdown

__all__ = [
    "ConfigError",
    "Settings",
    "__version__",
    "add_breadcrumb",
    "configure_logging",
    "current_settings",
    "flush",
    "init",
    "set_context",
    "set_tag",
    "set_user",
    "shutdown",
]
