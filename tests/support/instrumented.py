"""Real traffic through the OpenTelemetry contrib instrumentations, recorded as finished spans.

Each scenario builds an SDK ``TracerProvider`` with ``SimpleSpanProcessor(InMemorySpanExporter())``,
passes it explicitly to the official instrumentor (the global provider is never touched), drives
real requests, queries and tasks, and returns the spans exactly as the instrumentation emitted
them.

The instrumentations read ``OTEL_SEMCONV_STABILITY_OPT_IN`` once per process and cache it, so
the only reliable way to get old, stable and duplicated attributes side by side is one process
per mode: ``record()`` runs this file as a script with the variable set and reads the spans
back from a JSON file.

    spans = record(["fastapi", "httpx"], semconv="http,database")
    spans["fastapi"][0].attributes["http.route"]
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util.types import AttributeValue

__all__ = ["SCENARIOS", "RecordedSpan", "record"]

SEMCONV_VARIABLE = "OTEL_SEMCONV_STABILITY_OPT_IN"


@dataclass(frozen=True)
class RecordedSpan:
    """The parts of a finished span that the Sentry translation reads."""

    name: str
    kind: SpanKind
    attributes: dict[str, AttributeValue]
    status_code: StatusCode

    @classmethod
    def from_span(cls, span: ReadableSpan) -> RecordedSpan:
        return cls(span.name, span.kind, dict(span.attributes or {}), span.status.status_code)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind.name,
            "attributes": self.attributes,
            "status_code": self.status_code.name,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RecordedSpan:
        # The SDK stores sequence attributes as tuples; JSON gives lists back.
        attributes = {
            key: tuple(value) if isinstance(value, list) else value
            for key, value in data["attributes"].items()
        }
        return cls(
            data["name"], SpanKind[data["kind"]], attributes, StatusCode[data["status_code"]]
        )


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _finished(exporter: InMemorySpanExporter) -> list[RecordedSpan]:
    return [RecordedSpan.from_span(span) for span in exporter.get_finished_spans()]


def fastapi_scenario(options: argparse.Namespace) -> list[RecordedSpan]:
    """Requests through FastAPI's ASGI app: path params, a query string, 404, 403, a crash."""
    import fastapi
    import httpx
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    app = fastapi.FastAPI()

    @app.get("/items/{item_id}")
    def read_item(item_id: int, q: str | None = None) -> dict[str, object]:
        return {"id": item_id, "q": q}

    @app.post("/items", status_code=201)
    def create_item() -> dict[str, object]:
        return {"id": 1}

    @app.get("/users/{user_id}/orders/{order_id}")
    def read_order(user_id: int, order_id: str) -> dict[str, object]:
        return {"user": user_id, "order": order_id}

    @app.get("/private")
    def private() -> None:
        raise fastapi.HTTPException(status_code=403)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    provider, exporter = _provider()
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)

    async def traffic() -> None:
        # raise_app_exceptions=False: the crash must reach the client as a 500, as in production.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            assert (await client.get("/items/42?q=secret-query")).status_code == 200
            assert (await client.post("/items")).status_code == 201
            assert (await client.get("/users/7/orders/abc-123")).status_code == 200
            assert (await client.get("/nope?token=secret-query")).status_code == 404
            assert (await client.get("/private")).status_code == 403
            assert (await client.get("/boom")).status_code == 500

    asyncio.run(traffic())
    return _finished(exporter)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers by path, so the client side sees a spread of status codes."""

    codes: ClassVar[dict[str, int]] = {"/missing": 404, "/unavailable": 503, "/private": 401}

    def _answer(self) -> None:
        code = self.codes.get(self.path.split("?")[0], 200)
        body = b"ok"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output free of access logs


@contextmanager
def _http_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def httpx_scenario(options: argparse.Namespace) -> list[RecordedSpan]:
    """httpx calls to a real HTTP server on 127.0.0.1, with query strings and credentials."""
    import httpx
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    provider, exporter = _provider()
    instrumentor = HTTPXClientInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        with _http_server() as base, httpx.Client() as client:
            client.get(f"{base}/search/items?token=secret-query&page=2")
            client.get(f"{base}/missing")
            client.post(f"{base}/unavailable", content=b"{}")
            authority = base.replace("http://", "http://alice:secret-password@")
            client.get(f"{authority}/private#fragment")
    finally:
        instrumentor.uninstrument()
    return _finished(exporter)


def sqlalchemy_scenario(options: argparse.Namespace) -> list[RecordedSpan]:
    """SQLite through SQLAlchemy: bound parameters, literals in SQL, IN lists, sqlcommenter."""
    import sqlalchemy as sa
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    provider, exporter = _provider()
    engine = sa.create_engine(f"sqlite:///{Path(options.workdir) / 'scenario.db'}")
    users = sa.Table(
        "users",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String),
    )
    # The instrumentor is a singleton: a second instrument() call would be ignored, so the
    # sqlcommenter run comes after an uninstrument().
    instrumentor = SQLAlchemyInstrumentor()
    instrumentor.instrument(engine=engine, tracer_provider=provider)
    try:
        with engine.begin() as conn:
            users.create(conn)
            conn.execute(users.insert(), [{"id": 1, "name": "alice"}, {"id": 2, "name": "bob"}])
            conn.execute(sa.text("SELECT id FROM users WHERE name = 'alice' AND id > 0"))
            conn.execute(sa.select(users).where(users.c.id.in_([1, 2, 3])))
            conn.execute(sa.text("SELECT name FROM users WHERE id = :id"), {"id": 2})
    finally:
        instrumentor.uninstrument()
        engine.dispose()
    instrumentor.instrument(
        engine=engine,
        tracer_provider=provider,
        enable_commenter=True,
        enable_attribute_commenter=True,
    )
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT count(*) FROM users WHERE name <> 'carol'"))
    finally:
        instrumentor.uninstrument()
        engine.dispose()
    return _finished(exporter)


def redis_scenario(options: argparse.Namespace) -> list[RecordedSpan]:
    """Commands and a pipeline against the real redis-server the parent started."""
    import redis
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    provider, exporter = _provider()
    instrumentor = RedisInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        client = redis.Redis(host="127.0.0.1", port=options.redis_port)
        client.set("users:42", "secret-value")
        client.get("users:42")
        client.hset("session:1", mapping={"token": "secret-token"})
        with client.pipeline() as pipe:
            pipe.set("counter", "1")
            pipe.incr("counter")
            pipe.execute()
        client.close()
    finally:
        instrumentor.uninstrument()
    return _finished(exporter)


def celery_scenario(options: argparse.Namespace) -> list[RecordedSpan]:
    """A real in-process Celery worker: producer and consumer spans, a success and a failure."""
    from celery import Celery
    from celery.contrib.testing.worker import start_worker
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    app = Celery("scenario", broker="memory://", backend="cache+memory://")
    # The memory transport polls; its 1 s default would dominate the run time.
    app.conf.broker_transport_options = {"polling_interval": 0.01}

    @app.task(name="tasks.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="tasks.fail")
    def fail() -> None:
        raise ValueError("task failed on purpose")

    provider, exporter = _provider()
    instrumentor = CeleryInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, loglevel="CRITICAL"):
            if add.delay(2, 3).get(timeout=30, interval=0.01) != 5:
                raise RuntimeError("tasks.add returned a wrong result")
            failed = fail.delay()
            try:
                failed.get(timeout=30, interval=0.01)
            except ValueError:
                pass
            else:
                raise RuntimeError("tasks.fail did not fail")
    finally:
        instrumentor.uninstrument()
    return _finished(exporter)


SCENARIOS: dict[str, Callable[[argparse.Namespace], list[RecordedSpan]]] = {
    "fastapi": fastapi_scenario,
    "httpx": httpx_scenario,
    "sqlalchemy": sqlalchemy_scenario,
    "redis": redis_scenario,
    "celery": celery_scenario,
}


def record(
    scenarios: Sequence[str],
    *,
    semconv: str = "",
    redis_port: int = 0,
    timeout: float = 180,
) -> dict[str, list[RecordedSpan]]:
    """Run ``scenarios`` in a fresh interpreter with ``OTEL_SEMCONV_STABILITY_OPT_IN=semconv``.

    ``semconv=""`` means the variable is unset: the instrumentations' default (old) attributes.
    A failing scenario raises with the child's output, so a broken setup cannot pass silently.
    """
    env = {k: v for k, v in os.environ.items() if k != SEMCONV_VARIABLE}
    if semconv:
        env[SEMCONV_VARIABLE] = semconv
    with tempfile.TemporaryDirectory(prefix="otel-scenarios-") as workdir:
        out = Path(workdir) / "spans.json"
        command = [sys.executable, __file__, "--out", str(out), "--workdir", workdir]
        command += ["--redis-port", str(redis_port), *scenarios]
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"instrumented scenarios {list(scenarios)} failed (exit {done.returncode}, "
                f"{SEMCONV_VARIABLE}={semconv!r}):\n{done.stdout[-4000:]}\n{done.stderr[-8000:]}"
            )
        recorded = json.loads(out.read_text())
    return {
        name: [RecordedSpan.from_json(span) for span in spans] for name, spans in recorded.items()
    }


def _main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--redis-port", type=int, default=0)
    parser.add_argument("scenarios", nargs="+", choices=sorted(SCENARIOS))
    options = parser.parse_args(argv)
    recorded = {
        name: [span.to_json() for span in SCENARIOS[name](options)] for name in options.scenarios
    }
    Path(options.out).write_text(json.dumps(recorded))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
