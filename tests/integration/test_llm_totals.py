"""A request's LLM spend on its transaction: calls, tokens and a cost estimate, per user.

Real ``openai`` and ``anthropic`` clients talk to ``examples/local_llm.py``; ``otel_sentry.init()``
sends to a real inbox (and over OTLP to a second one). Every expected number is computed from
the GenAI spans that arrived, and every expected price by genai-prices itself from their tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest
from genai_prices import Usage, calc_price
from opentelemetry import trace

import otel_sentry
from examples.local_llm import LocalLLM
from otel_sentry._internal.instrument.llm import agent_span, llm_span, tool_span
from otel_sentry.inbox import Inbox
from tests.support.uvicorn import UvicornThread

pytestmark = pytest.mark.integration

PROMPT = "describe the weather in Lisbon"
_NOT_MODEL_CALLS = ("invoke_agent", "create_agent", "execute_tool")
# Totals on the root span -> the span attributes (Sentry's names) they sum.
_SUMS = {
    "otel_sentry.llm.input_tokens": "gen_ai.usage.input_tokens",
    "otel_sentry.llm.output_tokens": "gen_ai.usage.output_tokens",
    "otel_sentry.llm.input_tokens.cached": "gen_ai.usage.input_tokens.cached",
    "otel_sentry.llm.output_tokens.reasoning": "gen_ai.usage.output_tokens.reasoning",
    "otel_sentry.llm.total_tokens": "gen_ai.usage.total_tokens",
}
COST = "otel_sentry.llm.cost_estimate_usd"


@pytest.fixture
def llm() -> Iterator[LocalLLM]:
    with LocalLLM() as server:
        yield server


@pytest.fixture
def otlp_inbox() -> Iterator[Inbox]:
    with Inbox(port=0) as running:
        yield running


def _init(inbox: Inbox, **options: Any) -> None:
    otel_sentry.init(
        dsn=inbox.dsn(),
        environment="test",
        release="llm-totals@1",
        instrument=("fastapi", "httpx2", "openai", "anthropic"),
        **options,
    )


def _messages() -> list[dict[str, str]]:
    return [{"role": "user", "content": PROMPT}]


def _transaction(inbox: Inbox, name: str) -> dict[str, Any]:
    otel_sentry.flush(5)
    assert inbox.wait_for(lambda i: any(t["transaction"] == name for t in i.transactions()), 10)
    [txn] = [t for t in inbox.transactions() if t["transaction"] == name]
    return txn


def _model_calls(txn: dict[str, Any]) -> list[dict[str, Any]]:
    """The transaction's model calls that arrived with usage, innermost only."""
    gen_ai = [
        s
        for s in txn["spans"]
        if s["op"].startswith("gen_ai.")
        and s["data"].get("gen_ai.operation.name") not in _NOT_MODEL_CALLS
        and "gen_ai.usage.input_tokens" in s["data"]
    ]
    # A model call with another beneath it (at any depth) is that call again.
    parents = {s["span_id"]: s.get("parent_span_id") for s in txn["spans"]}
    enclosing: set[str] = set()
    for span in gen_ai:
        parent = parents.get(span["span_id"])
        while parent is not None:
            enclosing.add(parent)
            parent = parents.get(parent)
    return [s for s in gen_ai if s["span_id"] not in enclosing]


def _genai_prices_cost(calls: list[tuple[dict[str, Any], float]]) -> Decimal | None:
    """What genai-prices says the calls cost: (span data in Sentry's names, start time) each."""
    total: Decimal | None = None
    for data, start in calls:
        counts = {
            "input_tokens": data.get("gen_ai.usage.input_tokens"),
            "output_tokens": data.get("gen_ai.usage.output_tokens"),
            "cache_read_tokens": data.get("gen_ai.usage.input_tokens.cached"),
            "cache_write_tokens": data.get("gen_ai.usage.input_tokens.cache_write"),
            "output_reasoning_tokens": data.get("gen_ai.usage.output_tokens.reasoning"),
        }
        usage = Usage(**{k: v for k, v in counts.items() if v is not None})
        # The model that answered; when genai-prices does not know it, the one asked for.
        for key in ("gen_ai.response.model", "gen_ai.request.model"):
            try:
                price = calc_price(
                    usage,
                    data[key],
                    provider_id=data["gen_ai.system"],
                    genai_request_timestamp=datetime.fromtimestamp(start, tz=timezone.utc),
                )
            except LookupError:
                continue
            total = (total or Decimal(0)) + price.total_price
            break
    return total


def _sum(calls: list[dict[str, Any]], key: str) -> int:
    return sum(int(s["data"].get(key) or 0) for s in calls)


