"""Real servers for tests: started on a free local port, probed until they answer, stopped after.

Tests that need Redis (and later PostgreSQL) talk to the real thing rather than a fake, so what
they assert is what a user's service would see. A server that cannot start is an error with the
fix in the message, never a skipped test.

    with RedisServer() as redis:
        client = redis_py.Redis(port=redis.port)
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, ClassVar, TypeVar

__all__ = ["LocalServer", "RedisServer", "ServerError", "free_port"]


_Server = TypeVar("_Server", bound="LocalServer")


class ServerError(RuntimeError):
    """A test server could not be started; the message says why and how to fix it."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalServer:
    """One server process on 127.0.0.1, in a private working directory.

    Subclasses name the executable, build its command line and say how to tell it is ready.
    Picking a free port and then starting the server races with other processes, so a server
    that exits during startup is retried on another port a few times.
    """

    name: ClassVar[str]
    executable: ClassVar[str]
    install_hint: ClassVar[str]
    attempts: ClassVar[int] = 3

    def __init__(self, *, startup_timeout: float = 15.0) -> None:
        self.startup_timeout = startup_timeout
        self.host = "127.0.0.1"
        self.port = 0
        self.workdir = Path()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def command(self, binary: str) -> list[str]:
        """The command line that starts the server on ``self.port`` in ``self.workdir``."""
        raise NotImplementedError

    def is_ready(self) -> bool:
        """Whether the server answers a real request; called until true or timed out."""
        raise NotImplementedError

    def start(self: _Server) -> _Server:
        binary = shutil.which(self.executable)
        if binary is None:
            raise ServerError(
                f"{self.name}: `{self.executable}` is not on PATH. {self.install_hint}"
            )
        self._tmp = tempfile.TemporaryDirectory(prefix=f"{self.executable}-")
        self.workdir = Path(self._tmp.name)
        output = ""
        for _ in range(self.attempts):
            self.port = free_port()
            output = self._try_start(binary)
            if not output:
                return self
        self.stop()
        raise ServerError(
            f"{self.name} did not answer on {self.host}:{self.port} within "
            f"{self.startup_timeout:g}s ({self.attempts} attempts). Last output:\n{output}"
        )

    def _try_start(self, binary: str) -> str:
        """Start once; return "" when ready, else the process output for the error message."""
        log_path = self.workdir / f"{self.executable}-{self.port}.log"
        self._log = log_path.open("wb")
        self._process = subprocess.Popen(
            self.command(binary),
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if self.is_ready():
                return ""
            time.sleep(0.05)
        self._terminate()
        return log_path.read_text(errors="replace")[-4000:] or "(no output)"

    def _terminate(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        self._terminate()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self: _Server) -> _Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class RedisServer(LocalServer):
    """``redis-server`` with persistence off, so nothing outlives the test."""

    name = "Redis"
    executable = "redis-server"
    install_hint = "Install it: `apt-get install -y redis-server` (Debian/Ubuntu)."

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def command(self, binary: str) -> list[str]:
        return [
            binary,
            "--bind",
            self.host,
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
        ]

    def is_ready(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False
