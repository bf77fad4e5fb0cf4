"""Canary secrets planted everywhere a real request can carry them; none may leave the process.

The example FastAPI app runs under uvicorn with errors and transactions going to one inbox and
the same spans going over OTLP to a second one. Unique secrets ride in request headers, cookies,
the query string, a JSON body, an exception message, local variables (sentry_sdk sends frame
variables by default), structlog fields (through ``configure_logging()``, to events,
breadcrumbs and Sentry Logs), span attributes and an LLM prompt and completion. A real Celery
worker (prefork, redis-server as broker) gets secrets as task arguments, positional and by
keyword, and fails with them among its locals and in its message. Every byte that reached
either inbox is searched: no canary may be there, while the text around each canary must be.
"""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import structlog
from fastapi import Request
from opentelemetry import trace

import otel_sentry
from otel_sentry._internal.log_config import FRAMEWORK_LOGGERS
from otel_sentry.inbox import Inbox
from tests.support.celery_worker import CeleryWorker
from tests.support.servers import RedisServer
from tests.support.uvicorn import UvicornThread

pytestmark = pytest.mark.integration


def _canary(name: str) -> str:
    return f"canary{name}{secrets.token_hex(8)}"


CANARIES = {
    name: _canary(name)
    for name in (
        "bearer", "apikey", "cookie", "query", "card", "password", "message", "local",
        "spanattr", "spanurl", "spantext", "prompt", "completion", "logfield", "logtext",
        "logerror",
    )
}  # fmt: skip
CARD = "4111111111111111"  # Luhn-valid test number, a canary of its own shape


class PaymentRefusedError(RuntimeError):
    pass


def _add_routes(app: Any) -> None:

    from otel_sentry._internal.instrument.llm import llm_span

    async def pay(request: Request) -> None:
        log = structlog.get_logger("shop")
        log.info("charged", card_token=CANARIES["logfield"], order=42)
        log.warning(
            "gateway said", reply=f"declined secret={CANARIES['logtext']} code=51", order=42
        )
        log.error("charge failed", api_key=CANARIES["logerror"], order=42)
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
) -> Iterator[UvicornThread]:
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
        enable_logs=True,
    )
    with _structlog_pipeline():
        from examples.fastapi_app.main import app

        _add_routes(app)
        with UvicornThread(app) as server:
            yield server


@contextmanager
def _structlog_pipeline() -> Iterator[None]:
    """``configure_logging()`` for the test, then the process-wide logging state as it was."""
    root = logging.getLogger()
    level = root.level
    frameworks = {
        name: (list(logger.handlers), logger.propagate, logger.disabled)
        for name in FRAMEWORK_LOGGERS
        for logger in [logging.getLogger(name)]
    }
    structlog_config = structlog.get_config()
    handler = otel_sentry.configure_logging(stream=io.StringIO(), renderer="json")
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        for name, (handlers, propagate, disabled) in frameworks.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.propagate, logger.disabled = propagate, disabled
        structlog.configure(**structlog_config)


def _post(server: UvicornThread, path: str, body: dict[str, Any], headers: dict[str, str]) -> int:
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


def test_no_canary_reaches_either_inbox(
    service: UvicornThread, inbox: Inbox, otlp_inbox: Inbox
) -> None:
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
    assert inbox.wait_for(lambda i: len(i.events()) >= 2 and bool(i.transactions()), 15)
    assert inbox.wait_for(lambda i: len(i.logs()) >= 3, 15)
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
    crumbs = {c.get("message"): c for c in error["breadcrumbs"]["values"]}
    assert crumbs["charged"]["data"] == {"card_token": "[Filtered]", "order": 42}
    assert crumbs["gateway said"]["data"]["reply"] == "declined secret=[Filtered] code=51"
    [logged] = [e for e in inbox.events() if e.get("logger") == "shop"]
    assert logged["contexts"]["log"] == {"api_key": "[Filtered]", "order": 42}
    logs = {entry["body"]: entry["attributes"] for entry in inbox.logs()}
    assert logs["charged"]["card_token"]["value"] == "[Filtered]"
    assert logs["charged"]["order"]["value"] == 42
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
    assert inbox.problems == []


JOB_CANARIES = {name: _canary(name) for name in ("jobkey", "jobnote", "jobkwarg")}


