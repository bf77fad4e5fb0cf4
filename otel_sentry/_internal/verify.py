"""The "verify it works" step every Sentry setup guide asks for, as a function.

Sends one error linked to one transaction through the configured pipeline, exactly as an app
would, and reports their ids so they can be looked up in Sentry.

    >>> result = send_test_event()          # doctest: +SKIP
    >>> print(*result.lines(), sep="\\n")   # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import sentry_sdk
from opentelemetry import trace

from otel_sentry._internal.config import redact_url
from otel_sentry._internal.setup import current_settings, flush, init, shutdown

__all__ = ["TestEventResult", "send_test_event"]


class OtelSentryTestError(RuntimeError):
    """Raised on purpose by ``otel-sentry test-event`` so that it shows up as an issue."""


@dataclass(frozen=True, slots=True)
class TestEventResult:
    ok: bool
    destination: str
    event_id: str | None
    trace_id: str
    span_id: str
    flushed: bool

    def lines(self) -> list[str]:
        if not self.event_id:
            return [f"✗ nothing was sent: {self.destination}"]
        return [
            f"sent to   {self.destination}",
            f"error     {self.event_id}  (OtelSentryTestError)",
            f"trace     {self.trace_id}",
            f"span      {self.span_id}  (transaction 'otel-sentry test-event')",
            "✓ flushed: look for OtelSentryTestError in Sentry's Issues"
            if self.flushed
            else "✗ not flushed within the timeout",
        ]


def send_test_event(timeout: float = 5.0) -> TestEventResult:
    """Init from the environment (unless already done), send, flush, and shut down what we began."""
    owned = current_settings() is None
    settings = init(instrument=False) if owned else current_settings()
    assert settings is not None
    destination = (
        redact_url(settings.dsn)
        if settings.sends_to_sentry and settings.dsn
        else ("SENTRY_ENABLED=false" if not settings.enabled else "no SENTRY_DSN set")
    )
    tracer = trace.get_tracer("otel_sentry.verify")
    event_id: str | None = None
    with tracer.start_as_current_span(
        "otel-sentry test-event", attributes={"sentry.op": "test"}
    ) as span:
        try:
            raise OtelSentryTestError("otel-sentry test-event: if you see this, errors arrive")
        except OtelSentryTestError as exc:
            if settings.sends_to_sentry:
                event_id = sentry_sdk.capture_exception(exc)
        ctx = span.get_span_context()
    flushed = flush(timeout) if event_id else False
    if owned:
        shutdown(timeout)
    return TestEventResult(
        ok=bool(event_id) and flushed,
        destination=destination,
        event_id=event_id,
        trace_id=f"{ctx.trace_id:032x}",
        span_id=f"{ctx.span_id:016x}",
        flushed=flushed,
    )
