"""The otel-sentry command, run as a user would: a subprocess with environment variables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import otel_sentry
from otel_sentry.inbox import Inbox


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SENTRY_", "OTEL_"))}
    return subprocess.run(
        [sys.executable, "-m", "otel_sentry._internal.cli", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_doctor_names_a_bad_dsn_and_fails() -> None:
    result = run("doctor", env={"SENTRY_DSN": "not-a-dsn"})
    assert result.returncode != 0
    assert "SENTRY_DSN" in result.stdout + result.stderr


def test_doctor_reports_a_running_inbox_reachable(inbox: Inbox) -> None:
    result = run("doctor", env={"SENTRY_DSN": inbox.dsn(), "SENTRY_ENV": "ci"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✓ reachable" in result.stdout
    assert "env:SENTRY_ENV" in result.stdout  # where each value came from
    assert inbox.dsn().split("@")[0].split("//")[1] not in result.stdout  # the key is redacted


def test_doctor_fails_when_the_ingest_is_down(inbox: Inbox) -> None:
    dsn = inbox.dsn()
    inbox.stop()
    result = run("doctor", "--timeout", "2", env={"SENTRY_DSN": dsn})
    assert result.returncode == 1
    assert "not usable" in result.stdout


def test_doctor_fails_on_a_wrong_key(inbox: Inbox) -> None:
    dsn = inbox.dsn().replace(inbox.public_key, "f" * 32)
    result = run("doctor", env={"SENTRY_DSN": dsn})
    assert result.returncode == 1
    assert "rejected" in result.stdout


def test_test_event_sends_a_linked_error_and_transaction(inbox: Inbox) -> None:
    result = run("test-event", env={"SENTRY_DSN": inbox.dsn()})
    assert result.returncode == 0, result.stdout + result.stderr
    [event] = [i.json for i in inbox.wait_for_items("event")]
    [txn] = [i.json for i in inbox.wait_for_items("transaction")]
    assert event["exception"]["values"][-1]["type"] == "OtelSentryTestError"
    trace_id = txn["contexts"]["trace"]["trace_id"]
    assert event["contexts"]["trace"]["trace_id"] == trace_id
    assert event["event_id"] in result.stdout and trace_id in result.stdout
    assert inbox.problems == []


def test_test_event_without_dsn_fails_and_says_why() -> None:
    result = run("test-event")
    assert result.returncode == 1
    assert "no SENTRY_DSN" in result.stdout


@pytest.mark.parametrize(
    ("env", "expected"),
    [({"SENTRY_RELEASE": "api@2.0.0"}, "api@2.0.0"), ({"RENDER_GIT_COMMIT": "abc123"}, "abc123")],
)
def test_release_prints_what_the_sdk_uses(env: dict[str, str], expected: str) -> None:
    result = run("release", env=env)
    assert result.returncode == 0
    assert result.stdout.strip() == expected


def test_doctor_without_any_destination_says_nothing_is_sent_and_fails() -> None:
    result = run("doctor", "--offline")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "nothing will be sent" in result.stdout
    assert "SENTRY_DSN" in result.stdout and "OTEL_EXPORTER_OTLP_ENDPOINT" in result.stdout
    assert "✓ ok" not in result.stdout


def test_doctor_without_dsn_is_ok_when_spans_go_over_otlp() -> None:
    result = run("doctor", env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "spans go over OTLP to http://127.0.0.1:4318" in result.stdout
    assert "✓ ok" in result.stdout


@pytest.mark.parametrize(
    "command", [[], ["doctor"], ["test-event"], ["release"], ["collector"], ["inbox"]]
)
def test_help_is_plain_text(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: otel-sentry {' '.join(command)}".rstrip())
    for markup in ("``", "::", ":class:", ":meth:", ":data:"):
        assert markup not in result.stdout


SHIPPED = (
    "agent-loadbalancing.yaml",
    "agent.yaml",
    "builder.yaml",
    "gateway-auth.yaml",
    "gateway.yaml",
)
CONFIGS = Path(otel_sentry.__file__).parent / "collector"


def test_collector_lists_prints_and_writes_the_shipped_configs(tmp_path: Path) -> None:
    listing = run("collector")
    assert listing.returncode == 0, listing.stderr
    listed = [line.split()[0] for line in listing.stdout.splitlines()[: len(SHIPPED)]]
    assert listed == list(SHIPPED)
    assert "otel-sentry agent: OTLP in from the apps" in listing.stdout

    printed = run("collector", "agent")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == (CONFIGS / "agent.yaml").read_text()

    written = run("collector", "--write", str(tmp_path / "otelcol"))
    assert written.returncode == 0, written.stderr
    assert sorted(p.name for p in (tmp_path / "otelcol").iterdir()) == list(SHIPPED)
    for name in SHIPPED:
        assert (tmp_path / "otelcol" / name).read_bytes() == (CONFIGS / name).read_bytes()
        assert str(tmp_path / "otelcol" / name) in written.stdout

    (tmp_path / "otelcol" / "gateway.yaml").write_text("# mine\n")
    again = run("collector", "gateway.yaml", "--write", str(tmp_path / "otelcol"))
    assert again.returncode == 1
    assert "--force" in again.stderr
    assert (tmp_path / "otelcol" / "gateway.yaml").read_text() == "# mine\n"
    forced = run("collector", "gateway.yaml", "--write", str(tmp_path / "otelcol"), "--force")
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "otelcol" / "gateway.yaml").read_bytes() == (
        CONFIGS / "gateway.yaml"
    ).read_bytes()


def test_collector_names_the_shipped_configs_for_an_unknown_one() -> None:
    result = run("collector", "sidecar")
    assert result.returncode == 2
    assert "no Collector config named 'sidecar'" in result.stderr
    assert ", ".join(SHIPPED) in result.stderr