@pytest.fixture
def job_worker(
    inbox: Inbox, otlp_inbox: Inbox, redis_server: RedisServer, tmp_path: Path
) -> Iterator[CeleryWorker]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTRY_", "OTEL_"))}
    env.update(
        SENTRY_DSN=inbox.dsn(),
        OTEL_SENTRY_EXPORT="both",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{otlp_inbox.url}/v1/traces",
        JOBS_BROKER_URL=redis_server.url,
        OTEL_SENTRY_INSTRUMENT="celery,redis",
        OTEL_SERVICE_NAME="canary-worker",
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
    )
    running = CeleryWorker(env, tmp_path / "worker.log")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def producer(
    inbox: Inbox, otlp_inbox: Inbox, redis_server: RedisServer, fresh: None
) -> Iterator[Any]:
    otel_sentry.init(
        dsn=inbox.dsn(),
        environment="test",
        release="canary@1",
        service_name="canary-web",
        export="both",
        otlp_endpoint=f"{otlp_inbox.url}/v1/traces",
        instrument=("celery", "redis"),
    )
    from tests.support import celery_app

    # The app outlives each test that uses it: the pools an earlier one closed (and that point
    # at its broker) must not be found cached on it, before or after this one.
    _forget_broker_pools(celery_app.app)
    celery_app.app.conf.broker_url = redis_server.url
    try:
        yield celery_app
    finally:
        celery_app.app.pool.force_close_all()
        _forget_broker_pools(celery_app.app)


def _forget_broker_pools(app: Any) -> None:
    app._pool = None
    app.amqp._producer_pool = None


def test_no_job_argument_canary_reaches_either_inbox(
    producer: Any, job_worker: CeleryWorker, inbox: Inbox, otlp_inbox: Inbox
) -> None:
    # The key rides positionally (so Celery's own frames hold it in a plain list), the note and
    # a second key as keyword arguments; the failing task has all of them among its locals.
    with trace.get_tracer("canary").start_as_current_span("enqueue"):
        producer.charge_vendor.apply_async(
            args=(42, JOB_CANARIES["jobkey"]),
            kwargs={"note": f"rush for ada, token={JOB_CANARIES['jobnote']}"},
        )
        producer.charge_vendor.delay(43, api_key=JOB_CANARIES["jobkwarg"], note="standard")
    otel_sentry.flush(5)

    def failed(i: Inbox) -> bool:
        assert job_worker.alive(), job_worker.output()
        return len([e for e in i.events() if e.get("transaction") == "jobs.charge_vendor"]) >= 2

    assert inbox.wait_for(failed, 90), job_worker.output()
    job_worker.stop()  # the children flush on shutdown
    assert otlp_inbox.wait_for(
        lambda i: len([s for s in i.otlp_spans() if "charge_vendor" in s["name"]]) >= 3, 15
    ), [s["name"] for s in otlp_inbox.otlp_spans()]

    sentry_bytes = b"\n".join(_raw(e) for e in inbox.envelopes).decode("utf-8", "replace")
    otlp_bytes = json.dumps([otlp_inbox.otlp_spans(), otlp_inbox.otlp_logs()])
    for where, text in (("sentry", sentry_bytes), ("otlp", otlp_bytes)):
        leaked = [name for name, value in JOB_CANARIES.items() if value in text]
        assert leaked == [], f"canaries {leaked} reached the {where} inbox"

    # The neighbours: the issue, its message around the key, the task's other locals.
    errors = [e for e in inbox.events() if e.get("transaction") == "jobs.charge_vendor"]
    by_order: dict[str, dict[str, Any]] = {}
    for error in errors:
        exception = error["exception"]["values"][-1]
        assert exception["type"] == "VendorRejectedError"
        assert exception["value"].startswith("vendor rejected api_key=[Filtered] for order 4")
        [task_vars] = [
            f["vars"]
            for f in exception["stacktrace"]["frames"]
            if f.get("function") == "charge_vendor"
        ]
        assert task_vars["api_key"] == "[Filtered]"
        assert task_vars["vendor_secret"] == "[Filtered]"
        by_order[str(task_vars["order_id"])] = task_vars
    assert sorted(by_order) == ["42", "43"]
    assert by_order["42"]["note"] == "'rush for ada, token=[Filtered]'"
    assert by_order["43"]["note"] == "'standard'"
    assert "vendor rejected api_key=[Filtered] for order 42" in otlp_bytes
    assert [p for p in inbox.problems if "extra.sys.argv" not in p] == []
