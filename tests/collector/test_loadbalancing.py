"""The load-balanced tier run for real: two agents (agent-loadbalancing.yaml), standing for two
services, route spans by trace id to two gateways (gateway.yaml with gateway-auth.yaml: TLS and a
bearer token), whose tail sampling sees whole traces and exports to a "Sentry" inbox (each
gateway on a project of its own, so the path tells which gateway sent a span) and a plain OTLP
inbox. What a user would see: where each trace arrived, whole or not, kept or not.
"""

from __future__ import annotations

import json
import re
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from otel_sentry._internal.sentry.keep_errors import KEEP_ATTRIBUTE
from otel_sentry.inbox import Inbox

from .process import (
    CONFIGS,
    SENTRY_KEY,
    Collector,
    collector_env,
    otlp_span,
    post_spans,
    run_binary,
)

pytestmark = pytest.mark.integration

AGENT = "agent-loadbalancing.yaml"
GATEWAY = ("gateway.yaml", "gateway-auth.yaml")
TOKEN = "tier-token-0f3a9c27d1"
# Spans of one trace come through two agents, each batching for up to 1 s: the gateways wait
# this long after a trace's first span (and after its root) before deciding.
DECISION_WAIT = "3s"
# Enough traces that both gateways get some (all 16 on one: 2 in 65536).
MANY = 16
# The tail sampling processor's count of its decisions (label sampled="true" or "false").
DROP_COUNTER = "otelcol_processor_tail_sampling_global_count_traces_sampled"
# Where the "Sentry" inbox sees each gateway's spans arrive (gateway n exports to project n).
GATEWAY_PATHS = {f"/api/{n}/integration/otlp/v1/traces" for n in (1, 2)}

Trace = tuple[dict[str, Any], dict[str, Any]]


