"""LLM calls through the real ``openai`` and ``anthropic`` clients, as they reach the inbox.

The clients talk HTTP to ``examples/local_llm.py`` (their wire formats, SSE streams, errors and
429s with retry-after) on 127.0.0.1; ``otel_sentry.init()`` sends to a real inbox. Every
assertion reads the transaction or event that arrived.
"""

from __future__ import annotations

import asyncio
import logging
import re
import urllib.request
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from opentelemetry import trace

import otel_sentry
from examples.local_llm import REPLY, Fault, LocalLLM
from otel_sentry._internal.instrument.llm import agent_span, llm_span, tool_span
from otel_sentry.inbox import Inbox
from tests.support.uvicorn import UvicornThread

pytestmark = pytest.mark.integration

PROMPT = "describe the weather in Lisbon"  # 5 words: the local model counts 5 input tokens
REPLY_TOKENS = len(REPLY.split())


@pytest.fixture
def llm() -> Iterator[LocalLLM]:
    with LocalLLM() as server:
        yield server


def _init(inbox: Inbox, **options: Any) -> None:
    otel_sentry.init(
        dsn=inbox.dsn(),
        environment="test",
        release="llm@1",
        instrument=("fastapi", "httpx2", "openai", "anthropic"),
        **options,
    )


@pytest.fixture
def traced(inbox: Inbox, fresh: None) -> Inbox:
    _init(inbox)
    return inbox


def _openai(llm: LocalLLM, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=llm.openai_base_url, api_key="sk-local", **options)


def _anthropic(llm: LocalLLM, **options: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=llm.anthropic_base_url, api_key="sk-ant-local", **options)


def _transaction(inbox: Inbox, name: str) -> dict[str, Any]:
    otel_sentry.flush(5)
    assert inbox.wait_for(lambda i: any(t["transaction"] == name for t in i.transactions()), 10)
    [txn] = [t for t in inbox.transactions() if t["transaction"] == name]
    return txn


def _spans(txn: dict[str, Any], op: str) -> list[dict[str, Any]]:
    return [s for s in txn["spans"] if s["op"] == op]


def _raw(inbox: Inbox) -> bytes:
    return b"".join(item.payload for item in inbox.items())


def _messages() -> list[dict[str, str]]:
    return [{"role": "user", "content": PROMPT}]


