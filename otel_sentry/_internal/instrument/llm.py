"""LLM calls as GenAI spans, for any provider: ``llm_span()``, ``tool_span()``, ``agent_span()``.

Every call becomes one span named per the OpenTelemetry GenAI conventions (``chat gpt-4o``,
``execute_tool get_weather``, ``invoke_agent planner``) with ``gen_ai.operation.name``,
``gen_ai.provider.name``, request and response model, token usage (cached and reasoning tokens
are subsets of input and output, never extra), finish reasons, ``gen_ai.request.stream`` and
``gen_ai.response.time_to_first_chunk`` for streams. A failed call (timeout, rate limit) ends
with ERROR status, ``error.type`` and the exception recorded. Prompts and completions are kept
only when capture is switched on, and then only after passing through the content scrubber:
in full (truncated) by default, or as a sha256 of the scrubbed text plus a short snippet
(``configure_llm(content_mode="hash")``), enough to tell calls apart without keeping the text.

    with llm_span("chat", provider="openai", request_model="gpt-4o") as call:
        reply = client.chat.completions.create(model="gpt-4o", messages=messages)
        call.set_response(model=reply.model, finish_reasons=["stop"])
        call.set_usage(input_tokens=reply.usage.prompt_tokens, output_tokens=...)

``instrument_llm_clients()`` does this for the official OpenAI and Anthropic SDKs; that lives in
``llm_clients``, which builds on the spans here, and is offered here too because this module is
where an app looks for its LLM tracing.

Only the OpenTelemetry API is used here; what Sentry makes of these spans is decided on export.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from contextvars import Token
from types import TracebackType
from typing import Any, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

__all__ = [
    "CAPTURE_CONTENT_ENV",
    "LlmCall",
    "agent_span",
    "configure_llm",
    "instrument_llm_clients",
    "llm_span",
    "tool_span",
    "uninstrument_llm_clients",
]

_F = TypeVar("_F", bound=Callable[..., Any])

CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
# The key the contrib HTTP client instrumentations (httpx, requests, urllib3) check before
# starting a span; set on the context for the duration of a call, it suppresses them.
_SUPPRESS_HTTP_KEY = otel_context._SUPPRESS_HTTP_INSTRUMENTATION_KEY
# Looked up once: the SDK's get_tracer compares scopes on every call (~10 us). Before a provider
# is set this is a proxy that follows the one set later.
_TRACER = trace.get_tracer("otel_sentry.instrument.llm")


def _identity(text: str) -> str:
    return text


class _Settings:
    """Process-wide switches, set by ``configure_llm`` (``otel_sentry.init`` calls it)."""

    capture_content: bool | None = None  # None: the standard variable decides
    http_spans: bool = True
    # Below the provider's attribute length limit (16 KiB), so the truncation marker survives.
    max_content_chars: int = 16_000
    # "full": the scrubbed text; "hash": its sha256 and the first snippet_chars of it.
    content_mode: str = "full"
    snippet_chars: int = 80
    # The one seam through which every captured prompt and completion leaves this module.
    scrub_content: Callable[[str], str] = staticmethod(_identity)


def configure_llm(
    *,
    capture_content: bool | None = None,
    http_spans: bool | None = None,
    scrub_content: Callable[[str], str] | None = None,
    max_content_chars: int | None = None,
    content_mode: str | None = None,
    snippet_chars: int | None = None,
) -> None:
    """Set what LLM spans record. ``scrub_content`` receives every captured message text (JSON).

    ``content_mode``: ``full`` records the scrubbed text, cut at ``max_content_chars``; ``hash``
    records ``sha256:<hex of the scrubbed text> <its first snippet_chars characters>...``.
    """
    if content_mode is not None and content_mode not in ("full", "hash"):
        raise ValueError(f"content_mode={content_mode!r}: expected 'full' or 'hash'")
    if capture_content is not None:
        _Settings.capture_content = capture_content
    if http_spans is not None:
        _Settings.http_spans = http_spans
    if scrub_content is not None:
        _Settings.scrub_content = staticmethod(scrub_content)
    if max_content_chars is not None:
        _Settings.max_content_chars = max_content_chars
    if content_mode is not None:
        _Settings.content_mode = content_mode
    if snippet_chars is not None:
        _Settings.snippet_chars = max(0, snippet_chars)


def _capture_content() -> bool:
    if _Settings.capture_content is not None:
        return _Settings.capture_content
    return os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() in ("1", "true", "yes", "on")


class LlmCall:
    """The handle of one running GenAI span: record the response, usage, chunks and content."""

    __slots__ = ("_first_chunk", "_start", "span")

    def __init__(self, span: Span) -> None:
        self.span = span
        self._start = time.monotonic()
        self._first_chunk = False

    def set_response(
        self,
        *,
        model: str | None = None,
        response_id: str | None = None,
        finish_reasons: Sequence[str] | None = None,
    ) -> None:
        span = self.span
        if model:
            span.set_attribute("gen_ai.response.model", model)
        if response_id:
            span.set_attribute("gen_ai.response.id", response_id)
        if finish_reasons:
            span.set_attribute("gen_ai.response.finish_reasons", list(finish_reasons))

    def set_usage(
        self,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cached_input_tokens: int | None = None,
        cache_creation_input_tokens: int | None = None,
        reasoning_output_tokens: int | None = None,
    ) -> None:
        """Token counts; ``input_tokens`` includes cached ones, ``output_tokens`` reasoning ones."""
        for key, value in (
            ("gen_ai.usage.input_tokens", input_tokens),
            ("gen_ai.usage.output_tokens", output_tokens),
            ("gen_ai.usage.cache_read.input_tokens", cached_input_tokens),
            ("gen_ai.usage.cache_creation.input_tokens", cache_creation_input_tokens),
            ("gen_ai.usage.reasoning.output_tokens", reasoning_output_tokens),
        ):
            if isinstance(value, int) and not isinstance(value, bool):
                self.span.set_attribute(key, value)

    def first_chunk(self) -> None:
        """Mark the first streamed chunk (only the first call counts)."""
        if not self._first_chunk:
            self._first_chunk = True
            self.span.set_attribute(
                "gen_ai.response.time_to_first_chunk", time.monotonic() - self._start
            )

    def record_content(self, *, input_messages: Any = None, output_messages: Any = None) -> None:
        """Prompts/completions (semconv message lists): dropped unless capture is on, scrubbed."""
        if not _capture_content() or not self.span.is_recording():
            return
        for key, value in (
            ("gen_ai.input.messages", input_messages),
            ("gen_ai.output.messages", output_messages),
        ):
            if value is None:
                continue
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            self.span.set_attribute(key, _recorded(_Settings.scrub_content(text), value))

    def fail(self, error: BaseException) -> None:
        """ERROR status, ``error.type`` and the exception as a span event."""
        span = self.span
        span.record_exception(error)
        span.set_attribute("error.type", _error_type(error))
        code = getattr(error, "status_code", None)
        if isinstance(code, int):
            span.set_attribute("http.response.status_code", code)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:200]))

    def end(self, error: BaseException | None = None) -> None:
        if error is not None and isinstance(error, Exception):
            self.fail(error)
        elif error is None:
            self.span.set_status(Status(StatusCode.OK))
        self.span.end()


def _recorded(text: str, value: Any) -> str:
    """What an attribute keeps of the scrubbed ``text`` of ``value``, per ``content_mode``."""
    if _Settings.content_mode == "hash":
        # Of the scrubbed text: a hash of the raw prompt would let anyone who can guess a short
        # secret confirm it. Equal prompts still get equal hashes.
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        # The snippet is of the words, not of the JSON around them (which would fill it); the
        # whole text is scrubbed before it is cut, so a cut cannot split a secret from its key.
        plain = text if isinstance(value, str) else _Settings.scrub_content(_plain_text(value))
        snippet = plain[: _Settings.snippet_chars]
        return f"sha256:{digest} {snippet}" + ("..." if len(plain) > len(snippet) else "")
    if len(text) > _Settings.max_content_chars:
        return text[: _Settings.max_content_chars] + "...[truncated]"
    return text


def _plain_text(value: Any) -> str:
    """The text of a message list (``content`` strings, or the ``content`` of its ``parts``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        content = value.get("content")
        if isinstance(content, str):
            return content
        parts = value.get("parts", content)
        if isinstance(parts, (list, tuple)):
            return _plain_text(parts)
        return json.dumps(parts if parts is not None else value, default=str)
    if isinstance(value, (list, tuple)):
        return "\n".join(text for text in (_plain_text(v) for v in value) if text)
    return json.dumps(value, default=str)


def _error_type(error: BaseException) -> str:
    # Low-cardinality, as the conventions ask: "timeout", the HTTP status, else the class.
    name = type(error).__name__
    if isinstance(error, TimeoutError) or "Timeout" in name:
        return "timeout"
    code = getattr(error, "status_code", None)
    if isinstance(code, int):
        return str(code)
    return f"{type(error).__module__}.{type(error).__qualname__}"


class _InSpan:
    """One GenAI span, started and made current on entering a ``with`` block.

    Leaving the block detaches its context, then ends the span: with the exception if one
    escaped, with OK status otherwise, unless ``end_on_success`` is false: then a clean exit
    leaves the span open for the caller to end through the ``LlmCall`` (a stream's span ends
    with the stream, not when the call that opened it returns). Every GenAI span here runs
    through this, so a failure is recorded and the context restored the same way everywhere.
    """

    __slots__ = ("_attributes", "_end_on_success", "_kind", "_name", "_token", "call")

    call: LlmCall
    _token: Token[Context]

    def __init__(
        self,
        name: str,
        attributes: dict[str, AttributeValue],
        kind: SpanKind,
        end_on_success: bool,
    ) -> None:
        self._name = name
        self._attributes = attributes
        self._kind = kind
        self._end_on_success = end_on_success

    def __enter__(self) -> LlmCall:
        span = _TRACER.start_span(self._name, kind=self._kind, attributes=self._attributes)
        ctx = trace.set_span_in_context(span)
        if not _Settings.http_spans and self._kind is SpanKind.CLIENT:
            ctx = otel_context.set_value(_SUPPRESS_HTTP_KEY, True, ctx)
        self.call = LlmCall(span)
        self._token = otel_context.attach(ctx)
        return self.call

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        otel_context.detach(self._token)
        if exc is not None:
            self.call.end(exc)
        elif self._end_on_success:
            self.call.end()


class _GenAiSpan(AbstractContextManager[LlmCall]):
    """``with`` block or decorator (sync and async) around one GenAI span."""

    def __init__(self, name: str, attributes: dict[str, AttributeValue], kind: SpanKind) -> None:
        self._name = name
        self._attributes = attributes
        self._kind = kind
        self._stack: list[_InSpan] = []

    def in_span(self, *, end_on_success: bool = True) -> _InSpan:
        """A fresh run of this span for one call: ``with scope.in_span() as call: ...``."""
        return _InSpan(self._name, self._attributes, self._kind, end_on_success)

    def __enter__(self) -> LlmCall:
        run = self.in_span()
        call = run.__enter__()
        self._stack.append(run)
        return call

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.pop().__exit__(exc_type, exc, tb)

    def __call__(self, func: _F) -> _F:
        # A decorated function may run in many threads or tasks at once: each call gets its own
        # span and context token, never this object's stack.
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def traced_async(*args: Any, **kwargs: Any) -> Any:
                with self.in_span():
                    return await func(*args, **kwargs)

            return cast(_F, traced_async)

        @functools.wraps(func)
        def traced(*args: Any, **kwargs: Any) -> Any:
            with self.in_span():
                return func(*args, **kwargs)

        return cast(_F, traced)


def llm_span(
    operation: str = "chat",
    *,
    provider: str,
    request_model: str | None = None,
    stream: bool = False,
    server_address: str | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> _GenAiSpan:
    """A GenAI client span for one model call: ``with llm_span(...) as call`` or a decorator."""
    attrs: dict[str, AttributeValue] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": provider,
    }
    if request_model:
        attrs["gen_ai.request.model"] = request_model
    if stream:
        attrs["gen_ai.request.stream"] = True
    if server_address:
        attrs["server.address"] = server_address
    if attributes:
        attrs.update(attributes)
    name = f"{operation} {request_model}" if request_model else operation
    return _GenAiSpan(name, attrs, SpanKind.CLIENT)


def tool_span(
    name: str,
    *,
    call_id: str | None = None,
    description: str | None = None,
    tool_type: str = "function",
) -> _GenAiSpan:
    """An ``execute_tool`` span for a tool the model asked for (a child of the agent or call)."""
    attrs: dict[str, AttributeValue] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.type": tool_type,
    }
    if call_id:
        attrs["gen_ai.tool.call.id"] = call_id
    if description:
        attrs["gen_ai.tool.description"] = description
    return _GenAiSpan(f"execute_tool {name}", attrs, SpanKind.INTERNAL)


