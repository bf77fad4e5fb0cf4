"""One POST on its way to Sentry, and its answer: what the connection codecs and the pool share.

A :class:`Request` carries its completion callback; the pool calls it exactly once, on the I/O
thread, with a :class:`Response` or the error that ended it. ``attempts`` counts the times it
went out on a connection that then failed under it (a server closing a kept-alive connection,
GOAWAY): the pool sends it again on a new connection a few times before giving up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Answer", "ConnectionLostError", "Headers", "Request", "Response"]


class Headers(dict[str, str]):
    """Response headers with lower-case names, looked up case-insensitively as sentry_sdk does."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


class Response:
    __slots__ = ("data", "headers", "status")

    def __init__(self, status: int, headers: Headers, data: bytes) -> None:
        self.status = status
        self.headers = headers
        self.data = data

    def close(self) -> None:  # sentry_sdk calls it on urllib3 responses
        return None


Answer = Callable[["Response | None", "BaseException | None"], None]


class Request:
    __slots__ = (
        "attempts",
        "body",
        "context",
        "deadline",
        "done",
        "headers",
        "refused",
        "target",
    )

    def __init__(
        self,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        done: Answer,
        context: object = None,
    ) -> None:
        self.target = target
        self.context = context  # the caller's own: what to keep if the request is handed back
        self.headers = headers
        self.body = body
        self.done = done
        self.attempts = 0
        self.refused = 0  # times a server said it had not processed it (GOAWAY, REFUSED_STREAM)
        self.deadline = 0.0  # set when it goes out on a connection


class ConnectionLostError(ConnectionError):
    """The connection ended with this request unanswered."""
