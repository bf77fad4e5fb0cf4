"""otel_sentry/collector/agent.yaml run for real: the FastAPI example exports OTLP to it, and
what arrives at the two OTLP backends (a "Sentry" inbox on Sentry's OTLP path with
x-sentry-auth, and a plain OTLP inbox) and on the Prometheus endpoint is what a user of the
config would see."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_sentry.inbox import Inbox
from tests.support.servers import free_port

from .process import (
    REPO,
    SENTRY_KEY,
    Collector,
    collector_env,
    otlp_attributes,
    otlp_span,
    post_spans,
)

pytestmark = pytest.mark.integration

SERVICE = "collector-example"
# Secrets the app puts on spans; they must reach neither backend.
QUERY_CANARY = "qs-canary-3b1f9e"
HEADER_CANARY = "hdr-canary-77c2d4"


@pytest.fixture
def sentry() -> Iterator[Inbox]:
    with Inbox(port=0, public_key=SENTRY_KEY) as inbox:
        yield inbox


@pytest.fixture
def backend() -> Iterator[Inbox]:
    with Inbox(port=0) as inbox:
        yield inbox


@pytest.fixture
def agent(otelcol: Path, sentry: Inbox, backend: Inbox) -> Iterator[Collector]:
    env = {
        "SENTRY_OTLP_ENDPOINT": f"{sentry.url}/api/7/integration/otlp",
        "SENTRY_PUBLIC_KEY": SENTRY_KEY,
        "OTLP_BACKEND_ENDPOINT": backend.url,
        "COLLECTOR_SPANMETRICS_FLUSH_INTERVAL": "1s",
    }
    with Collector(otelcol, "agent.yaml", env) as collector:
        yield collector


class ExampleApp:
    """examples/fastapi_app under uvicorn in its own process, configured only by environment."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ExampleApp:
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", "examples.fastapi_app.main:app"),
                *("--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"),
            ],
            cwd=REPO,
            env=collector_env(self.env),
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the example app exited during startup"
            try:
                if self.get("/health")[0] == 200:
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the example app did not answer /health within 30 s")

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                return int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def __exit__(self, *exc: object) -> None:
        # SIGTERM: otel_sentry flushes the OTLP batch before uvicorn exits.
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _server_span(spans: list[dict[str, Any]], name: str) -> dict[str, Any]:
    matches = [s for s in spans if s["name"] == name and s["kind"] == "SERVER"]
    assert matches, f"no server span {name!r} among {[s['name'] for s in spans]}"
    return matches[0]


def _wait_for_span(inbox: Inbox, name: str, timeout: float = 20) -> list[dict[str, Any]]:
    def arrived(box: Inbox) -> bool:
        return any(s["name"] == name for s in box.otlp_spans())

    assert inbox.wait_for(arrived, timeout), (
        f"no span {name!r} within {timeout:g}s; the inbox received {inbox.counts.summary()}"
    )
    return inbox.otlp_spans()


