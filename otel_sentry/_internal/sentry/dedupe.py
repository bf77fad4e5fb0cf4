"""Do not build an error event sentry_sdk would drop as a duplicate.

An unhandled exception in an ASGI app is captured twice: once where it is caught (our
middleware, sentry_sdk's framework integrations, Celery's task failure) and once more when the
server logs it (uvicorn's "Exception in ASGI application", with ``exc_info``), which sentry_sdk's
``LoggingIntegration`` turns into a second event. Its ``DedupeIntegration`` then drops that
second event, but only after it was built: frames, local variables, serialization, on the
request's thread. That was a third of an error's capture cost (benchmarks/soak.py profile).

:func:`already_captured` asks the same question ``DedupeIntegration`` asks, before the work:
is this exception the last one captured in this context? :func:`install` puts it in front of
the ``LoggingIntegration``'s event handler; ``logs.SentryRouter`` asks it too. The breadcrumb of
the log line is still recorded. ``DedupeIntegration`` keeps its state in a private attribute
(sentry_sdk 2.x); without it, nothing is skipped and sentry_sdk deduplicates as before.
"""

from __future__ import annotations

import logging
import weakref

import sentry_sdk
from sentry_sdk.integrations.dedupe import DedupeIntegration

__all__ = ["SkipCaptured", "already_captured", "install"]


def already_captured(exc: BaseException | None) -> bool:
    """True when ``exc`` is the exception sentry_sdk last captured in this context."""
    if exc is None:
        return False
    integration = sentry_sdk.get_client().get_integration(DedupeIntegration)
    last_seen = getattr(integration, "_last_seen", None)
    if last_seen is None:
        return False
    seen = last_seen.get(None)
    if isinstance(seen, weakref.ref):
        seen = seen()
    return seen is exc


class SkipCaptured(logging.Filter):
    """Lets through every record but one whose exception was just captured."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc_info = record.exc_info
        return not (isinstance(exc_info, tuple) and already_captured(exc_info[1]))


_FILTER = SkipCaptured()


def install() -> None:
    """Put the check in front of the current client's ``LoggingIntegration`` event handler."""
    integration = sentry_sdk.get_client().get_integration("logging")
    handler = getattr(integration, "_handler", None)  # private (2.x): the event handler
    if isinstance(handler, logging.Handler):
        handler.addFilter(_FILTER)  # no-op when already there