def test_a_request_carries_its_llm_calls_tokens_and_cost_with_its_user(
    inbox: Inbox, fresh: None, llm: LocalLLM
) -> None:
    from fastapi import FastAPI

    _init(inbox)
    chat = openai.OpenAI(base_url=llm.openai_base_url, api_key="sk-local")
    claude = anthropic.Anthropic(base_url=llm.anthropic_base_url, api_key="sk-ant-local")
    app = FastAPI()

    @app.get("/answers/{question_id}")
    def answer(question_id: int) -> dict[str, str]:
        otel_sentry.set_user({"id": "u-42"})
        chat.chat.completions.create(model="gpt-4o-mini", messages=_messages())
        stream = chat.chat.completions.create(
            model="gpt-4o",
            messages=_messages(),
            stream=True,
            stream_options={"include_usage": True},
        )
        for _ in stream:
            pass
        claude.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=_messages())
        # An agent run may report its calls' usage again: only the calls count.
        with agent_span("planner", provider="openai", request_model="gpt-4o-mini") as agent:
            chat.chat.completions.create(model="gpt-4o-mini", messages=_messages())
            with tool_span("lookup", call_id="call_1"):
                pass
            agent.set_usage(input_tokens=5_000, output_tokens=5_000)
        return {"answer": "ok"}

    with UvicornThread(app) as server:
        assert server.request("GET", "/answers/7") == 200
    txn = _transaction(inbox, "GET /answers/{question_id}")
    calls = _model_calls(txn)
    assert len(calls) == 4  # three OpenAI calls (one streamed), one Anthropic call
    [agent] = [s for s in txn["spans"] if s["op"] == "gen_ai.invoke_agent"]
    assert agent["data"]["gen_ai.usage.input_tokens"] == 5_000

    data = txn["contexts"]["trace"]["data"]
    assert data["otel_sentry.llm.calls"] == 4
    for total, per_call in _SUMS.items():
        assert data[total] == _sum(calls, per_call), total
    assert data["otel_sentry.llm.input_tokens.cached"] > 0
    assert data["otel_sentry.llm.output_tokens.reasoning"] > 0
    expected = _genai_prices_cost([(s["data"], s["start_timestamp"]) for s in calls])
    assert expected is not None and expected > 0
    assert data[COST] == pytest.approx(float(expected), rel=1e-9)
    assert "otel_sentry.llm.calls.unpriced" not in data
    # Searchable and summable in Discover, on the transaction that carries the user.
    measurements = txn["measurements"]
    assert measurements["llm_calls"] == {"value": 4, "unit": "none"}
    assert measurements["llm_input_tokens"]["value"] == data["otel_sentry.llm.input_tokens"]
    assert measurements["llm_output_tokens"]["value"] == data["otel_sentry.llm.output_tokens"]
    assert measurements["llm_total_tokens"]["value"] == data["otel_sentry.llm.total_tokens"]
    assert measurements["llm_cost_estimate_usd"]["value"] == pytest.approx(float(expected))
    assert txn["user"]["id"] == "u-42"
    # Sentry's AI views sum gen_ai.usage.* over spans: the root carries none of it.
    assert not any(key.startswith("gen_ai.") for key in data)
    raw = b"".join(item.payload for item in inbox.items())
    assert PROMPT.encode() not in raw
    assert inbox.problems == []


def test_a_model_without_a_price_gets_token_totals_and_no_cost(
    inbox: Inbox, fresh: None, llm: LocalLLM
) -> None:
    _init(inbox)
    chat = openai.OpenAI(base_url=llm.openai_base_url, api_key="sk-local")
    with trace.get_tracer("test").start_as_current_span("offline job"):
        chat.chat.completions.create(model="local-llama-9000", messages=_messages())
        with llm_span("chat", provider="in-house", request_model="gpt-4o-mini") as call:
            call.set_usage(input_tokens=11, output_tokens=7)
    txn = _transaction(inbox, "offline job")
    calls = _model_calls(txn)
    assert len(calls) == 2
    assert _genai_prices_cost([(s["data"], s["start_timestamp"]) for s in calls]) is None
    data = txn["contexts"]["trace"]["data"]
    for total, per_call in _SUMS.items():
        assert data[total] == _sum(calls, per_call), total
    assert data["otel_sentry.llm.calls.unpriced"] == 2
    assert COST not in data
    assert "llm_cost_estimate_usd" not in txn["measurements"]
    assert txn["measurements"]["llm_total_tokens"]["value"] == _sum(
        calls, "gen_ai.usage.total_tokens"
    )