def test_openai_chat_completion_is_a_gen_ai_chat_span(traced: Inbox, llm: LocalLLM) -> None:
    client = _openai(llm)
    with trace.get_tracer("test").start_as_current_span("summarize"):
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=_messages())
    assert reply.choices[0].message.content == REPLY
    txn = _transaction(traced, "summarize")
    [span] = _spans(txn, "gen_ai.chat")
    assert span["description"] == "chat gpt-4o-mini"
    assert span["status"] == "ok"
    data = span["data"]
    assert data["gen_ai.operation.name"] == "chat"
    assert data["gen_ai.provider.name"] == data["gen_ai.system"] == "openai"
    assert data["gen_ai.request.model"] == "gpt-4o-mini"
    assert data["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert data["gen_ai.usage.input_tokens"] == 5
    assert data["gen_ai.usage.output_tokens"] == REPLY_TOKENS
    # Cached and reasoning tokens are subsets, under both the conventions' and Sentry's names.
    assert data["gen_ai.usage.cache_read.input_tokens"] == 3
    assert data["gen_ai.usage.input_tokens.cached"] == 3
    assert data["gen_ai.usage.output_tokens.reasoning"] == 2
    assert data["gen_ai.usage.total_tokens"] == 5 + REPLY_TOKENS
    assert data["gen_ai.response.finish_reasons"] == ["stop"]
    assert "gen_ai.response.time_to_first_chunk" not in data
    # The HTTP request is the chat span's child.
    [http] = _spans(txn, "http.client")
    assert http["parent_span_id"] == span["span_id"]
    assert http["description"] == f"POST {llm.openai_base_url}/chat/completions"
    # No prompt and no completion anywhere in what was sent.
    raw = _raw(traced)
    assert PROMPT.encode() not in raw and REPLY.encode() not in raw
    assert "gen_ai.input.messages" not in data
    assert traced.problems == []


def test_openai_stream_records_time_to_first_chunk(traced: Inbox, llm: LocalLLM) -> None:
    client = _openai(llm)
    with trace.get_tracer("test").start_as_current_span("stream"):
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=_messages(),
            stream=True,
            stream_options={"include_usage": True},
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.strip() == REPLY
    txn = _transaction(traced, "stream")
    [span] = _spans(txn, "gen_ai.chat")
    data = span["data"]
    assert data["gen_ai.request.stream"] is True and data["gen_ai.response.streaming"] is True
    ttft = data["gen_ai.response.time_to_first_token"]
    assert ttft == data["gen_ai.response.time_to_first_chunk"]
    assert llm.first_chunk_delay <= ttft < span["timestamp"] - span["start_timestamp"]
    assert data["gen_ai.usage.input_tokens"] == 5
    assert data["gen_ai.usage.output_tokens"] == REPLY_TOKENS
    assert data["gen_ai.response.finish_reasons"] == ["stop"]
    assert span["status"] == "ok"
    assert REPLY.encode() not in _raw(traced)


def test_async_openai_stream_and_call(traced: Inbox, llm: LocalLLM) -> None:
    async def run() -> None:
        client = openai.AsyncOpenAI(base_url=llm.openai_base_url, api_key="sk-local")
        with trace.get_tracer("test").start_as_current_span("async work"):
            await client.chat.completions.create(model="gpt-4o", messages=_messages())
            stream = await client.chat.completions.create(
                model="gpt-4o", messages=_messages(), stream=True
            )
            async for _ in stream:
                pass
        await client.close()

    asyncio.run(run())
    txn = _transaction(traced, "async work")
    plain, streamed = sorted(_spans(txn, "gen_ai.chat"), key=lambda s: s["start_timestamp"])
    assert plain["data"]["gen_ai.usage.output_tokens"] == REPLY_TOKENS
    assert "gen_ai.request.stream" not in plain["data"]
    assert streamed["data"]["gen_ai.response.time_to_first_token"] >= llm.first_chunk_delay
    assert streamed["data"]["gen_ai.response.finish_reasons"] == ["stop"]
    # Without include_usage the stream carries no usage: none is invented.
    assert "gen_ai.usage.input_tokens" not in streamed["data"]


def test_anthropic_messages_and_stream(traced: Inbox, llm: LocalLLM) -> None:
    client = _anthropic(llm)
    with trace.get_tracer("test").start_as_current_span("claude"):
        message = client.messages.create(
            model="claude-haiku-4-5", max_tokens=64, messages=_messages()
        )
        with client.messages.stream(
            model="claude-haiku-4-5", max_tokens=64, messages=_messages()
        ) as stream:
            for _ in stream:
                pass
    assert message.content[0].text == REPLY  # type: ignore[union-attr]
    txn = _transaction(traced, "claude")
    plain, streamed = sorted(_spans(txn, "gen_ai.chat"), key=lambda s: s["start_timestamp"])
    for span in (plain, streamed):
        data = span["data"]
        assert span["description"] == "chat claude-haiku-4-5"
        assert span["status"] == "ok"
        assert data["gen_ai.provider.name"] == data["gen_ai.system"] == "anthropic"
        assert data["gen_ai.response.model"] == "claude-haiku-4-5"
        # Anthropic reports cache reads apart; the span's input count includes them.
        assert data["gen_ai.usage.input_tokens"] == 5
        assert data["gen_ai.usage.input_tokens.cached"] == 3
        assert data["gen_ai.usage.output_tokens"] == REPLY_TOKENS
        assert data["gen_ai.response.finish_reasons"] == ["end_turn"]
    assert "gen_ai.response.time_to_first_token" not in plain["data"]
    assert streamed["data"]["gen_ai.response.time_to_first_token"] >= llm.first_chunk_delay
    raw = _raw(traced)
    assert PROMPT.encode() not in raw and REPLY.encode() not in raw
    assert traced.problems == []


def test_rate_limit_is_retried_after_retry_after(traced: Inbox, llm: LocalLLM) -> None:
    llm.fail_next(Fault(status=429, retry_after=0.2))
    client = _openai(llm, max_retries=1)
    with trace.get_tracer("test").start_as_current_span("retried"):
        client.chat.completions.create(model="gpt-4o-mini", messages=_messages())
    txn = _transaction(traced, "retried")
    [span] = _spans(txn, "gen_ai.chat")
    assert span["status"] == "ok"
    attempts = sorted(_spans(txn, "http.client"), key=lambda s: s["start_timestamp"])
    assert [a["status"] for a in attempts] == ["resource_exhausted", "ok"]
    assert attempts[1]["start_timestamp"] - attempts[0]["timestamp"] >= 0.15


def test_rate_limit_and_timeout_fail_the_span(traced: Inbox, llm: LocalLLM) -> None:
    llm.fail_next(Fault(status=429, retry_after=5))
    client = _openai(llm, max_retries=0, timeout=0.3)
    with trace.get_tracer("test").start_as_current_span("failing"):
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-4o-mini", messages=_messages())
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=_messages(),
                extra_headers={"x-local-llm-delay": "1"},
            )
    txn = _transaction(traced, "failing")
    limited, timed_out = sorted(_spans(txn, "gen_ai.chat"), key=lambda s: s["start_timestamp"])
    assert limited["status"] == "resource_exhausted"
    assert limited["data"]["error.type"] == "429"
    assert timed_out["status"] == "deadline_exceeded"
    assert timed_out["data"]["error.type"] == "timeout"
    # Handled failures are span statuses, not issues of their own.
    otel_sentry.flush(5)
    assert traced.events() == []


