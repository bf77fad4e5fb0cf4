"""The shipped Collector configs (otel_sentry/collector/), checked by the Collector built from
builder.yaml."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .process import CONFIGS, collector_env, run_binary

SHIPPED = ("agent.yaml", "gateway.yaml")
# With the load-balanced tier's (test_loadbalancing.py): every config the manifest serves.
ALL_CONFIGS = tuple(sorted(p.name for p in CONFIGS.glob("*.yaml") if p.name != "builder.yaml"))
PLACEHOLDERS = {
    "SENTRY_OTLP_ENDPOINT": "https://o1.ingest.us.sentry.io/api/2/integration/otlp",
    "SENTRY_PUBLIC_KEY": "0123456789abcdef0123456789abcdef",
    "OTLP_BACKEND_ENDPOINT": "http://tempo.example:4318",
}
KINDS = ("receivers", "processors", "exporters", "connectors", "extensions")


def _sections(text: str) -> dict[str, set[str]]:
    """Component types each top-level section of a config defines (``otlphttp/x`` -> otlphttp)."""
    found: dict[str, set[str]] = {kind: set() for kind in KINDS}
    section = ""
    for line in text.splitlines():
        top = re.match(r"^(\w+):", line)
        if top:
            section = top[1]
            continue
        component = re.match(r"^  ([a-z_]+)(/[\w.-]+)?:", line)
        if component and section in found:
            found[section].add(component[1])
    return found


@pytest.mark.parametrize("config", SHIPPED)
def test_the_built_collector_validates_each_shipped_config(otelcol: Path, config: str) -> None:
    result = run_binary(
        otelcol, "validate", "--config", str(CONFIGS / config), env=collector_env(PLACEHOLDERS)
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("config", SHIPPED)
def test_credentials_come_only_from_the_environment(otelcol: Path, config: str) -> None:
    text = (CONFIGS / config).read_text()
    assert 'x-sentry-auth: "sentry sentry_key=${env:SENTRY_PUBLIC_KEY}"' in text
    exporters = text.split("\nexporters:", 1)[1].split("\nservice:", 1)[0]
    for endpoint in re.findall(r"^    endpoint: (.*)$", exporters, re.M):
        assert endpoint.startswith("${env:"), endpoint
    # Without them the collector refuses to start rather than sending somewhere else.
    result = run_binary(
        otelcol, "validate", "--config", str(CONFIGS / config), env=collector_env({})
    )
    assert result.returncode != 0
    assert "endpoint" in (result.stdout + result.stderr).lower()


@pytest.mark.parametrize("config", SHIPPED)
def test_every_pipeline_limits_memory_first_and_batches_last(config: str) -> None:
    chains = re.findall(r"^      processors: \[(.*)\]$", (CONFIGS / config).read_text(), re.M)
    assert chains
    for chain in chains:
        processors = [p.strip() for p in chain.split(",")]
        assert processors[0] == "memory_limiter" and processors[-1] == "batch", processors


def test_the_manifest_builds_exactly_the_components_the_configs_use(otelcol: Path) -> None:
    used: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for config in ALL_CONFIGS:
        for kind, names in _sections((CONFIGS / config).read_text()).items():
            used[kind] |= names
    listing = run_binary(otelcol, "components", env=collector_env({}))
    assert listing.returncode == 0, listing.stderr
    built: dict[str, set[str]] = {kind: set() for kind in KINDS}
    section = ""
    for line in listing.stdout.splitlines():
        top = re.match(r"^(\w+):", line)
        if top:
            section = top[1]
        name = re.match(r"^\s+- name: (\S+)", line)
        if name and section in built:
            built[section].add(name[1])
    assert built == used


def test_the_manifest_pins_one_collector_release() -> None:
    manifest = (CONFIGS / "builder.yaml").read_text()
    release = re.search(r"^  version: (\S+)$", manifest, re.M)
    assert release is not None
    modules = re.findall(r"gomod: (\S+) (v\S+)", manifest)
    components = [(m, v) for m, v in modules if "/confmap/provider/" not in m]
    assert components
    assert {v for _, v in components} == {f"v{release[1]}"}
    assert len({v for m, v in modules if "/confmap/provider/" in m}) == 1
