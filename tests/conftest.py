"""Fixtures for the whole suite: a real inbox, and a clean otel-sentry state around each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import otel_sentry
from otel_sentry.inbox import Inbox


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with Inbox(port=0) as running:
        yield running


@pytest.fixture
def fresh() -> Iterator[None]:
    """No init() active before or after the test: tests that call init() own the process."""
    otel_sentry.shutdown()
    yield
    otel_sentry.shutdown()
