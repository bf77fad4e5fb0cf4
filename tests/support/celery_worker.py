"""``celery worker -A tests.support.celery_app -P prefork -c 2`` as a subprocess of a test.

worker = CeleryWorker(env, tmp_path / "worker.log")
...
worker.stop()   # warm shutdown: the children flush on worker_process_shutdown
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

__all__ = ["CeleryWorker"]

_ROOT = Path(__file__).resolve().parents[2]


class CeleryWorker:
    """``celery worker`` with the prefork pool, as a subprocess; its output goes to a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        # Short on purpose: sentry_sdk reports sys.argv with every event, and Relay trims
        # lists longer than 10.
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.support.celery_app",
            "worker",
            "-P",
            "prefork",
            "-c",
            "2",
        ]
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command, cwd=_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # warm shutdown: children flush on worker_process_shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
