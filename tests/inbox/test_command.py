"""``python -m otel_sentry.inbox``: prints the DSN, serves, and exits 0 on SIGTERM."""

from __future__ import annotations

import signal
import ssl
import subprocess
import sys
from pathlib import Path

import httpx

from otel_sentry.inbox import encode_envelope
from otel_sentry.inbox.command import build_parser


def test_runs_prints_dsn_and_stops_on_sigterm(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "otel_sentry.inbox",
            "--port",
            "0",
            "--public-key",
            "f" * 32,
            "--db",
            str(tmp_path / "inbox.db"),
            "--fault-status",
            "200",
            "--fault-rate-limits",
            "60:transaction:key",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline().strip()
        assert first.startswith(f"SENTRY_DSN=http://{'f' * 32}@127.0.0.1:")
        base, _, project = first.removeprefix("SENTRY_DSN=").rpartition("/")
        url = base.replace(f"{'f' * 32}@", "")
        assert project == "1"
        body = encode_envelope(
            {"event_id": "e" * 32},
            [
                (
                    {"type": "event"},
                    {"exception": {"values": [{"type": "KeyError", "value": "'sku'"}]}},
                )
            ],
        )
        response = httpx.post(f"{url}/api/1/envelope/?sentry_key={'f' * 32}", content=body)
        assert response.status_code == 200
        assert response.headers["x-sentry-rate-limits"] == "60:transaction:key"
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "ERROR  KeyError: 'sku'" in out  # the live view
    assert "# inbox stopped: 1 envelope(s) with eventx1; faulted 1" in out


def test_tls_prints_the_ca_and_serves_http2(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_sentry.inbox", "--port", "0", "--tls", "--quiet"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = dict(process.stdout.readline().strip().split("=", 1) for _ in range(4))
        assert lines["SENTRY_DSN"].startswith("https://")
        ca_file = lines["SSL_CERT_FILE"]
        assert lines["OTEL_EXPORTER_OTLP_CERTIFICATE"] == ca_file
        url = lines["OTEL_EXPORTER_OTLP_ENDPOINT"]
        with httpx.Client(http2=True, verify=ssl.create_default_context(cafile=ca_file)) as client:
            health = client.get(f"{url}/api/_inbox/health")
        assert health.http_version == "HTTP/2"
        assert health.json()["ca_file"] == ca_file
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
    assert process.returncode == 0
    assert not Path(ca_file).exists()  # removed on exit


def test_parser_defaults() -> None:
    args = build_parser().parse_args([])
    assert (args.host, args.port, args.db, args.quiet) == ("127.0.0.1", 8969, None, False)
