"""A server command run as a real subprocess, the way a user runs it, and requests to it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


class Launched:
    """``command`` (with ``{port}`` filled in) started with only ``env`` set, stopped by SIGTERM."""

    def __init__(
        self, command: list[str], env: dict[str, str], cwd: Path = ROOT, probe: str = "/items/1"
    ) -> None:
        self.port = free_port()
        self.command = [part.format(port=self.port) for part in command]
        self.env = {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **env}
        self.cwd = cwd
        self.probe = probe
        self.process: subprocess.Popen[bytes] | None = None
        # A file, not a pipe: a server that logs more than a pipe holds would block on it.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115  (closed in stop())

    def __enter__(self) -> Launched:
        self.process = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        # Importing every installed instrumentation takes seconds on a busy machine.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command} exited:\n{self.stop()}")
            try:
                self.request("GET", self.probe, timeout=2)
                return self
            except OSError:
                time.sleep(0.2)
            except BaseException:  # a probe that answers nonsense: no server left behind
                self.stop()
                raise
        raise RuntimeError(f"{self.command} did not answer within 120 s:\n{self.stop()}")

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def request(self, method: str, path: str, timeout: float = 10) -> tuple[int, Any]:
        data = b"" if method == "POST" else None
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", method=method, data=data
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                body = response.read()
                return int(response.status), json.loads(body) if body else None
        except urllib.error.HTTPError as exc:
            return exc.code, None

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM, then the exit status once the process is gone (and its output kept)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def stop(self) -> str:
        if self._log.closed:
            return ""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait(timeout=10)
        output = self.output[-4000:]
        self._log.close()
        return output

    @property
    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")
