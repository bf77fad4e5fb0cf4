"""The Collector binary, built once per session; a failed build fails the tests that need it."""

from __future__ import annotations

from pathlib import Path

import pytest

from .process import collector_binary


@pytest.fixture(scope="session")
def otelcol() -> Path:
    return collector_binary()