def test_content_is_opt_in_and_scrubbed(inbox: Inbox, fresh: None, llm: LocalLLM) -> None:
    _init(inbox, capture_llm_content=True)
    secret = "sk-proj-" + "a1b2c3d4" * 5
    client = _openai(llm)
    with trace.get_tracer("test").start_as_current_span("with content"):
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": f"{PROMPT} using key {secret}"}],
        )
    txn = _transaction(inbox, "with content")
    [span] = _spans(txn, "gen_ai.chat")
    assert PROMPT in span["data"]["gen_ai.input.messages"]
    assert REPLY in span["data"]["gen_ai.output.messages"]
    assert secret.encode() not in _raw(inbox)


def test_content_can_be_kept_as_a_hash_and_a_short_snippet(
    inbox: Inbox, fresh: None, llm: LocalLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SENTRY_LLM_CONTENT_MODE", "hash")
    _init(inbox, capture_llm_content=True)
    secret = "sk-proj-" + "e5f6a7b8" * 5
    long_prompt = f"{PROMPT} using key {secret}. Then mention the tides at the harbour tonight."
    client = _openai(llm)
    with trace.get_tracer("test").start_as_current_span("hashed content"):
        for prompt in (long_prompt, long_prompt, PROMPT):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}]
            )
    spans = _spans(_transaction(inbox, "hashed content"), "gen_ai.chat")
    spans.sort(key=lambda s: s["start_timestamp"])
    shape = re.compile(r"sha256:([0-9a-f]{64}) (.*)", re.S)
    inputs = [shape.fullmatch(s["data"]["gen_ai.input.messages"]) for s in spans]
    assert all(inputs), [s["data"]["gen_ai.input.messages"] for s in spans]
    first, again, other = (m.groups() for m in inputs if m)
    # 80 characters of the scrubbed words, then "...": the rest of the prompt never leaves.
    scrubbed = f"{PROMPT} using key [Filtered]. Then mention the tides at the harbour tonight."
    assert first[1] == scrubbed[:80] + "..."
    assert first == again and other[0] != first[0] and other[1] == PROMPT
    output = shape.fullmatch(spans[0]["data"]["gen_ai.output.messages"])
    assert output and output.group(2) == REPLY
    raw = _raw(inbox)
    assert secret.encode() not in raw and b"harbour tonight" not in raw
    assert inbox.problems == []


def test_a_bad_content_mode_names_the_variable() -> None:
    from otel_sentry._internal.config import ConfigError, resolve

    with pytest.raises(ConfigError, match=r"OTEL_SENTRY_LLM_CONTENT_MODE.*full or hash"):
        resolve({}, {"OTEL_SENTRY_LLM_CONTENT_MODE": "summary"})
    assert resolve({}, {}).llm_content_mode == "full"


