"""Fixtures for the whole suite: a real inbox, and a clean otel-sentry state around each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sentry_sdk

import otel_sentry
from otel_sentry.inbox import Inbox
from tests.support.servers import PostgresServer, RedisServer


@pytest.fixture(autouse=True)
def exit_spool_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A cache directory of each test's own, inherited by the processes it starts.

    What a process could not deliver is written there at exit and sent by the next start with
    the same DSN (sentry/exit_spool.py); shared, one test's leftovers would reach another's
    inbox on a reused port, and the suite would write into the user's own ~/.cache.
    """
    home = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with Inbox(port=0) as running:
        yield running


@pytest.fixture
def fresh() -> Iterator[None]:
    """No init() active before or after the test: tests that call init() own the process.

    The main thread's Sentry scopes outlive a client, so breadcrumbs of earlier tests are
    cleared too: each test's events carry only its own.
    """
    otel_sentry.shutdown()
    _clear_breadcrumbs()
    yield
    otel_sentry.shutdown()
    _clear_breadcrumbs()


def _clear_breadcrumbs() -> None:
    for scope in (
        sentry_sdk.get_global_scope(),
        sentry_sdk.get_isolation_scope(),
        sentry_sdk.get_current_scope(),
    ):
        scope.clear_breadcrumbs()
        # A trace an earlier test continued (its DSC frozen under that test's DSN) is not ours.
        scope.set_new_propagation_context()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on a free port of 127.0.0.1, for one test."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL for the session; ``.url`` is
    ``postgresql://postgres@127.0.0.1:<port>/postgres``."""
    with PostgresServer() as server:
        yield server
