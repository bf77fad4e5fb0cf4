"""The official LLM SDKs traced as GenAI spans: OpenAI by a wrapper of ours, Anthropic by itself.

``instrument_llm_clients()`` (``otel_sentry.init`` calls it) turns every OpenAI
``chat.completions.create`` call (sync, async, streaming) into one ``llm_span`` with the model,
usage, finish reasons and, when capture is on, the scrubbed messages. The wrapper is ours because
the contrib ``opentelemetry-instrumentation-openai-v2`` (2.4b0) fails to import with the current
``opentelemetry-util-genai`` (1.2+) and records neither time to first chunk nor cached and
reasoning tokens. A streamed call's span stays open until the stream is exhausted or closed, so
it covers the whole answer, not just the first response. Anthropic: the SDK (2.x) traces its own
calls with the same conventions, so we leave it to that and add nothing that would double its
spans.

The spans themselves, and the switches that decide what they record, are ``llm``'s; this module
only knows the SDKs. Only the OpenTelemetry API is used here.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

from otel_sentry._internal.instrument.llm import LlmCall, _capture_content, _GenAiSpan, llm_span

__all__ = ["instrument_llm_clients", "uninstrument_llm_clients"]

_log = logging.getLogger("otel_sentry")


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


def _openai_finish(call: LlmCall, kwargs: dict[str, Any], result: Any, stream: type) -> Any:
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
        # Left open on a clean return: _openai_finish ends it, or the stream it returns does.
        with _openai_span(self, kwargs).in_span(end_on_success=False) as call:
            result = original(self, *args, **kwargs)
        return _openai_finish(call, kwargs, result, _SyncStream)

    return create


def _wrap_openai_async(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _openai_span(self, kwargs).in_span(end_on_success=False) as call:
            result = await original(self, *args, **kwargs)
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
