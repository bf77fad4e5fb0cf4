"""``make demo``: run the example service against the local inbox and show what Sentry would show.

1. starts the inbox (a local Sentry-compatible ingest) on a free port;
2. starts ``examples/fastapi_app`` under uvicorn with ``SENTRY_DSN`` pointing at it;
3. sends a few requests, one of which raises;
4. prints every envelope that arrived, as the inbox renders it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from otel_sentry.inbox import Inbox
from otel_sentry.inbox.view import render

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the example app exited early with code {proc.returncode}")
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"the example app did not answer at {url} within {timeout:.0f}s")


def main() -> int:
    with Inbox() as inbox:
        port = _free_port()
        env = {
            **os.environ,
            "SENTRY_DSN": inbox.dsn(),
            "SENTRY_ENVIRONMENT": "demo",
            "SENTRY_RELEASE": os.environ.get("SENTRY_RELEASE", "demo@1.0.0"),
            "OTEL_SERVICE_NAME": "example-api",
            "PYTHONPATH": str(ROOT),
        }
        # The app's own log (uvicorn prints the traceback of the 500) goes to a file, so the
        # terminal shows what Sentry would show.
        log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept open for the app's lifetime
            "w", prefix="otel-sentry-demo-", suffix=".log", delete=False
        )
        app = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "examples.fastapi_app.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(f"{base}/health", app)
            print(f"inbox at {inbox.url}; example app at {base} (its log: {log.name})\n")
            with httpx.Client(base_url=base, timeout=5) as client:
                for method, path in [
                    ("GET", "/items/1"),
                    ("GET", "/items/404"),
                    ("POST", "/checkout/1"),
                    ("POST", "/checkout/2"),  # raises CheckoutError: one issue in Sentry
                ]:
                    response = client.request(method, path)
                    print(f"  {method:<4} {path:<14} -> {response.status_code}")
            inbox.wait_for_items("event", count=1, timeout=10)
        finally:
            app.terminate()  # SIGTERM: otel-sentry flushes what is pending, then the app exits
            app.wait(timeout=15)
            log.close()
        # /health, two item reads, two checkouts: five transactions once the app has flushed.
        inbox.wait_for_items("transaction", count=5, timeout=10)
        print("\nWhat Sentry would show:\n")
        for received in inbox.envelopes:
            print(render(received))
    return 0


if __name__ == "__main__":
    sys.exit(main())
