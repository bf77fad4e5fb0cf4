"""Shared fixtures: a real inbox on a free port, and a real sentry_sdk client pointed at it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import sentry_sdk
from sentry_sdk.integrations.stdlib import StdlibIntegration

from otel_sentry.inbox import Inbox


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with Inbox(port=0) as running:
        yield running


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    # One client for the session: building its TLS context costs more than most tests.
    with httpx.Client(timeout=10) as client:
        yield client


def auth_header(key: str) -> dict[str, str]:
    return {
        "X-Sentry-Auth": f"Sentry sentry_version=7, sentry_client=tests/1.0, sentry_key={key}",
        "Content-Type": "application/x-sentry-envelope",
    }


@contextlib.contextmanager
def sentry_client(dsn: str, **options: Any) -> Iterator[sentry_sdk.Client]:
    """A real sentry_sdk client bound to fresh scopes, never to the process-wide init."""
    options.setdefault("traces_sample_rate", 1.0)
    # With a DSN that has a port, sentry_sdk's stdlib integration fails to recognise its own
    # transport requests (is_sentry_url compares host:port to the bare host) and, when its
    # worker thread starts inside a transaction, records a span for them that then gets
    # dropped as buffer_overflow. That is the SDK instrumenting itself, not data under test.
    options.setdefault("disabled_integrations", [StdlibIntegration()])
    client = sentry_sdk.Client(dsn=dsn, **options)
    with sentry_sdk.isolation_scope() as isolation, sentry_sdk.new_scope() as scope:
        isolation.set_client(client)
        scope.set_client(client)
        try:
            yield client
        finally:
            client.flush(5)
    client.close(5)


@pytest.fixture
def send_envelope(inbox: Inbox, http: httpx.Client) -> Callable[..., httpx.Response]:
    """POST raw envelope bytes to the inbox's ingest endpoint with valid auth."""

    def send(
        body: bytes, headers: dict[str, str] | None = None, project_id: int = 1
    ) -> httpx.Response:
        return http.post(
            f"{inbox.url}/api/{project_id}/envelope/",
            content=body,
            headers={**auth_header(inbox.public_key), **(headers or {})},
        )

    return send
