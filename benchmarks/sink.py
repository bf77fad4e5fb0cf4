"""The stand-in for Sentry: the project's inbox, counters only, in a process of its own.

A separate process gets the other core, as a real ingest over the network would, so the
measured process pays only for sending. The runner starts it and reads its counters through
the inbox's JSON API between setups::

    with SinkProcess() as sink:
        sink.clear()
        ...  # run a worker with --sink-dsn sink.dsn
        sink.stats()["counts"]["items"]

``python -m benchmarks.sink --port 0`` serves until terminated and prints one JSON line with
its URL and DSN.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from types import FrameType, TracebackType
from typing import Any

__all__ = ["SinkProcess", "main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sink", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)

    from otel_sentry.inbox import Inbox

    # Counters only and no Relay validation: the sink must keep up, and a benchmark asks
    # how much arrived, not whether it was valid (the integration tests ask that).
    inbox = Inbox(args.host, args.port, keep_payloads=False, validate=False).start()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(json.dumps({"url": inbox.url, "dsn": inbox.dsn(), "pid": os.getpid()}), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        inbox.stop()
    return 0


class SinkProcess:
    """Starts ``python -m benchmarks.sink`` and talks to it over its JSON API."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, env: dict[str, str] | None = None):
        self.host = host
        self.port = port
        self.env = env
        self.url = ""
        self.dsn = ""
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> SinkProcess:
        command = [sys.executable, "-m", "benchmarks.sink", "--host", self.host]
        command += ["--port", str(self.port)]
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, text=True, env=self.env, cwd=_repo_root()
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            code = self._process.wait(timeout=10)
            raise RuntimeError(f"the sink exited with code {code} before it was listening")
        info = json.loads(line)
        self.url, self.dsn = info["url"], info["dsn"]
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _call(self, method: str, path: str) -> Any:
        request = urllib.request.Request(f"{self.url}/api/_inbox{path}", method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def stats(self) -> dict[str, Any]:
        """The inbox's counters: ``{"counts": {...}, "problems": [...]}``."""
        result: dict[str, Any] = self._call("GET", "/stats")
        return result

    def clear(self) -> None:
        self._call("DELETE", "/envelopes")

    def __enter__(self) -> SinkProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


if __name__ == "__main__":
    sys.exit(main())
