"""Noise that fills a Sentry project without telling anyone anything, dropped by default.

- ``health``: health-check routes (``/health``, ``/healthz``, ``/livez``, ``/readyz``,
  ``/ping``), by sampling rules at span start, so they cost nothing and reach no exporter;
- ``preflight``: CORS preflight ``OPTIONS`` requests, by a sampling rule as well;
- ``not_found``: transactions of server requests answered 404 (scanners, typos);
- ``host_header``: errors about a forged ``Host`` header (Django's ``DisallowedHost``).

Each can be turned off with the ``noise_filters`` option (``OTEL_SENTRY_NOISE_FILTERS``):
``none`` keeps everything, a list keeps only the named filters. sentry_sdk's
``trace_ignore_status_codes`` drops server transactions answered with those codes too.

    >>> NoiseFilter(("not_found",)).drops_transaction(
    ...     {"contexts": {"trace": {"op": "http.server", "data": {"http.status_code": 404}}}})
    'not_found'
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from otel_sentry._internal.parsers import NOISE_FILTERS

__all__ = ["HEALTH_ROUTES", "NOISE_FILTERS", "NoiseFilter"]

HEALTH_ROUTES: tuple[str, ...] = ("/health", "/healthz", "/livez", "/readyz", "/ping")

_HOST_HEADER_ERRORS = frozenset({"DisallowedHost", "DisallowedRedirect", "InvalidHostHeader"})
_HOST_HEADER_LOGGERS = frozenset({"django.security.DisallowedHost"})


class NoiseFilter:
    def __init__(self, enabled: Iterable[str], ignore_status_codes: Iterable[int] = ()) -> None:
        self.enabled = frozenset(enabled)
        # sentry_sdk's trace_ignore_status_codes: server transactions answered with these.
        self.ignore_status_codes = frozenset(ignore_status_codes)

    def sampling_rules(self) -> tuple[tuple[str, float], ...]:
        """Rules appended after the user's own, so ``/health=1`` in ``sampling_rules`` wins."""
        rules: list[tuple[str, float]] = []
        if "health" in self.enabled:
            for route in HEALTH_ROUTES:
                rules += [(route, 0.0), (f"*{route}", 0.0)]
        if "preflight" in self.enabled:
            rules += [("OPTIONS", 0.0), ("OPTIONS *", 0.0)]
        return tuple(rules)

    def drops_transaction(self, event: dict[str, Any]) -> str | None:
        """The filter's name when this transaction is noise, else None."""
        if "not_found" not in self.enabled and not self.ignore_status_codes:
            return None
        trace = (event.get("contexts") or {}).get("trace") or {}
        if trace.get("op") != "http.server":
            return None
        data = trace.get("data") or {}
        code = data.get("http.response.status_code", data.get("http.status_code"))
        if code is None:
            return None
        if "not_found" in self.enabled and code in (404, "404"):
            return "not_found"
        try:
            status = int(code)
        except (TypeError, ValueError):
            return None
        return "trace_ignore_status_codes" if status in self.ignore_status_codes else None

    def drops_event(self, event: dict[str, Any], hint: Any) -> bool:
        if "host_header" not in self.enabled:
            return False
        if event.get("logger") in _HOST_HEADER_LOGGERS:
            return True
        values = (event.get("exception") or {}).get("values") or ()
        return any(v.get("type") in _HOST_HEADER_ERRORS for v in values if isinstance(v, dict))
