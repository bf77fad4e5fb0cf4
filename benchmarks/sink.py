"""The stand-in for Sentry: the project's inbox, counters only, in a process of its own.

A separate process gets the other core, as a real ingest over the network would, so the
measured process pays only for sending. The runner starts it and reads its counters through
the inbox's JSON API between setups::

    with SinkProcess() as sink:
        sink.clear()
        ...  # run a worker with --sink-dsn sink.dsn
        sink.stats()["counts"]["items"]

``python -m benchmarks.sink --port 0`` serves until terminated and prints one JSON line with
its URL and DSN. ``--tls`` serves HTTPS with a throwaway CA (``ca_file`` in that line; point
clients at it), offering HTTP/2 and HTTP/1.1 by ALPN, or only HTTP/1.1 with ``--no-http2``::

    with SinkProcess(tls=True, http2=True) as sink:
        sink.ca_file   # the CA's PEM, for ca_certs= or SSL_CERT_FILE
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import ssl
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
    parser.add_argument("--tls", action="store_true", help="HTTPS with a throwaway trustme CA")
    parser.add_argument(
        "--no-http2", action="store_true", help="with --tls: offer only http/1.1 by ALPN"
    )
    args = parser.parse_args(argv)

    from otel_sentry.inbox import Inbox

    tls: dict[str, Any] = {"tls": True, "http2": not args.no_http2} if args.tls else {}
    try:
        # Counters only and no Relay validation: the sink must keep up, and a benchmark asks
        # how much arrived, not whether it was valid (the integration tests ask that).
        inbox = Inbox(args.host, args.port, keep_payloads=False, validate=False, **tls).start()
    except TypeError as exc:
        if not tls:
            raise
        # An inbox without the TLS mode: say so on the line the runner reads, not as a traceback.
        print(json.dumps({"error": f"this inbox has no TLS mode: {exc}"}), flush=True)
        return 3
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    info = {"url": inbox.url, "dsn": inbox.dsn(), "pid": os.getpid()}
    if args.tls:
        info["ca_file"] = str(inbox.ca_file)
    print(json.dumps(info), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        inbox.stop()
    return 0


class SinkProcess:
    """Starts ``python -m benchmarks.sink`` and talks to it over its JSON API."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        env: dict[str, str] | None = None,
        tls: bool = False,
        http2: bool = True,
    ):
        """``tls``: serve HTTPS (``ca_file`` is then the CA to trust); ``http2``: with ``tls``,
        offer h2 as well as http/1.1 by ALPN."""
        self.host = host
        self.port = port
        self.env = env
        self.tls = tls
        self.http2 = http2
        self.url = ""
        self.dsn = ""
        self.ca_file: str | None = None
        self._process: subprocess.Popen[str] | None = None
        self._ssl: ssl.SSLContext | None = None

    def start(self) -> SinkProcess:
        command = [sys.executable, "-m", "benchmarks.sink", "--host", self.host]
        command += ["--port", str(self.port)]
        if self.tls:
            command.append("--tls")
            if not self.http2:
                command.append("--no-http2")
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, text=True, env=self.env, cwd=_repo_root()
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            code = self._process.wait(timeout=10)
            raise RuntimeError(f"the sink exited with code {code} before it was listening")
        info = json.loads(line)
        if "error" in info:
            self._process.wait(timeout=10)
            self._process = None
            raise RuntimeError(f"the sink could not start: {info['error']}")
        self.url, self.dsn = info["url"], info["dsn"]
        self.ca_file = info.get("ca_file")
        if self.ca_file:
            self._ssl = ssl.create_default_context(cafile=self.ca_file)
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
        with urllib.request.urlopen(request, timeout=30, context=self._ssl) as response:
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
