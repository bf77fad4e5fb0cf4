"""Canary secrets planted everywhere a real request can carry them; none may leave the process.

The example FastAPI app runs under uvicorn with errors and transactions going to one inbox and
the same spans going over OTLP to a second one. Unique secrets ride in request headers, cookies,
the query string, a JSON body, an exception message, local variables (sentry_sdk sends frame
variables by default), span attributes and an LLM prompt and completion. Every byte that
reached either inbox is searched: no canary may be there, while the text around each canary
must be.
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import Request

import otel_sentry
from otel_sentry.inbox import Inbox
from tests.integration.test_bridge import _Uvicorn

pytestmark = pytest.mark.integration


def _canary(name: str) -> str:
    return f"canary{name}{secrets.token_hex(8)}"


CANARIES = {
    name: _canary(name)
    for name in (
        "bearer", "apikey", "cookie", "query", "card", "password", "message", "local",
        "spanattr", "spanurl", "spantext", "prompt", "completion",
    )
}  # fmt: skip
CARD = "4111111111111111"  # Luhn-valid test number, a canary of its own shape


class PaymentRefusedError(RuntimeError):
    pass


def _add_routes(app: Any) -> None:
    from opentelemetry import trace

    from otel_sentry.instrument.llm import llm_span

    async def pay(request: Request) -> None:
        payload = await request.json()  # frame variable: the whole body
        api_secret = CANARIES["local"]  # frame variable with a secret name
        span = trace.get_current_span()
        span.set_attribute("app.db_password", CANARIES["spanattr"])
        span.set_attribute("app.callback", f"https://hook:{CANARIES['spanurl']}@hooks.local/cb")
        span.set_attribute("app.note", f"user=ada token={CANARIES['spantext']}")
        assert payload and api_secret
        with llm_span(provider="openai", request_model="gpt-4o") as call:
            call.record_content(
                input_messages=[
                    {
                        "role": "user",
                        "content": f"summarize order for ada, db password={CANARIES['prompt']}",
                    }
                ],
                output_messages=[
                    {
                        "role": "assistant",
                        "content": f"use key sk-proj-{CANARIES['completion']} now",
                    }
                ],
            )
        raise PaymentRefusedError(f"gateway refused api_key={CANARIES['message']} item=widget")

    app.add_api_route("/canary/pay", pay, methods=["POST"])


@pytest.fixture
def otlp_inbox() -> Iterator[Inbox]:
    with Inbox(port=0) as running:
        yield running


@pytest.fixture
def service(
    inbox: Inbox, otlp_inbox: Inbox, fresh: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[_Uvicorn]:
    # Headers recorded on the server span too, so they reach the span exporters.
    monkeypatch.setenv(
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",
        "authorization,x-api-key,cookie,accept",
    )
    otel_sentry.init(
        dsn=inbox.dsn(),
        environment="test",
        release="canary@1",
        export="both",
        otlp_endpoint=f"{otlp_inbox.url}/v1/traces",
        instrument=("fastapi",),
        capture_llm_content=True,
    )
    from examples.fastapi_app.main import app

    _add_routes(app)
    with _Uvicorn(app) as server:
        yield server


def _post(server: _Uvicorn, path: str, body: dict[str, Any], headers: dict[str, str]) -> int:
    req = urllib.request.Request(
        f"http://127.0.0.1:{server.port}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _raw(received: Any) -> bytes:
    """An envelope as it arrived (decompressed): request headers, envelope header, items."""
    envelope = received.envelope
    parts = [json.dumps(received.headers).encode(), json.dumps(envelope.headers).encode()]
    for item in envelope.items:
        parts += [json.dumps(item.headers).encode(), item.payload]
    return b"\n".join(parts)


def test_no_canary_reaches_either_inbox(service: _Uvicorn, inbox: Inbox, otlp_inbox: Inbox) -> None:
    status = _post(
        service,
        f"/canary/pay?code=ok&token={CANARIES['query']}",
        {
            "item": "widget",
            "quantity": 2,
            "card_number": CANARIES["card"],
            "card": CARD,
            "password": CANARIES["password"],
        },
        {
            "Authorization": f"Bearer {CANARIES['bearer']}",
            "X-Api-Key": CANARIES["apikey"],
            "Cookie": f"sessionid={CANARIES['cookie']}; theme=dark",
            "Accept": "application/json",
        },
    )
    assert status == 500
    otel_sentry.flush(5)
    assert inbox.wait_for(lambda i: bool(i.events()) and bool(i.transactions()), 15)
    assert otlp_inbox.wait_for(lambda i: bool(i.otlp_spans()), 15)

    sentry_bytes = b"\n".join(_raw(e) for e in inbox.envelopes).decode("utf-8", "replace")
    otlp_bytes = json.dumps([otlp_inbox.otlp_spans(), otlp_inbox.otlp_logs()])

    for where, text in (("sentry", sentry_bytes), ("otlp", otlp_bytes)):
        leaked = [name for name, value in CANARIES.items() if value in text]
        assert leaked == [], f"canaries {leaked} reached the {where} inbox"
        assert CARD not in text, f"the card number reached the {where} inbox"
        assert "[Filtered]" in text

    # The neighbours of each canary are still there.
    [error] = [e for e in inbox.events() if e.get("exception")]
    assert error["exception"]["values"][-1]["type"] == "PaymentRefusedError"
    assert error["exception"]["values"][-1]["value"] == (
        "gateway refused api_key=[Filtered] item=widget"
    )
    frame_vars = [
        f.get("vars") or {} for f in error["exception"]["values"][-1]["stacktrace"]["frames"]
    ]
    [pay_vars] = [v for v in frame_vars if "api_secret" in v]
    assert pay_vars["api_secret"] == "[Filtered]"
    assert "'widget'" in json.dumps(pay_vars["payload"]) and "quantity" in pay_vars["payload"]
    [txn] = [t for t in inbox.transactions() if t["transaction"] == "POST /canary/pay"]
    data = txn["contexts"]["trace"]["data"]
    assert data["app.db_password"] == "[Filtered]"
    assert data["app.callback"] == "https://hook:[Filtered]@hooks.local/cb"
    assert data["app.note"] == "user=ada token=[Filtered]"
    assert "code=ok&token=[Filtered]" in sentry_bytes
    for neighbour in ("hooks.local/cb", "user=ada token=[Filtered]", "code=ok&token=[Filtered]"):
        assert neighbour in otlp_bytes, neighbour
    assert "item=widget" in otlp_bytes  # the exception event on the server span
    [llm] = [s for s in txn["spans"] if s["op"].startswith("gen_ai")]
    assert "summarize order for ada, db password=[Filtered]" in llm["data"]["gen_ai.input.messages"]
    assert "use key [Filtered] now" in llm["data"]["gen_ai.output.messages"]
    assert "summarize order for ada" in otlp_bytes
    # sentry_sdk trims a long sys.argv (a long pytest command line) and Relay reports the trim.
    assert [p for p in inbox.problems if "extra.sys.argv" not in p] == []