def test_capture_variable_is_honoured(
    inbox: Inbox, fresh: None, llm: LocalLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    _init(inbox)
    with trace.get_tracer("test").start_as_current_span("env content"):
        _openai(llm).chat.completions.create(model="gpt-4o-mini", messages=_messages())
    [span] = _spans(_transaction(inbox, "env content"), "gen_ai.chat")
    assert PROMPT in span["data"]["gen_ai.input.messages"]


def test_http_span_beneath_can_be_suppressed(inbox: Inbox, fresh: None, llm: LocalLLM) -> None:
    _init(inbox, llm_http_spans=False)
    with trace.get_tracer("test").start_as_current_span("no http"):
        _openai(llm).chat.completions.create(model="gpt-4o-mini", messages=_messages())
    txn = _transaction(inbox, "no http")
    assert len(_spans(txn, "gen_ai.chat")) == 1
    assert _spans(txn, "http.client") == []


def test_llm_span_for_any_provider_with_agent_and_tool(traced: Inbox) -> None:
    @tool_span("get_weather", call_id="call_1")
    async def get_weather(city: str) -> str:
        return "sunny"

    async def run() -> None:
        with agent_span("planner", provider="mistral", request_model="mistral-small") as agent:
            with llm_span("chat", provider="mistral", request_model="mistral-small") as call:
                call.set_response(model="mistral-small-2503", finish_reasons=["tool_calls"])
                call.set_usage(input_tokens=12, output_tokens=4, reasoning_output_tokens=1)
            # The same decorated tool, twice at once: one span each, no crossed contexts.
            await asyncio.gather(get_weather("Lisbon"), get_weather("Porto"))
            agent.set_usage(input_tokens=12, output_tokens=4)

    with trace.get_tracer("test").start_as_current_span("agent run"):
        asyncio.run(run())
    txn = _transaction(traced, "agent run")
    [agent] = _spans(txn, "gen_ai.invoke_agent")
    [chat] = _spans(txn, "gen_ai.chat")
    tool, other_tool = _spans(txn, "gen_ai.execute_tool")
    assert other_tool["parent_span_id"] == agent["span_id"]
    assert agent["description"] == "invoke_agent planner"
    assert chat["description"] == "chat mistral-small"
    assert tool["description"] == "execute_tool get_weather"
    assert chat["parent_span_id"] == tool["parent_span_id"] == agent["span_id"]
    assert chat["data"]["gen_ai.usage.output_tokens.reasoning"] == 1
    assert tool["data"]["gen_ai.tool.call.id"] == "call_1"


def test_provider_timeout_in_a_request_is_one_linked_issue_with_breadcrumbs(
    traced: Inbox, llm: LocalLLM
) -> None:
    from fastapi import FastAPI

    client = _openai(llm, max_retries=0, timeout=0.3)
    app = FastAPI()

    logging.getLogger("app").setLevel(logging.INFO)

    @app.get("/summaries/{doc_id}")
    def summarize(doc_id: int) -> dict[str, str]:
        logging.getLogger("app").info("loaded document %s", doc_id)
        otel_sentry.add_breadcrumb("outline ready", category="app")
        outline = client.chat.completions.create(model="gpt-4o-mini", messages=_messages())
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": outline.choices[0].message.content or ""}],
            extra_headers={"x-local-llm-delay": "1"},
        )
        return {"summary": "never"}

    with UvicornThread(app) as server:
        assert server.request("GET", "/summaries/7") == 500
    txn = _transaction(traced, "GET /summaries/{doc_id}")
    ok, failed = sorted(_spans(txn, "gen_ai.chat"), key=lambda s: s["start_timestamp"])
    assert ok["status"] == "ok" and failed["status"] == "deadline_exceeded"
    traced.wait_for_items("event")
    otel_sentry.flush(5)
    [error] = traced.events()  # sentry_sdk's own OpenAI integration adds no second issue
    assert error["exception"]["values"][-1]["type"] == "APITimeoutError"
    trace_ctx = txn["contexts"]["trace"]
    assert error["contexts"]["trace"]["trace_id"] == trace_ctx["trace_id"]
    assert error["contexts"]["trace"]["span_id"] == trace_ctx["span_id"]
    crumbs = [(c.get("category"), c.get("message"), c.get("level")) for c in _crumbs(error)]
    # The request's scope was forked from the process's: only the last steps are this request's.
    steps = [c for c in crumbs if c[0] in ("app", "gen_ai")][-3:]
    assert steps == [
        ("app", "outline ready", "info"),
        ("gen_ai", "chat gpt-4o-mini", "info"),
        ("gen_ai", steps[2][1], "error"),
    ]
    assert steps[2][1].startswith("chat gpt-4o failed: APITimeoutError")
    assert any(c[1] == "loaded document 7" for c in crumbs)  # the log line before it
    assert traced.problems == []


