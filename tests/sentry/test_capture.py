"""An error's capture: source lines added off the request thread, scrubbed; duplicates not built.

Against a real inbox over HTTP, with the client init() sets up (our transport, sentry_sdk's
default integrations, LoggingIntegration included).
"""

from __future__ import annotations

import io
import json
import logging
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk

import otel_sentry
from otel_sentry.inbox import Inbox

pytestmark = pytest.mark.usefixtures("fresh")


@pytest.fixture
def payments(tmp_path: Path) -> Iterator[Any]:
    """A module of the app, on disk, with a secret written into its code."""
    (tmp_path / "payments_fixture.py").write_text(
        textwrap.dedent(
            '''\
            """Payments."""


            def pay(amount: int) -> None:
                note = "paying"
                api_key = "sk-live-CANARYa1b2c3d4e5f6g7h8i9j0"
                password = "hunter2-CANARY-pw"
                raise RuntimeError(f"declined {amount}: {note}")
            '''
        )
    )
    sys.path.insert(0, str(tmp_path))
    try:
        import payments_fixture

        yield payments_fixture
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("payments_fixture", None)


def _raw(inbox: Inbox) -> str:
    parts: list[bytes] = []
    for received in inbox.envelopes:
        parts += [item.payload for item in received.envelope.items]
    return b"\n".join(parts).decode("utf-8", "replace")


def _one_event(inbox: Inbox) -> dict[str, Any]:
    inbox.wait_for_items("event", 1, timeout=10)
    otel_sentry.flush(5)
    [event] = inbox.events()
    return event


def test_source_lines_arrive_with_the_event_and_are_scrubbed(inbox: Inbox, payments: Any) -> None:
    seen_by_hook: list[dict[str, Any]] = []

    def before_send(event: Any, hint: Any) -> Any:
        seen_by_hook.append(json.loads(json.dumps(event, default=str)))
        return event

    otel_sentry.init(dsn=inbox.dsn(), instrument=False, before_send=before_send)
    try:
        payments.pay(3)
    except RuntimeError as exc:
        sentry_sdk.capture_exception(exc)
    event = _one_event(inbox)
    frame = event["exception"]["values"][0]["stacktrace"]["frames"][-1]
    assert frame["function"] == "pay"
    assert frame["context_line"] == '    raise RuntimeError(f"declined {amount}: {note}")'
    assert frame["pre_context"][:3] == ["", "def pay(amount: int) -> None:", '    note = "paying"']
    code = "\n".join(frame["pre_context"])
    assert "[Filtered]" in code and "api_key" in code and "password" in code
    assert frame["post_context"] == []  # the raise is the module's last line
    # The caller's frame (this test) has its lines too.
    caller = event["exception"]["values"][0]["stacktrace"]["frames"][-2]
    assert caller["context_line"].strip() == "payments.pay(3)"
    assert "CANARY" not in _raw(inbox)
    # The request thread did not read them: the user's hook saw the frame without them.
    [hooked] = seen_by_hook
    assert "context_line" not in hooked["exception"]["values"][0]["stacktrace"]["frames"][-1]
    assert inbox.problems == []


def test_a_custom_transport_keeps_sentry_sdks_own_source_lines(payments: Any) -> None:
    captured: list[dict[str, Any]] = []

    class Keep(sentry_sdk.transport.Transport):
        def capture_envelope(self, envelope: Any) -> None:
            captured.extend(i.payload.json for i in envelope.items if i.type == "event")

    otel_sentry.init(dsn="http://key@127.0.0.1:9/1", instrument=False, transport=Keep)
    try:
        payments.pay(4)
    except RuntimeError as exc:
        sentry_sdk.capture_exception(exc)
    [event] = captured
    frame = event["exception"]["values"][0]["stacktrace"]["frames"][-1]
    assert frame["context_line"].strip().startswith("raise RuntimeError")


def _charge(amount: int) -> None:
    raise ValueError(f"amount {amount} is negative")


@pytest.mark.parametrize("through", ["stdlib", "structlog"])
def test_an_exception_logged_after_it_was_captured_is_not_built_twice(
    inbox: Inbox, through: str
) -> None:
    import structlog

    from otel_sentry._internal.logs import SentryRouter

    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    router_log = structlog.wrap_logger(
        structlog.PrintLogger(io.StringIO()),
        processors=[
            structlog.processors.add_log_level,
            SentryRouter(),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )

    def log_exception(message: str) -> None:
        if through == "stdlib":
            logging.getLogger("billing").exception(message)
        else:
            router_log.exception(message)

    with sentry_sdk.isolation_scope():
        try:
            _charge(-5)
        except ValueError as exc:
            sentry_sdk.capture_exception(exc)  # as a framework integration would
            log_exception("charge failed")  # as the server then logs it
        try:
            _charge(-6)
        except ValueError:
            log_exception("charge failed again")  # not captured before: an event
    inbox.wait_for_items("event", 2, timeout=10)
    otel_sentry.shutdown()  # sends the client reports
    values = sorted(e["exception"]["values"][-1]["value"] for e in inbox.events())
    assert values == ["amount -5 is negative", "amount -6 is negative"]
    # sentry_sdk's DedupeIntegration would have built the duplicate and dropped it
    # (event_processor); it was never built.
    assert ("event_processor", "error") not in dict(inbox.counts.discarded)
    assert inbox.problems == []
