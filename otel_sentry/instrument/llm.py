"""LLM calls as GenAI spans: ``llm_span()`` for any provider, and the OpenAI/Anthropic SDKs.

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

``instrument_llm_clients()`` does this for the official SDKs. OpenAI: a thin wrapper of ours
around ``chat.completions.create`` (sync, async, streaming), because the contrib
``opentelemetry-instrumentation-openai-v2`` (2.4b0) fails to import with the current
``opentelemetry-util-genai`` (1.2+) and records neither time to first chunk nor cached and
reasoning tokens. Anthropic: the SDK (2.x) traces its own calls with the same conventions, so we
leave it to that and add nothing that would double its spans.

Only the OpenTelemetry API is used here; what Sentry makes of these spans is decided on export.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import inspect
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
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

_log = logging.getLogger("otel_sentry")
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


class _GenAiSpan(AbstractContextManager[LlmCall]):
    """``with`` block or decorator (sync and async) around one GenAI span."""

    def __init__(self, name: str, attributes: dict[str, AttributeValue], kind: SpanKind) -> None:
        self._name = name
        self._attributes = attributes
        self._kind = kind
        self._stack: list[tuple[LlmCall, object, object]] = []

    def start(self) -> tuple[LlmCall, object, object]:
        span = _TRACER.start_span(self._name, kind=self._kind, attributes=self._attributes)
        ctx = trace.set_span_in_context(span)
        if not _Settings.http_spans and self._kind is SpanKind.CLIENT:
            ctx = otel_context.set_value(_SUPPRESS_HTTP_KEY, True, ctx)
        return LlmCall(span), ctx, otel_context.attach(ctx)

    def __enter__(self) -> LlmCall:
        entry = self.start()
        self._stack.append(entry)
        return entry[0]

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        call, _, token = self._stack.pop()
        otel_context.detach(token)  # type: ignore[arg-type]
        call.end(exc)

    def __call__(self, func: _F) -> _F:
        # A decorated function may run in many threads or tasks at once: each call gets its own
        # span and context token, never this object's stack.
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                call, _, token = self.start()
                try:
                    result = await func(*args, **kwargs)
                except BaseException as exc:
                    otel_context.detach(token)  # type: ignore[arg-type]
                    call.end(exc)
                    raise
                otel_context.detach(token)  # type: ignore[arg-type]
                call.end()
                return result

            return cast(_F, run_async)

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            call, _, token = self.start()
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                otel_context.detach(token)  # type: ignore[arg-type]
                call.end(exc)
                raise
            otel_context.detach(token)  # type: ignore[arg-type]
            call.end()
            return result

        return cast(_F, run)


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


# -- OpenAI chat completions ------------------------------------------------------------------


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _openai_usage(call: LlmCall, usage: Any) -> None:
    if usage is None:
        return
    call.set_usage(
        input_tokens=_get(usage, "prompt_tokens"),
        output_tokens=_get(usage, "completion_tokens"),
        cached_input_tokens=_get(_get(usage, "prompt_tokens_details"), "cached_tokens"),
        reasoning_output_tokens=_get(_get(usage, "completion_tokens_details"), "reasoning_tokens"),
    )


def _openai_input(kwargs: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for message in kwargs.get("messages") or ():
        content = _get(message, "content")
        parts = (
            [{"type": "text", "content": content}]
            if isinstance(content, str)
            else [{"type": "json", "content": content}]
        )
        out.append({"role": _get(message, "role"), "parts": parts})
    return out


def _openai_result(call: LlmCall, kwargs: Mapping[str, Any], result: Any) -> None:
    choices = _get(result, "choices") or ()
    call.set_response(
        model=_get(result, "model"),
        response_id=_get(result, "id"),
        finish_reasons=[r for c in choices if (r := _get(c, "finish_reason"))],
    )
    _openai_usage(call, _get(result, "usage"))
    if _capture_content():
        outputs = [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": _get(_get(c, "message"), "content")}],
                "finish_reason": _get(c, "finish_reason"),
            }
            for c in choices
        ]
        call.record_content(input_messages=_openai_input(kwargs), output_messages=outputs)


class _StreamState:
    """What a chat completion stream said so far, recorded on the span when it ends."""

    __slots__ = ("call", "ended", "finish", "kwargs", "model", "response_id", "text", "usage")

    def __init__(self, call: LlmCall, kwargs: Mapping[str, Any]) -> None:
        self.call = call
        self.kwargs = kwargs
        self.model: str | None = None
        self.response_id: str | None = None
        self.finish: list[str] = []
        self.usage: Any = None
        self.text: list[str] = []
        self.ended = False

    def chunk(self, chunk: Any) -> None:
        self.call.first_chunk()
        self.model = _get(chunk, "model") or self.model
        self.response_id = _get(chunk, "id") or self.response_id
        usage = _get(chunk, "usage")
        if usage is not None:
            self.usage = usage
        for choice in _get(chunk, "choices") or ():
            reason = _get(choice, "finish_reason")
            if reason:
                self.finish.append(reason)
            text = _get(_get(choice, "delta"), "content")
            if text:
                self.text.append(text)

    def end(self, error: BaseException | None = None) -> None:
        if self.ended:
            return
        self.ended = True
        call = self.call
        call.set_response(
            model=self.model, response_id=self.response_id, finish_reasons=self.finish
        )
        _openai_usage(call, self.usage)
        if _capture_content():
            output = [
                {"role": "assistant", "parts": [{"type": "text", "content": "".join(self.text)}]}
            ]
            call.record_content(input_messages=_openai_input(self.kwargs), output_messages=output)
        call.end(error)


class _SyncStream:
    """The SDK's stream, passed through chunk by chunk; the span ends with the stream."""

    def __init__(self, stream: Any, state: _StreamState) -> None:
        self._stream = stream
        self._state = state

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            chunk = next(self._stream)
        except StopIteration:
            self._state.end()
            raise
        except Exception as exc:
            self._state.end(exc)
            raise
        self._state.chunk(chunk)
        return chunk

    def __enter__(self) -> _SyncStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._state.end()
        self._stream.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _AsyncStream:
    def __init__(self, stream: Any, state: _StreamState) -> None:
        self._stream = stream
        self._state = state

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        try:
            chunk = await self._stream.__anext__()
        except StopAsyncIteration:
            self._state.end()
            raise
        except Exception as exc:
            self._state.end(exc)
            raise
        self._state.chunk(chunk)
        return chunk

    async def __aenter__(self) -> _AsyncStream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        self._state.end()
        await self._stream.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _openai_span(instance: Any, kwargs: Mapping[str, Any]) -> _GenAiSpan:
    client = getattr(instance, "_client", None)
    base_url = getattr(client, "base_url", None)
    host = getattr(base_url, "host", None)
    return llm_span(
        "chat",
        provider="openai",
        request_model=str(kwargs.get("model") or "") or None,
        stream=bool(kwargs.get("stream")),
        server_address=host if isinstance(host, str) else None,
    )


