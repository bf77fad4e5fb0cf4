"""The URL of the outgoing request whose headers are about to be injected.

Propagators are not told where a request goes, yet whether trace headers may go there (not to an
LLM provider, say) depends on it. The HTTP client instrumentations' request hooks, which run
just before injection in the same context, record the URL here; the propagator reads it.

    with_outgoing_url(str(request.url))   # from a request hook
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

__all__ = ["OUTGOING_URL", "httpx_hooks", "set_outgoing_url"]

OUTGOING_URL: ContextVar[str | None] = ContextVar("otel_sentry_outgoing_url", default=None)


def set_outgoing_url(url: str) -> None:
    OUTGOING_URL.set(url)


def _httpx_request_hook(span: Any, request: Any) -> None:
    set_outgoing_url(str(request.url))


async def _httpx_async_request_hook(span: Any, request: Any) -> None:
    set_outgoing_url(str(request.url))


def httpx_hooks() -> dict[str, Any]:
    """Keyword arguments for ``HTTPXClientInstrumentor().instrument(...)``."""
    return {"request_hook": _httpx_request_hook, "async_request_hook": _httpx_async_request_hook}