def _crumbs(event: dict[str, Any]) -> list[dict[str, Any]]:
    crumbs = event.get("breadcrumbs") or {}
    return list(crumbs.get("values", []) if isinstance(crumbs, dict) else crumbs)


def test_local_model_speaks_both_formats_over_plain_http(llm: LocalLLM) -> None:
    request = urllib.request.Request(
        f"{llm.openai_base_url}/chat/completions",
        data=b'{"model": "m", "messages": [{"role": "user", "content": "a b"}]}',
        headers={"content-type": "application/json", "x-local-llm-status": "503"},
    )
    with pytest.raises(urllib.error.HTTPError) as failure:
        urllib.request.urlopen(request, timeout=5)
    assert failure.value.code == 503


def test_spans_named_otherwise_are_described_as_operation_and_model() -> None:
    from opentelemetry.trace import SpanKind, StatusCode

    from otel_sentry._internal.sentry.semantics import interpret

    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "claude-haiku-4-5",
        "http.request.method": "POST",
        "error.type": "timeout",
    }
    sem = interpret("anthropic.messages.create", SpanKind.CLIENT, attrs, StatusCode.ERROR)
    assert (sem.op, sem.description, sem.status) == (
        "gen_ai.chat",
        "chat claude-haiku-4-5",
        "deadline_exceeded",
    )
    tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}
    sem = interpret("search", SpanKind.INTERNAL, tool, StatusCode.OK)
    assert (sem.op, sem.description) == ("gen_ai.execute_tool", "execute_tool search")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("SPAN_ONLY", True), ("span_and_event", True), ("NO_CONTENT", False)],
)
def test_capture_variable_values(raw: str, expected: bool) -> None:
    from otel_sentry._internal.config import resolve

    env = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": raw}
    assert resolve({}, env).capture_llm_content is expected


def test_a_bad_capture_value_names_the_variable() -> None:
    from otel_sentry._internal.config import ConfigError, resolve

    with pytest.raises(ConfigError, match="OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"):
        resolve({}, {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "sometimes"})


def test_trace_headers_follow_the_propagation_targets(
    inbox: Inbox, fresh: None, llm: LocalLLM
) -> None:
    # A self-hosted model is "everywhere" by default; here only example.com may get headers.
    _init(inbox, trace_propagation_targets=["example.com"])
    with trace.get_tracer("test").start_as_current_span("private"):
        _openai(llm).chat.completions.create(model="gpt-4o-mini", messages=_messages())
        _anthropic(llm).messages.create(
            model="claude-haiku-4-5", max_tokens=8, messages=_messages()
        )
    names = ("sentry-trace", "baggage", "traceparent")
    for request in llm.requests:
        assert not [h for h in request["headers"] if h.lower() in names], request["path"]
    txn = _transaction(inbox, "private")
    chats = _spans(txn, "gen_ai.chat")
    https = _spans(txn, "http.client")
    assert len(chats) == len(https) == 2
    assert {h["parent_span_id"] for h in https} == {c["span_id"] for c in chats}


def test_trace_headers_reach_a_self_hosted_model(traced: Inbox, llm: LocalLLM) -> None:
    with trace.get_tracer("test").start_as_current_span("self-hosted"):
        _openai(llm).chat.completions.create(model="gpt-4o-mini", messages=_messages())
    txn = _transaction(traced, "self-hosted")
    [http] = _spans(txn, "http.client")
    [request] = llm.requests
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["sentry-trace"].startswith(
        f"{txn['contexts']['trace']['trace_id']}-{http['span_id']}"
    )
