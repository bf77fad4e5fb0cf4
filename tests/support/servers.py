"""Real servers for tests: started on a free local port, probed until they answer, stopped after.

Tests that need Redis (and later PostgreSQL) talk to the real thing rather than a fake, so what
they assert is what a user's service would see. A server that cannot start is an error with the
fix in the message, never a skipped test.

    with RedisServer() as redis:
        client = redis_py.Redis(port=redis.port)
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, ClassVar, TypeVar

__all__ = ["LocalServer", "PostgresServer", "RedisServer", "ServerError", "free_port"]


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
        self.log_path = Path()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.run_as: str | None = None  # the user the server process runs as (None: ours)

    def locate(self) -> str | None:
        """The server executable, or None when it is not installed."""
        return shutil.which(self.executable)

    def prepare(self, binary: str) -> None:
        """One-time setup in ``self.workdir`` before the first start (e.g. initdb)."""

    def command(self, binary: str) -> list[str]:
        """The command line that starts the server on ``self.port`` in ``self.workdir``."""
        raise NotImplementedError

    def is_ready(self) -> bool:
        """Whether the server answers a real request; called until true or timed out."""
        raise NotImplementedError

    def choose_ports(self) -> None:
        """Pick this attempt's free port(s) before ``command()`` is built."""
        self.port = free_port()

    def environment(self) -> dict[str, str] | None:
        """The server's environment (None: ours)."""
        return None

    def log(self) -> str:
        """What the server printed in its current (or last) attempt."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self: _Server) -> _Server:
        binary = self.locate()
        if binary is None:
            raise ServerError(
                f"{self.name}: `{self.executable}` is not on PATH. {self.install_hint}"
            )
        self._tmp = tempfile.TemporaryDirectory(prefix=f"{self.executable}-")
        self.workdir = Path(self._tmp.name)
        try:
            self.prepare(binary)
        except Exception:
            self.stop()
            raise
        output = ""
        for _ in range(self.attempts):
            self.choose_ports()
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
        self.log_path = self.workdir / f"{self.executable}-{self.port}.log"
        self._log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            self.command(binary),
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            user=self.run_as,
            env=self.environment(),
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if self.is_ready():
                return ""
            time.sleep(0.05)
        self._terminate()
        return self.log()[-4000:] or "(no output)"

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


class PostgresServer(LocalServer):
    """A throwaway PostgreSQL cluster: ``initdb`` into a temporary directory, trust auth, no fsync.

    PostgreSQL refuses to run as root, so under root the cluster belongs to the ``postgres``
    system user (created by Debian's package). Debian keeps the binaries off PATH, under
    ``/usr/lib/postgresql/<version>/bin``.

        with PostgresServer() as pg:
            psycopg.connect(pg.url)    # postgresql://postgres@127.0.0.1:<port>/postgres
    """

    name = "PostgreSQL"
    executable = "postgres"
    install_hint = "Install it: `apt-get install -y postgresql` (Debian/Ubuntu)."
    user = "postgres"
    database = "postgres"
    _bindir = Path()

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def locate(self) -> str | None:
        found = shutil.which(self.executable)
        if found is not None:
            return found
        # The newest installed major version (sorted numerically: 9.6 < 15).
        candidates = glob.glob("/usr/lib/postgresql/*/bin/postgres")
        candidates.sort(key=lambda p: [int(x) for x in Path(p).parts[-3].split(".") if x.isdigit()])
        return candidates[-1] if candidates else None

    def _tool(self, name: str) -> str:
        return str(self._bindir / name)

    def prepare(self, binary: str) -> None:
        # initdb and pg_isready live next to the real binary, not next to a PATH symlink.
        self._bindir = Path(os.path.realpath(binary)).parent
        if os.geteuid() == 0:
            import pwd

            try:
                account = pwd.getpwnam(self.user)
            except KeyError:
                raise ServerError(
                    "PostgreSQL refuses to run as root and there is no `postgres` user to run "
                    "it as. Fix: `apt-get install -y postgresql` (creates it) or "
                    "`useradd --system postgres`."
                ) from None
            self.run_as = self.user
            os.chown(self.workdir, account.pw_uid, account.pw_gid)
        result = subprocess.run(
            [
                self._tool("initdb"),
                "--pgdata",
                str(self.workdir / "data"),
                "--username",
                self.user,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-sync",
            ],
            capture_output=True,
            user=self.run_as,
            check=False,
        )
        if result.returncode != 0:
            raise ServerError(
                f"initdb failed ({result.returncode}):\n"
                + (result.stdout + result.stderr).decode(errors="replace")[-4000:]
            )

    def command(self, binary: str) -> list[str]:
        return [
            binary,
            "-D",
            str(self.workdir / "data"),
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-k",
            str(self.workdir),
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ]

    def is_ready(self) -> bool:
        probe = [self._tool("pg_isready"), "-q", "-h", self.host, "-p", str(self.port)]
        return subprocess.run(probe, check=False).returncode == 0

    def _terminate(self) -> None:
        # SIGTERM is a "smart" shutdown that waits for every client to disconnect; SIGINT
        # rolls them back and stops at once.
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=10)
        super()._terminate()