@dataclass
class Pki:
    """A CA made for this module, the gateways' certificate and an agent's client certificate."""

    ca_file: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str

    def context(self, *, client_cert: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        if client_cert:
            context.load_cert_chain(self.client_cert, self.client_key)
        return context


@dataclass
class Tier:
    agents: tuple[Collector, Collector]
    gateways: tuple[Collector, Collector]
    sentry: Inbox
    backend: Inbox
    pki: Pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("tier-pki")
    ca = trustme.CA(organization_name="otel-sentry tier tests")
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("agent.otel-sentry.test")
    paths = {name: str(folder / f"{name}.pem") for name in ("ca", "sc", "sk", "cc", "ck")}
    ca.cert_pem.write_to_path(paths["ca"])
    for cert, key, leaf in (("sc", "sk", server), ("cc", "ck", client)):
        for i, blob in enumerate(leaf.cert_chain_pems):
            blob.write_to_path(paths[cert], append=i > 0)
        leaf.private_key_pem.write_to_path(paths[key])
    return Pki(paths["ca"], paths["sc"], paths["sk"], paths["cc"], paths["ck"])


def _gateway_env(sentry: Inbox, backend: Inbox, project: int, pki: Pki) -> dict[str, str]:
    return {
        "SENTRY_OTLP_ENDPOINT": f"{sentry.url}/api/{project}/integration/otlp",
        "SENTRY_PUBLIC_KEY": SENTRY_KEY,
        "OTLP_BACKEND_ENDPOINT": backend.url,
        # Only errors, slow traces and otel-sentry's flagged ones: none of the rest.
        "TAIL_SAMPLING_PERCENTAGE": "0",
        "TAIL_SAMPLING_SLOW_MS": "1000",
        "TAIL_SAMPLING_DECISION_WAIT": DECISION_WAIT,
        "TAIL_SAMPLING_WAIT_AFTER_ROOT": DECISION_WAIT,
        "COLLECTOR_GATEWAY_TOKEN": TOKEN,
        "COLLECTOR_GATEWAY_CERT_FILE": pki.server_cert,
        "COLLECTOR_GATEWAY_KEY_FILE": pki.server_key,
    }


def _agent_env(gateways: tuple[Collector, ...], pki: Pki, token: str = TOKEN) -> dict[str, str]:
    return {
        "COLLECTOR_GATEWAYS": ",".join(f"127.0.0.1:{g.otlp_grpc_port}" for g in gateways),
        "COLLECTOR_GATEWAY_TOKEN": token,
        "COLLECTOR_GATEWAY_CA_FILE": pki.ca_file,
    }


@pytest.fixture(scope="module")
def tier(otelcol: Path, pki: Pki) -> Iterator[Tier]:
    with ExitStack() as stack:
        sentry = stack.enter_context(Inbox(port=0, public_key=SENTRY_KEY))
        backend = stack.enter_context(Inbox(port=0))
        first, second = (
            stack.enter_context(Collector(otelcol, GATEWAY, _gateway_env(sentry, backend, n, pki)))
            for n in (1, 2)
        )
        gateways = (first, second)
        a, b = (
            stack.enter_context(Collector(otelcol, AGENT, _agent_env(gateways, pki)))
            for _ in range(2)
        )
        yield Tier((a, b), gateways, sentry, backend, pki)


def _trace(*, error: bool = False, keep: bool = False) -> Trace:
    """A fast root span (checkout) and its child (payments), of one trace; ok unless told."""
    now = time.time_ns()
    root = otlp_span("POST /checkout", now, now + 30_000_000)
    child = otlp_span("POST /charge", now + 5_000_000, now + 25_000_000, error=error)
    child["traceId"], child["parentSpanId"] = root["traceId"], root["spanId"]
    if keep:
        child["attributes"].append({"key": KEEP_ATTRIBUTE, "value": {"boolValue": True}})
    return root, child


def _send(tier: Tier, traces: list[Trace]) -> None:
    """Each trace through both agents: its root from checkout's, its child from payments'."""
    post_spans(tier.agents[0], [root for root, _ in traces], service="checkout")
    post_spans(tier.agents[1], [child for _, child in traces], service="payments")


def _span_ids(traces: list[Trace]) -> dict[str, set[str]]:
    return {root["traceId"]: {root["spanId"], child["spanId"]} for root, child in traces}


def _wait_for(tier: Tier, traces: list[Trace], timeout: float = 30) -> None:
    """Until every span of ``traces`` is at both backends; fails with what arrived."""
    wanted = {s for ids in _span_ids(traces).values() for s in ids}
    for inbox in (tier.sentry, tier.backend):
        arrived = inbox.wait_for(
            lambda box: wanted <= {s["span_id"] for s in box.otlp_spans()}, timeout
        )
        logs = (c.log()[-2000:] for c in (*tier.agents, *tier.gateways))
        assert arrived, (inbox.counts.summary(), *logs)


def _gateway_of(tier: Tier, trace_id: str) -> set[str]:
    """The Sentry paths (one per gateway) that spans of ``trace_id`` came in on."""
    return {s["path"] for s in tier.sentry.otlp_spans() if s["trace_id"] == trace_id}


def _arrived(inbox: Inbox, traces: list[Trace]) -> list[dict[str, Any]]:
    trace_ids = set(_span_ids(traces))
    return [s for s in inbox.otlp_spans() if s["trace_id"] in trace_ids]


def _post(
    gateway: Collector,
    spans: list[dict[str, Any]],
    headers: dict[str, str],
    *,
    context: ssl.SSLContext | None,
) -> int:
    """OTLP/JSON to a gateway's HTTP receiver (https with ``context``); the HTTP status."""
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "x"}}]
                },
                "scopeSpans": [{"scope": {"name": "tests.collector"}, "spans": spans}],
            }
        ]
    }
    scheme = "https" if context is not None else "http"
    req = urllib.request.Request(
        f"{scheme}://127.0.0.1:{gateway.port}/v1/traces",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_trace_through_two_agents_reaches_one_gateway_whole_and_is_kept_for_its_error(
    tier: Tier,
) -> None:
    traces = [_trace(error=True) for _ in range(MANY)]
    _send(tier, traces)
    _wait_for(tier, traces)

    gateways_used: set[str] = set()
    for trace_id, span_ids in _span_ids(traces).items():
        spans = [s for s in tier.sentry.otlp_spans() if s["trace_id"] == trace_id]
        # Both services' spans, each once, from one gateway: its tail sampling saw the whole.
        assert sorted(s["span_id"] for s in spans) == sorted(span_ids)
        assert {s["resource"]["service.name"] for s in spans} == {"checkout", "payments"}
        assert len(_gateway_of(tier, trace_id)) == 1, spans
        gateways_used |= _gateway_of(tier, trace_id)
    # Routed by trace id over the pool, not all to one gateway.
    assert gateways_used == GATEWAY_PATHS
    backend = _arrived(tier.backend, traces)
    assert sorted(s["span_id"] for s in backend) == sorted(
        s["span_id"] for s in _arrived(tier.sentry, traces)
    )


def test_a_trace_otel_sentry_kept_is_kept_though_ok_and_fast(tier: Tier) -> None:
    flagged = _trace(keep=True)
    _send(tier, [flagged])
    _wait_for(tier, [flagged])
    child = next(s for s in tier.sentry.otlp_spans() if s["span_id"] == flagged[1]["spanId"])
    assert child["attributes"][KEEP_ATTRIBUTE] is True
    assert child["status_code"] == "OK"


def _traces_dropped(tier: Tier) -> int:
    """Traces the gateways' tail sampling decided not to keep so far, from their own telemetry."""
    total = 0
    for gateway in tier.gateways:
        url = f"http://127.0.0.1:{gateway.telemetry_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            lines = response.read().decode().splitlines()
        for line in lines:
            if line.startswith(DROP_COUNTER) and 'sampled="false"' in line:
                total += int(float(line.rsplit(" ", 1)[1]))
    return total


def test_a_fast_ok_trace_is_dropped(tier: Tier) -> None:
    before = _traces_dropped(tier)
    dropped = [_trace() for _ in range(4)]
    _send(tier, dropped)
    # The gateways decide: their count of traces not kept rises by these four (no other trace
    # in this module is ok and fast).
    deadline = time.monotonic() + 30
    while _traces_dropped(tier) < before + len(dropped) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _traces_dropped(tier) == before + len(dropped)
    # Error traces sent after that decision, through the same agents and both gateways, are
    # decided later and go out behind anything decided before them: once they are all in, a
    # kept ok trace would be too.
    markers = [_trace(error=True) for _ in range(MANY)]
    _send(tier, markers)
    _wait_for(tier, markers)
    assert set().union(*(_gateway_of(tier, t) for t in _span_ids(markers))) == GATEWAY_PATHS
    for inbox in (tier.sentry, tier.backend):
        assert _arrived(inbox, dropped) == []


def test_a_gateway_refuses_clients_without_the_token(tier: Tier, otelcol: Path) -> None:
    gateway = tier.gateways[0]
    https = tier.pki.context()
    refused = [_trace(error=True) for _ in range(4)]
    # Each would be kept (it has an error) had the gateway taken it.
    assert _post(gateway, list(refused[0]), {}, context=https) == 401
    assert _post(gateway, list(refused[1]), {"Authorization": "Bearer wrong"}, context=https) == 401
    assert _post(gateway, list(refused[2]), {"Authorization": TOKEN}, context=https) == 401
    # The right token in clear: the gateway speaks TLS only, so it never crosses unencrypted.
    status = _post(gateway, list(refused[3]), {"Authorization": f"Bearer {TOKEN}"}, context=None)
    assert status == 400
    # The same request with the token over TLS is taken and kept: the refusals were the token's.
    accepted = _trace(error=True)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert _post(gateway, list(accepted), bearer, context=https) == 200

    # An agent with a wrong token: the gateways refuse its spans, and it says so.
    misconfigured = _agent_env(tier.gateways, tier.pki, token="not-the-token")
    with Collector(otelcol, AGENT, misconfigured) as agent:
        stray = _trace(error=True)
        post_spans(agent, list(stray), service="stray")
        deadline = time.monotonic() + 30
        while "Unauthenticated" not in agent.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "Unauthenticated" in agent.log(), agent.log()[-3000:]

    _wait_for(tier, [accepted])
    for inbox in (tier.sentry, tier.backend):
        assert _arrived(inbox, [*refused, stray]) == []


def test_with_a_client_ca_a_gateway_takes_only_agents_with_a_certificate(
    otelcol: Path, pki: Pki
) -> None:
    with ExitStack() as stack:
        sentry = stack.enter_context(Inbox(port=0, public_key=SENTRY_KEY))
        backend = stack.enter_context(Inbox(port=0))
        env = {
            **_gateway_env(sentry, backend, 3, pki),
            "COLLECTOR_GATEWAY_CLIENT_CA_FILE": pki.ca_file,
        }
        gateway = stack.enter_context(Collector(otelcol, GATEWAY, env))
        agent_env = {
            **_agent_env((gateway,), pki),
            "COLLECTOR_AGENT_CERT_FILE": pki.client_cert,
            "COLLECTOR_AGENT_KEY_FILE": pki.client_key,
        }
        agent = stack.enter_context(Collector(otelcol, AGENT, agent_env))

        bearer = {"Authorization": f"Bearer {TOKEN}"}
        # The token alone is not enough: without a client certificate the handshake fails.
        with pytest.raises((ssl.SSLError, ConnectionError, urllib.error.URLError)):
            _post(gateway, list(_trace(error=True)), bearer, context=pki.context())
        assert _post(gateway, [], bearer, context=pki.context(client_cert=True)) == 200

        kept = _trace(error=True)
        post_spans(agent, list(kept), service="checkout")
        wanted = {kept[0]["spanId"], kept[1]["spanId"]}
        arrived = sentry.wait_for(
            lambda box: wanted <= {s["span_id"] for s in box.otlp_spans()}, timeout=30
        )
        assert arrived, (sentry.counts.summary(), agent.log()[-3000:], gateway.log()[-3000:])
        assert {s["path"] for s in sentry.otlp_spans()} == {"/api/3/integration/otlp/v1/traces"}


# -- the configs themselves --------------------------------------------------------------------

PLACEHOLDERS = {
    "SENTRY_OTLP_ENDPOINT": "https://o1.ingest.us.sentry.io/api/2/integration/otlp",
    "SENTRY_PUBLIC_KEY": "0123456789abcdef0123456789abcdef",
    "OTLP_BACKEND_ENDPOINT": "http://tempo.example:4318",
    "COLLECTOR_GATEWAYS": "gateway-1.example:4317,gateway-2.example:4317",
    "COLLECTOR_GATEWAY_TOKEN": TOKEN,
}


def _validate(otelcol: Path, configs: tuple[str, ...], env: dict[str, str]) -> str:
    """``validate`` with ``configs``; the output when it fails, "" when it passes."""
    args = [arg for name in configs for arg in ("--config", str(CONFIGS / name))]
    result = run_binary(otelcol, "validate", *args, env=collector_env(env))
    return "" if result.returncode == 0 else (result.stdout + result.stderr) or "(no output)"


def test_the_tier_configs_validate(otelcol: Path, pki: Pki) -> None:
    tls = {
        "COLLECTOR_GATEWAY_CERT_FILE": pki.server_cert,
        "COLLECTOR_GATEWAY_KEY_FILE": pki.server_key,
    }
    assert _validate(otelcol, (AGENT,), PLACEHOLDERS) == ""
    assert _validate(otelcol, GATEWAY, {**PLACEHOLDERS, **tls}) == ""


@pytest.mark.parametrize(
    ("configs", "missing", "message"),
    [
        ((AGENT,), "COLLECTOR_GATEWAYS", "no endpoints specified for the static resolver"),
        ((AGENT,), "COLLECTOR_GATEWAY_TOKEN", "no bearer token provided"),
        (GATEWAY, "COLLECTOR_GATEWAY_TOKEN", "no bearer token provided"),
        (GATEWAY, "COLLECTOR_GATEWAY_CERT_FILE", "must include both certificate and key"),
    ],
)
def test_the_tier_refuses_to_start_without_its_settings(
    otelcol: Path, pki: Pki, configs: tuple[str, ...], missing: str, message: str
) -> None:
    """No gateway list, no token, no certificate: an error naming it, never an open door."""
    env = {
        **PLACEHOLDERS,
        "COLLECTOR_GATEWAY_CERT_FILE": pki.server_cert,
        "COLLECTOR_GATEWAY_KEY_FILE": pki.server_key,
    }
    del env[missing]
    assert message in _validate(otelcol, configs, env)


def test_the_dns_resolver_the_agent_documents_is_a_working_alternative(
    otelcol: Path, tmp_path: Path
) -> None:
    text = (CONFIGS / AGENT).read_text()
    # Swap the static block for the commented dns block, as its comment tells a user to.
    text = re.sub(r"\n      static:\n        hostnames: .*\n", "\n", text)
    text, swapped = re.subn(
        r"\n      # (dns:)\n      #   (hostname: .*)\n      #   (port: .*)\n",
        r"\n      \1\n        \2\n        \3\n",
        text,
    )
    assert swapped == 1
    variant = tmp_path / AGENT
    variant.write_text(text)
    env = {**PLACEHOLDERS, "COLLECTOR_GATEWAY_DNS_NAME": "localhost"}
    result = run_binary(otelcol, "validate", "--config", str(variant), env=collector_env(env))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_agent_listens_on_loopback_unless_told_and_limits_memory_first() -> None:
    text = (CONFIGS / AGENT).read_text()
    receivers = text.split("\nreceivers:", 1)[1].split("\nprocessors:", 1)[0]
    endpoints = re.findall(r"^        endpoint: (.*)$", receivers, re.M)
    assert endpoints == [
        "${env:COLLECTOR_OTLP_GRPC_ENDPOINT:-127.0.0.1:4317}",
        "${env:COLLECTOR_OTLP_HTTP_ENDPOINT:-127.0.0.1:4318}",
    ]
    assert "      processors: [memory_limiter, batch]\n" in text
    assert "routing_key: traceID" in text


def test_the_gateway_keeps_what_otel_sentry_flags_by_the_same_attribute() -> None:
    """The in-process sampler's attribute and the gateway's policy are one name."""
    text = (CONFIGS / "gateway.yaml").read_text()
    policy = re.search(
        r"type: boolean_attribute\n\s+boolean_attribute:\n\s+key: (\S+)\n\s+value: true", text
    )
    assert policy is not None
    assert policy[1] == KEEP_ATTRIBUTE
    assert f'KEEP_ATTRIBUTE = "{KEEP_ATTRIBUTE}"' in text