def agent_span(
    name: str,
    *,
    provider: str | None = None,
    request_model: str | None = None,
    agent_id: str | None = None,
) -> _GenAiSpan:
    """An ``invoke_agent`` span around an agent run: its model calls and tools nest inside."""
    attrs: dict[str, AttributeValue] = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": name,
    }
    if provider:
        attrs["gen_ai.provider.name"] = provider
    if request_model:
        attrs["gen_ai.request.model"] = request_model
    if agent_id:
        attrs["gen_ai.agent.id"] = agent_id
    return _GenAiSpan(f"invoke_agent {name}", attrs, SpanKind.INTERNAL)


# The SDK hooks in llm_clients build on the spans above, so they are imported when called: a
# module-level import in each direction would leave llm_clients unimportable on its own.


def instrument_llm_clients() -> list[str]:
    """Trace the installed LLM SDKs; returns their names. Idempotent, never raises.

    See ``otel_sentry._internal.instrument.llm_clients.instrument_llm_clients``.
    """
    from otel_sentry._internal.instrument import llm_clients

    return llm_clients.instrument_llm_clients()


def uninstrument_llm_clients() -> None:
    """Restore the SDK methods ``instrument_llm_clients`` wrapped."""
    from otel_sentry._internal.instrument import llm_clients

    llm_clients.uninstrument_llm_clients()
