"""The public API, pinned (after httpx's tests/test_exported_members.py).

What ``import otel_sentry`` offers is ``otel_sentry.__all__``; the README teaches nothing else
but the two public submodules. A name added to or dropped from the API shows up here first.
"""

from __future__ import annotations

from pathlib import Path

import otel_sentry

PUBLIC = [
    "ConfigError",
    "InitOptions",
    "SentryRouter",
    "Settings",
    "__version__",
    "add_breadcrumb",
    "add_trace_context",
    "agent_span",
    "allow_trace_headers",
    "configure_logging",
    "current_settings",
    "flush",
    "init",
    "init_celery_worker",
    "instrument_arq",
    "instrument_celery",
    "instrument_databases",
    "instrument_redis_cache",
    "instrument_rq",
    "llm_span",
    "monitor",
    "scrub_text",
    "scrub_value",
    "set_context",
    "set_tag",
    "set_user",
    "shutdown",
    "tool_span",
]


def test_the_public_names_are_pinned() -> None:
    assert otel_sentry.__all__ == PUBLIC
    for name in PUBLIC:
        assert getattr(otel_sentry, name) is not None, name


def test_everything_else_is_marked_private() -> None:
    package = Path(otel_sentry.__file__).parent
    public = sorted(
        p.name
        for p in package.iterdir()
        if not p.name.startswith("_") and p.name != "py.typed" and p.suffix in ("", ".py")
    )
    # collector/ holds data (the Collector configs `otel-sentry collector` ships), no code.
    assert public == ["collector", "inbox", "testing.py"]
    assert not list((package / "collector").glob("*.py"))


def test_the_public_submodules_import() -> None:
    from otel_sentry.inbox import Fault, Inbox
    from otel_sentry.testing import otel_sentry_capture

    assert Inbox and Fault and otel_sentry_capture
