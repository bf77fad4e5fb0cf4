"""Logging is process-wide: each test gets the root logger and structlog back as it found them."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

from otel_sentry._internal.log_config import FRAMEWORK_LOGGERS


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    frameworks = {
        name: (list(logging.getLogger(name).handlers), logging.getLogger(name).propagate)
        for name in FRAMEWORK_LOGGERS
    }
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, (saved, propagate) in frameworks.items():
        logging.getLogger(name).handlers[:] = saved
        logging.getLogger(name).propagate = propagate
    structlog.reset_defaults()
