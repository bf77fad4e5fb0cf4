"""Sentry DSNs: where envelopes go, the key that authorizes them, and how to print one safely.

>>> parse_dsn("https://k3y@o12.ingest.sentry.io/34").envelope_url
'https://o12.ingest.sentry.io/api/34/envelope/'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

__all__ = ["DsnParts", "parse_dsn", "redact_url"]


@dataclass(frozen=True, slots=True)
class DsnParts:
    """A parsed Sentry DSN: where envelopes go and the key that authorizes them."""

    scheme: str
    public_key: str
    host: str
    port: int | None
    path: str
    project_id: str
    org_id: str | None

    @property
    def origin(self) -> str:
        netloc = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"{self.scheme}://{netloc}"

    @property
    def envelope_url(self) -> str:
        return f"{self.origin}{self.path}api/{self.project_id}/envelope/"

    @property
    def otlp_traces_url(self) -> str:
        return f"{self.origin}{self.path}api/{self.project_id}/integration/otlp/v1/traces"


def parse_dsn(value: str) -> DsnParts:
    """Parse ``{scheme}://{public_key}@{host}[:port]/{path/}{project_id}``; ValueError says why."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https"):
        raise ValueError("it must start with https:// (or http:// for a local ingest)")
    if not parts.hostname:
        raise ValueError("it has no host")
    if not parts.username:
        raise ValueError("it has no public key before the '@'")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError("its port is not a number") from exc
    head, _, project = parts.path.rstrip("/").rpartition("/")
    if not project.isdigit():
        raise ValueError("it does not end with a numeric project id (…/12345)")
    org = parts.hostname.split(".", 1)[0]
    org_id = org[1:] if org.startswith("o") and org[1:].isdigit() else None
    return DsnParts(
        scheme=parts.scheme,
        public_key=unquote(parts.username),
        host=parts.hostname,
        port=port,
        path=head + "/",
        project_id=project,
        org_id=org_id,
    )


def redact_url(value: str) -> str:
    """Hide the credentials of a URL or DSN (``https://***@host/1``), keep the rest readable."""
    return re.sub(r"//[^@/]*@", "//***@", value)
