"""sentry_sdk's exits (``before_send``, ``before_send_transaction``, ``before_breadcrumb``,
``before_send_log``) wired to the one scrubber and the noise filters.

Order, for each exit: noise filter, then the user's own hook, then the scrubber. The user's hook
sees the data as captured (it runs in-process, and may add fields); whatever leaves the process
has been scrubbed last, so nothing a hook adds can bypass it. Opting a field out of scrubbing is
done with ``scrub_allow_keys``, not by a hook.

sentry_sdk's own ``EventScrubber`` is replaced by a no-op: two scrubbers with different lists
would make ``scrub_allow_keys`` a lie, and ours already covers its denylist.

    >>> hooks = SentryHooks(Scrubber(), NoiseFilter(()))   # doctest: +SKIP
    >>> sentry_sdk.init(before_send=hooks.before_send, ...)   # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sentry_sdk.scrubber import EventScrubber

from otel_sentry._internal.scrub import FILTERED, Scrubber
from otel_sentry._internal.sentry.noise import NoiseFilter

__all__ = [
    "SECRET_VALUES_HINT",
    "Hook",
    "NoEventScrubber",
    "SentryHooks",
    "redact_values",
    "scrub_event",
]

_log = logging.getLogger("otel_sentry")

Hook = Callable[[Any, Any], Any]

SECRET_VALUES_HINT = "otel_sentry_secret_values"
"""Event hint key: strings known to be secrets (a failed task's secret arguments, see
``sentry/celery_tasks.py``), replaced by ``[Filtered]`` wherever they appear in that event. Key
rules miss a secret that travels without its name: a positional task argument sits in Celery's own
frames as a bare list item (``args``) and inside the request's repr (``argsrepr``)."""

# Shorter strings are too likely to occur by chance (a "1" pin would blank every "1").
_MIN_SECRET_VALUE = 6


def redact_values(value: Any, secrets: tuple[str, ...]) -> Any:
    """``value`` with every occurrence of each secret string replaced; copies only what changed."""
    if isinstance(value, str):
        out = value
        for secret in secrets:
            if secret in out:
                out = out.replace(secret, FILTERED)
        return out
    if isinstance(value, dict):
        changed = {k: redact_values(v, secrets) for k, v in value.items()}
        return value if all(changed[k] is value[k] for k in value) else changed
    if isinstance(value, list):
        items = [redact_values(v, secrets) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def _secret_values(hint: Any) -> tuple[str, ...]:
    found = hint.get(SECRET_VALUES_HINT) if isinstance(hint, dict) else None
    if not found:
        return ()
    return tuple(
        sorted(
            {v for v in found if isinstance(v, str) and len(v) >= _MIN_SECRET_VALUE},
            key=len,
            reverse=True,  # a secret containing another is replaced whole
        )
    )


class NoEventScrubber(EventScrubber):
    """sentry_sdk's scrubber, switched off: ``otel_sentry._internal.scrub`` is the only one."""

    def scrub_event(self, event: Any) -> None:
        return None


def scrub_event(scrubber: Scrubber, event: dict[str, Any]) -> dict[str, Any]:
    """An event or transaction as it may leave the process."""
    if not scrubber.send_default_pii:
        request = event.get("request")
        if isinstance(request, dict) and request.get("data") not in (None, "", FILTERED):
            # Request bodies are personal data in Sentry's sense: only with send_default_pii.
            request = dict(request)
            request["data"] = FILTERED
            event = {**event, "request": request}
    scrubbed: dict[str, Any] = scrubber.scrub_value(event)
    return scrubbed


class SentryHooks:
    """The callables handed to ``sentry_sdk.init``; each chains noise, the user's hook, scrub."""

    def __init__(
        self,
        scrubber: Scrubber,
        noise: NoiseFilter,
        *,
        before_send: Hook | None = None,
        before_send_transaction: Hook | None = None,
        before_breadcrumb: Hook | None = None,
        before_send_log: Hook | None = None,
    ) -> None:
        self.scrubber = scrubber
        self.noise = noise
        self._before_send = before_send
        self._before_send_transaction = before_send_transaction
        self._before_breadcrumb = before_breadcrumb
        self._before_send_log = before_send_log

    def before_send(self, event: Any, hint: Any) -> Any:
        if self.noise.drops_event(event, hint):
            return None
        if self._before_send is not None:
            event = self._before_send(event, hint)
            if event is None:
                return None
        scrubbed = scrub_event(self.scrubber, event)
        secrets = _secret_values(hint)
        return redact_values(scrubbed, secrets) if secrets else scrubbed

    def before_send_transaction(self, event: Any, hint: Any) -> Any:
        if self.noise.drops_transaction(event) is not None:
            return None
        if self._before_send_transaction is not None:
            event = self._before_send_transaction(event, hint)
            if event is None:
                return None
        return scrub_event(self.scrubber, event)

    def before_breadcrumb(self, crumb: Any, hint: Any) -> Any:
        # Not scrubbed here: a breadcrumb only leaves the process inside an event, and
        # before_send scrubs the whole event, breadcrumbs included. Scrubbing each one as it is
        # recorded cost every INFO log line ~30 us on the request thread, for crumbs that are
        # mostly never sent.
        if self._before_breadcrumb is not None:
            return self._before_breadcrumb(crumb, hint)
        return crumb

    def before_send_log(self, log: Any, hint: Any) -> Any:
        if self._before_send_log is not None:
            log = self._before_send_log(log, hint)
            if log is None:
                return None
        return self.scrubber.scrub_value(log)
