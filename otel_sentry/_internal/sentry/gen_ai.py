"""GenAI spans the way Sentry's AI insights read them, and one breadcrumb per model call.

The OpenTelemetry conventions and sentry_sdk's own AI integrations name a few things
differently; Sentry's AI views and its cost calculation read sentry_sdk's names. On export we
add those names beside the conventional ones (never instead of them):

    gen_ai.usage.cache_read.input_tokens   -> gen_ai.usage.input_tokens.cached
    gen_ai.usage.reasoning.output_tokens   -> gen_ai.usage.output_tokens.reasoning
    gen_ai.response.time_to_first_chunk    -> gen_ai.response.time_to_first_token
    gen_ai.request.stream                  -> gen_ai.response.streaming
    gen_ai.provider.name                   -> gen_ai.system
    input + output tokens                  -> gen_ai.usage.total_tokens

``GenAiBreadcrumbs`` adds a breadcrumb to the current Sentry scope when a GenAI span ends, on
the thread that ended it, so an error raised later in the request lists the model calls that
came before it (and the failed one) as the steps that led there.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import sentry_sdk
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode

__all__ = ["GenAiBreadcrumbs", "add_sentry_gen_ai_data"]

_ALIASES = (
    ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.input_tokens.cached"),
    ("gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.input_tokens.cache_write"),
    # The Anthropic SDK's name for cache writes.
    ("gen_ai.usage.cache_write.input_tokens", "gen_ai.usage.input_tokens.cache_write"),
    ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.output_tokens.reasoning"),
    ("gen_ai.response.time_to_first_chunk", "gen_ai.response.time_to_first_token"),
    ("gen_ai.request.stream", "gen_ai.response.streaming"),
    ("gen_ai.provider.name", "gen_ai.system"),
    # The Anthropic SDK records its stop reason under its own name.
    ("anthropic.message.stop_reason", "gen_ai.response.finish_reasons"),
)
_BREADCRUMB_DATA = (
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.tool.name",
    "gen_ai.agent.name",
    "error.type",
)


def add_sentry_gen_ai_data(data: MutableMapping[str, Any]) -> None:
    """Add sentry_sdk's names for a GenAI span's data, in place (see the module docstring)."""
    for source, alias in _ALIASES:
        if source in data and alias not in data:
            value = data[source]
            data[alias] = [value] if alias.endswith("finish_reasons") else value
    tokens_in = data.get("gen_ai.usage.input_tokens")
    tokens_out = data.get("gen_ai.usage.output_tokens")
    if (
        "gen_ai.usage.total_tokens" not in data
        and isinstance(tokens_in, int)
        and isinstance(tokens_out, int)
    ):
        data["gen_ai.usage.total_tokens"] = tokens_in + tokens_out


class GenAiBreadcrumbs(SpanProcessor):
    """One ``gen_ai`` breadcrumb per finished GenAI span, on the scope of the code that ended it."""

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        return

    def on_end(self, span: ReadableSpan) -> None:
        attrs = span.attributes
        if not attrs or "gen_ai.operation.name" not in attrs:
            return
        failed = span.status.status_code is StatusCode.ERROR
        data: dict[str, Any] = {k: attrs[k] for k in _BREADCRUMB_DATA if k in attrs}
        if span.start_time and span.end_time:
            data["duration_ms"] = round((span.end_time - span.start_time) / 1e6, 1)
        message = span.name + (f" failed: {span.status.description}" if failed else "")
        sentry_sdk.add_breadcrumb(
            category="gen_ai",
            type="query",
            message=message,
            level="error" if failed else "info",
            data=data,
        )