def _openai_finish(call: Any, kwargs: dict[str, Any], result: Any, stream: type) -> Any:
    """After the call returned: a stream ends the span when it is consumed, anything else now."""
    if kwargs.get("stream"):
        return stream(result, _StreamState(call, kwargs))
    try:
        _openai_result(call, kwargs, result)
    finally:
        call.end()
    return result


def _wrap_openai_sync(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        scope = _openai_span(self, kwargs)
        call, _, token = scope.start()
        try:
            result = original(self, *args, **kwargs)
        except BaseException as exc:
            otel_context.detach(token)  # type: ignore[arg-type]
            call.end(exc)
            raise
        otel_context.detach(token)  # type: ignore[arg-type]
        return _openai_finish(call, kwargs, result, _SyncStream)

    return create


def _wrap_openai_async(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        scope = _openai_span(self, kwargs)
        call, _, token = scope.start()
        try:
            result = await original(self, *args, **kwargs)
        except BaseException as exc:
            otel_context.detach(token)  # type: ignore[arg-type]
            call.end(exc)
            raise
        otel_context.detach(token)  # type: ignore[arg-type]
        return _openai_finish(call, kwargs, result, _AsyncStream)

    return create


_patched: list[tuple[type, str, Any]] = []


def _patch(
    cls: type, name: str, wrapper: Callable[[Callable[..., Any]], Callable[..., Any]]
) -> None:
    original = cls.__dict__[name]
    if getattr(original, "_otel_sentry_llm", False):
        return
    wrapped = wrapper(original)
    wrapped._otel_sentry_llm = True  # type: ignore[attr-defined]
    setattr(cls, name, wrapped)
    _patched.append((cls, name, original))


def instrument_llm_clients() -> list[str]:
    """Trace the installed LLM SDKs; returns their names. Idempotent, never raises.

    Nothing is imported here: importing ``anthropic`` costs ~3 s of CPU and ``openai`` ~1 s, a
    price an app that never calls them must not pay at startup. OpenAI is patched when the app
    imports it (now, if it already has).
    """
    done: list[str] = []
    if importlib.util.find_spec("openai") is not None:
        if "openai" in sys.modules:
            _patch_openai(sys.modules["openai"])
        else:
            try:
                from wrapt import register_post_import_hook
            except ImportError:  # no post-import hooks: pay for the import now
                _patch_openai(None)
            else:
                register_post_import_hook(_patch_openai, "openai")
        done.append("openai")
    spec = importlib.util.find_spec("anthropic")
    if spec is not None:
        locations = list(spec.submodule_search_locations or ())
        if any(os.path.exists(os.path.join(p, "_tracing.py")) for p in locations):
            # The SDK writes trace headers itself, without asking whether they may go to the
            # request's URL; left to the HTTP client instrumentation, the configured
            # propagator decides (trace headers stay away from api.anthropic.com).
            os.environ.setdefault("ANTHROPIC_OPEN_TELEMETRY_PROPAGATION", "false")
            done.append("anthropic")
        else:
            _log.warning(
                "otel-sentry: this anthropic version does not trace its own calls; upgrade to "
                "anthropic>=2.12 for GenAI spans"
            )
    return done


def _patch_openai(module: object) -> None:
    try:
        from openai.resources.chat.completions import AsyncCompletions, Completions
    except Exception:  # a layout this wrapper does not know: no spans rather than a crash
        _log.warning("otel-sentry: this openai version is not supported; no GenAI spans")
        return
    _patch(Completions, "create", _wrap_openai_sync)
    _patch(AsyncCompletions, "create", _wrap_openai_async)


def uninstrument_llm_clients() -> None:
    while _patched:
        cls, name, original = _patched.pop()
        setattr(cls, name, original)