def test_nested_model_calls_count_once(inbox: Inbox, fresh: None, llm: LocalLLM) -> None:
    _init(inbox)
    chat = openai.OpenAI(base_url=llm.openai_base_url, api_key="sk-local")
    tracer = trace.get_tracer("test")
    # A framework's own span around the SDK call, with the SDK's usage again.
    with (
        tracer.start_as_current_span("framework"),
        llm_span("chat", provider="openai", request_model="gpt-4o-mini") as outer,
    ):
        with tracer.start_as_current_span("retry loop"):
            reply = chat.chat.completions.create(model="gpt-4o-mini", messages=_messages())
        assert reply.usage is not None
        outer.set_usage(
            input_tokens=reply.usage.prompt_tokens, output_tokens=reply.usage.completion_tokens
        )
    txn = _transaction(inbox, "framework")
    [call] = _model_calls(txn)
    assert len([s for s in txn["spans"] if s["op"] == "gen_ai.chat"]) == 2
    data = txn["contexts"]["trace"]["data"]
    assert data["otel_sentry.llm.calls"] == 1
    for total, per_call in _SUMS.items():
        assert data[total] == _sum([call], per_call), total
    expected = _genai_prices_cost([(call["data"], call["start_timestamp"])])
    assert expected is not None
    assert data[COST] == pytest.approx(float(expected), rel=1e-9)


def test_totals_reach_otlp_backends_as_root_span_attributes(
    inbox: Inbox, otlp_inbox: Inbox, fresh: None, llm: LocalLLM
) -> None:
    _init(inbox, export="both", otlp_endpoint=f"{otlp_inbox.url}/v1/traces")
    chat = openai.OpenAI(base_url=llm.openai_base_url, api_key="sk-local")
    claude = anthropic.Anthropic(base_url=llm.anthropic_base_url, api_key="sk-ant-local")
    with trace.get_tracer("test").start_as_current_span("otlp job"):
        otel_sentry.set_user({"id": "u-7"})
        chat.chat.completions.create(model="gpt-4o-mini", messages=_messages())
        claude.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=_messages())
    otel_sentry.flush(5)
    assert otlp_inbox.wait_for(lambda i: any(s["name"] == "otlp job" for s in i.otlp_spans()), 10)
    spans = otlp_inbox.otlp_spans()
    [root] = [s for s in spans if s["name"] == "otlp job"]
    calls = [
        s
        for s in spans
        if s["trace_id"] == root["trace_id"] and "gen_ai.usage.input_tokens" in s["attributes"]
    ]
    assert len(calls) == 2
    attrs = root["attributes"]
    conventional = {
        "otel_sentry.llm.input_tokens": "gen_ai.usage.input_tokens",
        "otel_sentry.llm.output_tokens": "gen_ai.usage.output_tokens",
        "otel_sentry.llm.input_tokens.cached": "gen_ai.usage.cache_read.input_tokens",
        "otel_sentry.llm.output_tokens.reasoning": "gen_ai.usage.reasoning.output_tokens",
    }
    for total, per_call in conventional.items():
        assert attrs[total] == sum(int(s["attributes"].get(per_call) or 0) for s in calls)
    assert attrs["otel_sentry.llm.total_tokens"] == (
        attrs["otel_sentry.llm.input_tokens"] + attrs["otel_sentry.llm.output_tokens"]
    )
    # The same prices from the conventional names, as another backend would see them.
    expected = _genai_prices_cost(
        [
            (
                {
                    "gen_ai.usage.input_tokens": a.get("gen_ai.usage.input_tokens"),
                    "gen_ai.usage.output_tokens": a.get("gen_ai.usage.output_tokens"),
                    "gen_ai.usage.input_tokens.cached": a.get(
                        "gen_ai.usage.cache_read.input_tokens"
                    ),
                    "gen_ai.usage.input_tokens.cache_write": a.get(
                        "gen_ai.usage.cache_write.input_tokens"
                    ),
                    "gen_ai.usage.output_tokens.reasoning": a.get(
                        "gen_ai.usage.reasoning.output_tokens"
                    ),
                    "gen_ai.response.model": a.get("gen_ai.response.model"),
                    "gen_ai.request.model": a.get("gen_ai.request.model"),
                    "gen_ai.system": a["gen_ai.provider.name"],
                },
                s["start_time_unix_nano"] / 1e9,
            )
            for s in calls
            for a in [s["attributes"]]
        ]
    )
    assert expected is not None
    assert attrs[COST] == pytest.approx(float(expected), rel=1e-9)
    assert attrs["enduser.id"] == "u-7"
    # Sentry's transaction got the same numbers.
    data = _transaction(inbox, "otlp job")["contexts"]["trace"]["data"]
    assert {k: data[k] for k in (*_SUMS, COST)} == {k: attrs[k] for k in (*_SUMS, COST)}
