"""The JavaScript side of the interop tests: Node, the pinned @sentry/* packages and Chromium.

Everything runs for real: ``node`` runs the scripts in ``tests/interop/`` with the packages that
``scripts/node-deps.sh`` installed from ``package-lock.json``, and the browser is the system's
Chromium driven by ``playwright-core`` (which never downloads a browser of its own). Something
missing is a failure whose message says how to install it, never a skipped test: CI installs all
of it, so a skip would only hide a broken install step.

    js = run_node("client.mjs", [f"{api.url}/echo"], env={"SENTRY_DSN": inbox.dsn()})
    assert js["status"] == 200
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote

import pytest

from tests.support.servers import free_port

__all__ = [
    "INTEROP_DIR",
    "ROOT",
    "ServiceProcess",
    "check_chromium",
    "check_node_packages",
    "dsc_from_baggage",
    "interop_env",
    "run_node",
    "static_site",
]

ROOT = Path(__file__).resolve().parents[2]
INTEROP_DIR = ROOT / "tests" / "interop"
MIN_NODE = (20, 19)  # @sentry/node 11 declares engines.node >= 20.19
NODE_DEPS_HINT = "Install them: `bash scripts/node-deps.sh` (runs `npm ci` in tests/interop)."
CHROMIUM_HINT = (
    "Install it: `bash scripts/system-deps.sh` (apt-get install chromium), or set CHROMIUM to "
    "a Chromium/Chrome executable."
)


# -- prerequisites -------------------------------------------------------------------------------


def check_node_packages() -> str:
    """The ``node`` executable, once Node and the pinned npm packages are known to be installed.

    Fails the test (with the fix in the message) when node is missing or too old, when
    ``tests/interop/node_modules`` is missing, or when it does not hold the versions that
    ``package.json`` pins (a stale install after a version bump).
    """
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "interop tests need Node.js >= 20.19 on PATH: `node` was not found. "
            "Install it (Debian/Ubuntu: apt-get install nodejs npm, or nodesource for 20+).",
            pytrace=False,
        )
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, timeout=10, check=False
    ).stdout.strip()
    match = re.match(r"v(\d+)\.(\d+)", version)
    if match is None or (int(match[1]), int(match[2])) < MIN_NODE:
        pytest.fail(
            f"interop tests need Node.js >= {MIN_NODE[0]}.{MIN_NODE[1]} (what @sentry/node 11 "
            f"supports); `{node} --version` says {version or 'nothing'}.",
            pytrace=False,
        )
    manifest = json.loads((INTEROP_DIR / "package.json").read_text())
    modules = INTEROP_DIR / "node_modules"
    if not modules.is_dir():
        pytest.fail(
            f"interop tests need the npm packages of {INTEROP_DIR / 'package.json'}, and "
            f"{modules} does not exist. {NODE_DEPS_HINT}",
            pytrace=False,
        )
    wrong = []
    for name, pinned in manifest["dependencies"].items():
        installed_manifest = modules / name / "package.json"
        installed = (
            json.loads(installed_manifest.read_text()).get("version")
            if installed_manifest.is_file()
            else None
        )
        if installed != pinned:
            wrong.append(f"{name}: want {pinned}, installed {installed or 'nothing'}")
    if wrong:
        pytest.fail(
            f"tests/interop/node_modules does not match package.json ({'; '.join(wrong)}). "
            f"{NODE_DEPS_HINT}",
            pytrace=False,
        )
    return node


def check_chromium() -> str:
    """The Chromium executable the browser test drives (``CHROMIUM``, else ``chromium``)."""
    configured = os.environ.get("CHROMIUM")
    found = shutil.which(configured) if configured else shutil.which("chromium")
    if found is None:
        what = f"CHROMIUM={configured!r} is not an executable" if configured else "no `chromium`"
        pytest.fail(
            f"the browser interop test needs Chromium: {what}. {CHROMIUM_HINT}", pytrace=False
        )
    return found


# -- processes -----------------------------------------------------------------------------------


def interop_env(**values: str) -> dict[str, str]:
    """The environment for a process under test: ours, without stray Sentry/OTel settings.

    A ``SENTRY_DSN`` or ``OTEL_*`` variable in the developer's shell would change what the
    services send; each test passes exactly what it asserts on.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTRY_", "OTEL_"))}
    env.update(values)
    return env


def run_node(
    script: str, args: Sequence[str], *, env: Mapping[str, str], timeout: float = 30.0
) -> dict[str, Any]:
    """Run ``node tests/interop/<script> args...`` to completion; its last stdout line as JSON."""
    node = check_node_packages()
    command = [node, script, *args]
    try:
        done = subprocess.run(
            command,
            cwd=INTEROP_DIR,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"`node {script}` did not finish within {timeout:g}s; stderr:\n{_text(exc.stderr)}"
        ) from exc
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise AssertionError(
            f"`node {script} {' '.join(args)}` exited with {done.returncode}; "
            f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
        )
    result = json.loads(lines[-1])
    if not isinstance(result, dict):
        raise AssertionError(f"`node {script}` printed {lines[-1]!r}, not a JSON object")
    if done.stderr.strip():
        result["_stderr"] = done.stderr[-4000:]
    return result


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


class ServiceProcess:
    """A service under test in its own process on 127.0.0.1 (a uvicorn app, a Node server).

    Started on a free port and probed until it accepts connections (a port picked free can be
    taken by the time the service binds it, so a service that exits during startup is retried on
    another port); stopped with SIGTERM, on which both otel-sentry and the Node server flush what
    they have not sent yet, so the inbox is complete once :meth:`stop` returns.
    """

    attempts = 3

    def __init__(
        self,
        name: str,
        command: Callable[[int], list[str]],
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_dir: Path,
        startup_timeout: float = 20.0,
    ) -> None:
        self.name = name
        self.command = command
        self.env = dict(env)
        self.cwd = cwd
        self.log_path = log_dir / f"{re.sub(r'[^a-z0-9]+', '-', name.lower())}.log"
        self.startup_timeout = startup_timeout
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, size: int = 4000) -> str:
        if self._log is not None:
            self._log.flush()
        if not self.log_path.exists():
            return "(no output)"
        return self.log_path.read_text(errors="replace")[-size:] or "(no output)"

    def start(self) -> ServiceProcess:
        for _ in range(self.attempts):
            self.port = free_port()
            if self._try_start():
                return self
        raise AssertionError(
            f"{self.name} did not accept connections on 127.0.0.1:{self.port} within "
            f"{self.startup_timeout:g}s ({self.attempts} attempts). Its output:\n{self.log_tail()}"
        )

    def _try_start(self) -> bool:
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            self.command(self.port),
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline and self._process.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        self.stop()
        return False

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait for a graceful exit (the SDKs flush on it), then kill; the exit code."""
        process, self._process = self._process, None
        code: int | None = None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            code = process.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- the browser page ----------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def static_site(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on a free 127.0.0.1 port (another origin than the API); its origin."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, name="interop-static", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- reading what the JS SDKs sent ---------------------------------------------------------------


def dsc_from_baggage(baggage: str) -> dict[str, str]:
    """The ``sentry-`` entries of a ``baggage`` header, prefix removed and URL-decoded.

    Written out here rather than taken from otel_sentry, so the tests do not check the
    propagator's parsing with itself.
    """
    dsc: dict[str, str] = {}
    for member in baggage.split(","):
        key, sep, value = member.strip().partition("=")
        if sep and key.startswith("sentry-"):
            dsc[unquote(key[len("sentry-") :])] = unquote(value.split(";", 1)[0].strip())
    return dsc
