"""Fixtures for tests/sentry: a real redis-server for the tests that need one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.servers import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    # A server that cannot start raises ServerError with the fix: a failure, never a skip.
    with RedisServer() as server:
        yield server
