"""examples/fastapi_app under uvicorn, in a process of its own, configured only by environment.

app = App(inbox.dsn(), SENTRY_TRACES_SAMPLE_RATE="1.0").start()
status, seconds = app.get("POST", "/checkout/2")
app.stop()
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.servers import free_port

__all__ = ["ROOT", "App"]

ROOT = Path(__file__).resolve().parents[2]


class App:
    """examples/fastapi_app under uvicorn, as a subprocess with only environment variables."""

    def __init__(self, dsn: str, **env: str) -> None:
        self.port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SENTRY_", "OTEL_"))},
            "SENTRY_DSN": dsn,
            "SENTRY_RELEASE": "reliability@1",
            "OTEL_SENTRY_INSTRUMENT": "fastapi",
            "PYTHONPATH": str(ROOT),
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = b""

    def start(self) -> App:
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", "examples.fastapi_app.main:app"),
                *("--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"),
            ],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self._output()
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1).read()
                return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError("the app did not start within 30 s")

    def get(self, method: str, path: str) -> tuple[int, float]:
        started = time.monotonic()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            status = exc.code
        return status, time.monotonic() - started

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> float:
        """Signal the app; returns how long it took to exit."""
        assert self.proc is not None
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        return time.monotonic() - started

    def _output(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        if self.proc.poll() is not None:
            self.log += self.proc.stdout.read()
        return self.log.decode(errors="replace")[-3000:]
