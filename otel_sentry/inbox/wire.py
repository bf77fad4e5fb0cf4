"""The request and reply values passed between the HTTP handler and the inbox's endpoints.

Endpoints are plain functions from :class:`Request` to :class:`Reply`, which keeps all socket
handling in one place (the handler) and every endpoint testable without one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Reply", "Request", "json_reply"]


@dataclass(frozen=True)
class Request:
    """An HTTP request with its body fully read; header names are lowercased."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


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
