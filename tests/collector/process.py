"""The Collector built from otel_sentry/collector/builder.yaml, run as a real process.

``collector_binary()`` builds it with ``scripts/collector-build.sh`` (cached outside the
repository); ``Collector`` runs it with one of the shipped configs, its ports taken from the
environment placeholders the configs expose, and stops it afterwards::

    with Collector(binary, "agent.yaml", {"SENTRY_OTLP_ENDPOINT": ...}) as collector:
        post_spans(collector, [otlp_span("GET /x", start, end)], service="shop")
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.servers import LocalServer, ServerError, free_port

__all__ = [
    "CONFIGS",
    "REPO",
    "SENTRY_KEY",
    "Collector",
    "collector_binary",
    "collector_env",
    "otlp_attributes",
    "otlp_span",
    "post_spans",
    "run_binary",
]

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "otel_sentry" / "collector"
# The public key of the inbox that stands in for Sentry.
SENTRY_KEY = "c011ec70c011ec70c011ec70c011ec70"


def collector_binary() -> Path:
    """Build (or reuse) the Collector; raises ServerError with the build's output on failure."""
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "collector-build.sh")],
        capture_output=True,
        text=True,
        timeout=3000,
        check=False,
    )
    if result.returncode != 0:
        raise ServerError(
            "scripts/collector-build.sh could not build the Collector (Go and the Go module "
            f"proxy are needed):\n{result.stderr[-6000:]}"
        )
    return Path(result.stdout.strip().splitlines()[-1])


def run_binary(binary: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        cwd=REPO,
    )


def collector_env(extra: dict[str, str]) -> dict[str, str]:
    """The process environment without any setting a developer's shell might leak in."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SENTRY_", "OTEL_", "OTLP_", "COLLECTOR_", "TAIL_SAMPLING_"))
    }
    return {**base, **extra}


class Collector(LocalServer):
    """One Collector process on 127.0.0.1 with ``config`` (a file in otel_sentry/collector/).

    A tuple of names is several files the Collector merges in order (``--config`` each), as
    ``("gateway.yaml", "gateway-auth.yaml")``.
    """

    name = "the Collector"
    executable = "otelcol"
    install_hint = "Build it: `make collector` (scripts/collector-build.sh)."

    def __init__(self, binary: Path, config: str | tuple[str, ...], env: dict[str, str]) -> None:
        super().__init__(startup_timeout=20.0)
        self.binary = binary
        self.configs = [
            CONFIGS / name for name in ((config,) if isinstance(config, str) else config)
        ]
        self.extra_env = env
        self.otlp_grpc_port = self.health_port = self.prometheus_port = self.telemetry_port = 0

    @property
    def otlp_http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}/metrics"

    def locate(self) -> str | None:
        return str(self.binary)

    def choose_ports(self) -> None:
        self.port, self.otlp_grpc_port = free_port(), free_port()  # port: OTLP over HTTP
        self.health_port, self.prometheus_port = free_port(), free_port()
        self.telemetry_port = free_port()

    def command(self, binary: str) -> list[str]:
        return [binary, *(arg for path in self.configs for arg in ("--config", str(path)))]

    def environment(self) -> dict[str, str]:
        local = "127.0.0.1:{}".format
        return collector_env(
            {
                "COLLECTOR_OTLP_HTTP_ENDPOINT": local(self.port),
                "COLLECTOR_OTLP_GRPC_ENDPOINT": local(self.otlp_grpc_port),
                "COLLECTOR_HEALTH_ENDPOINT": local(self.health_port),
                "COLLECTOR_PROMETHEUS_ENDPOINT": local(self.prometheus_port),
                "COLLECTOR_TELEMETRY_HOST": "127.0.0.1",
                "COLLECTOR_TELEMETRY_PORT": str(self.telemetry_port),
                **self.extra_env,
            }
        )

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/", timeout=1) as r:
                return int(r.status) == 200
        except (OSError, urllib.error.URLError):
            return False


def otlp_attributes(values: dict[str, str]) -> list[dict[str, Any]]:
    return [{"key": k, "value": {"stringValue": v}} for k, v in values.items()]


def otlp_span(
    name: str, start: int, end: int, *, kind: int = 2, route: str | None = None, error: bool = False
) -> dict[str, Any]:
    """One span of its own trace in OTLP/JSON; kind 2 is SERVER, 3 CLIENT."""
    attributes = {"http.route": route} if route else {}
    return {
        "traceId": os.urandom(16).hex(),
        "spanId": os.urandom(8).hex(),
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(end),
        "attributes": otlp_attributes(attributes),
        "status": {"code": 2 if error else 1},
    }


def post_spans(collector: Collector, spans: list[dict[str, Any]], service: str) -> None:
    """OTLP/JSON straight to the collector, as any OpenTelemetry SDK would send it."""
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": otlp_attributes({"service.name": service})},
                "scopeSpans": [{"scope": {"name": "tests.collector"}, "spans": spans}],
            }
        ]
    }
    req = urllib.request.Request(
        f"{collector.otlp_http_url}/v1/traces",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as response:
        assert response.status == 200, response.read()