def test_spans_from_the_example_reach_both_backends_with_secrets_masked(
    agent: Collector, sentry: Inbox, backend: Inbox
) -> None:
    app_env = {
        "OTEL_SENTRY_EXPORT": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": agent.otlp_http_url,
        "OTEL_SERVICE_NAME": SERVICE,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        # The FastAPI instrumentation records these request headers as span attributes.
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "authorization,x-request-id",
    }
    with ExampleApp(app_env) as app:
        status, _ = app.get(
            f"/items/1?token={QUERY_CANARY}&page=2",
            headers={"Authorization": f"Bearer {HEADER_CANARY}", "X-Request-Id": "req-visible-1"},
        )
        assert status == 200
        assert app.get("/items/9")[0] == 404

    name = "GET /items/{item_id}"
    for inbox in (sentry, backend):
        spans = _wait_for_span(inbox, name)
        server = _server_span(spans, name)
        attributes = server["attributes"]
        assert server["resource"]["service.name"] == SERVICE
        # The neighbours of the secrets arrive unchanged...
        assert attributes["http.request.header.x_request_id"] == ["req-visible-1"]
        assert attributes["http.route"] == "/items/{item_id}"
        url = attributes.get("url.full") or attributes["http.url"]
        assert url.endswith("/items/1?****&page=2"), url
        # ...the secrets themselves nowhere, in no attribute of any span. `****` is the
        # collector's mask (otel-sentry's own scrubber writes [Filtered]).
        assert attributes["http.request.header.authorization"] == "****"
        assert QUERY_CANARY not in json.dumps(spans), agent.log()
        assert HEADER_CANARY not in json.dumps(spans), agent.log()

    assert "deprecated" not in agent.log(), agent.log()
    sentry_paths = {s["path"] for s in sentry.otlp_spans()}
    assert sentry_paths == {"/api/7/integration/otlp/v1/traces"}
    assert sentry.counts.rejected == {}, sentry.counts.summary()
    assert {s["path"] for s in backend.otlp_spans()} == {"/v1/traces"}
    # Both backends saw the same spans.
    assert {s["span_id"] for s in sentry.otlp_spans()} == {
        s["span_id"] for s in backend.otlp_spans()
    }


def test_span_metrics_appear_on_the_prometheus_endpoint(agent: Collector) -> None:
    now = time.time_ns()
    post_spans(
        agent,
        [otlp_span("GET /orders/{id}", now, now + 42_000_000, route="/orders/{id}")],
        service=f"{SERVICE}-metrics",
    )
    wanted = (f'service_name="{SERVICE}-metrics"', 'span_name="GET /orders/{id}"')
    deadline = time.monotonic() + 20
    lines: list[str] = []
    while time.monotonic() < deadline:
        with urllib.request.urlopen(agent.prometheus_url, timeout=5) as response:
            lines = response.read().decode().splitlines()
        calls = [
            line
            for line in lines
            if line.startswith("traces_span_metrics_calls_total{")
            and all(w in line for w in wanted)
        ]
        # A new series may first be served at 0 (its start), then at its count.
        if calls and calls[0].endswith(" 1"):
            assert 'http_route="/orders/{id}"' in calls[0]
            assert any(
                line.startswith("traces_span_metrics_duration_milliseconds_bucket{")
                and all(w in line for w in wanted)
                for line in lines
            )
            return
        time.sleep(0.5)
    metric_names = sorted({line.split("{")[0] for line in lines if not line.startswith("#")})
    pytest.fail(f"no span metrics for {wanted} counting 1 within 20 s; metrics: {metric_names}")


def test_secrets_from_any_otlp_sender_are_masked(
    agent: Collector, sentry: Inbox, backend: Inbox
) -> None:
    """Not only otel-sentry: whatever sends OTLP to the agent gets the same net."""
    now = time.time_ns()
    secret = "raw-canary-5e0a1c"
    span = otlp_span("SELECT shop", now, now + 5_000_000, kind=3)  # CLIENT
    span["attributes"] += otlp_attributes(
        {
            "db.system": "postgresql",
            "db.statement": f"SELECT id FROM users WHERE email = '{secret}@example.com'",
            "url.full": f"https://api.example.com/v1/items?api_key={secret}&page=3",
            "http.request.header.cookie": f"session={secret}",
            "user.password": secret,
            "message": f"retrying with Bearer {secret}",
            "peer.service": "shop-db",
        }
    )
    post_spans(agent, [span], service=SERVICE)
    for inbox in (sentry, backend):
        spans = _wait_for_span(inbox, "SELECT shop")
        attributes = next(s for s in spans if s["name"] == "SELECT shop")["attributes"]
        assert secret not in json.dumps(spans), attributes
        assert attributes["peer.service"] == "shop-db"
        assert attributes["db.statement"].startswith("SELECT id FROM users WHERE email = ")
        assert attributes["url.full"].startswith("https://api.example.com/v1/items?")
        assert attributes["url.full"].endswith("&page=3")
        assert attributes["http.request.header.cookie"] == "****"
        assert attributes["user.password"] == "****"
        assert attributes["message"].startswith("retrying with ")
