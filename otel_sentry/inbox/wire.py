"""The request and reply values passed between the HTTP handler and the inbox's endpoints.

Endpoints are plain functions from :class:`Request` to :class:`Reply`, which keeps all socket
handling in one place (the handler) and every endpoint testable without one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["Reply", "Request", "json_reply"]


@dataclass(frozen=True)
class Request:
    """An HTTP request with its body fully read; header names are lowercased."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    http_version: str = "HTTP/1.1"

    @classmethod
    def build(
        cls,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        http_version: str = "HTTP/1.1",
    ) -> Request:
        """A request from its method, request target (path and query) and header pairs."""
        url = urlsplit(target)
        return cls(
            method=method,
            path=url.path,
            query=dict(parse_qsl(url.query)),
            headers={name.lower(): value for name, value in headers},
            body=body,
            http_version=http_version,
        )


@dataclass(frozen=True)
class Reply:
    """What to answer; ``refuse`` closes the connection without answering at all."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    refuse: bool = False


def json_reply(status: int, value: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status=status, body=json.dumps(value).encode(), headers=headers or {})
