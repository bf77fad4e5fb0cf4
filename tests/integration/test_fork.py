"""Servers and workers that fork: every child exports, and SIGTERM flushes what is pending.

``init()`` before the fork (``gunicorn --preload``, a Celery app module that initializes at
import) leaves each child with copies of the parent's export threads that do not run, its
queues and its sockets. The children must start their own, and flush on shutdown.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from otel_sentry.inbox import Inbox
from tests.integration.launched import BIN, ROOT, Launched
from tests.support.servers import RedisServer

pytestmark = pytest.mark.integration


def _env(inbox: Inbox) -> dict[str, str]:
    return {"SENTRY_DSN": inbox.dsn(), "SENTRY_RELEASE": "fork@1"}


@pytest.mark.parametrize("preload", [False, True], ids=["init-in-each-worker", "preload"])
def test_gunicorn_uvicorn_workers_all_export_and_flush_on_sigterm(
    inbox: Inbox, preload: bool
) -> None:
    command = [
        str(BIN / "gunicorn"),
        "-k",
        "uvicorn.workers.UvicornWorker",
        "-w",
        "2",
        "-b",
        "127.0.0.1:{port}",
        "--graceful-timeout",
        "20",
        *(["--preload"] if preload else []),
        "tests.support.fork_app:app",
    ]
    with Launched(command, _env(inbox)) as server:
        pids: Counter[int] = Counter()
        ids: list[int] = []
        while len(pids) < 2 or len(ids) < 40:
            item = 1000 + len(ids)  # readiness probes may be answered late: count only these
            status, body = server.request("GET", f"/items/{item}")
            assert status == 200
            pids[body["pid"]] += 1
            ids.append(item)
            assert len(ids) < 400, f"one worker served everything: {pids}"
        started = time.monotonic()
        assert server.terminate(timeout=30) == 0, server.output
        stopped_in = time.monotonic() - started
    assert stopped_in < 25

    def served(i: Inbox) -> Counter[str]:
        return Counter(
            t["request"]["url"].rsplit("/", 1)[-1]
            for t in i.transactions()
            if int(t["request"]["url"].rsplit("/", 1)[-1]) >= 1000
        )

    # Flushed before the workers exited: everything is already there.
    assert inbox.wait_for(lambda i: len(served(i)) >= len(ids), 2), (
        f"{len(served(inbox))} of {len(ids)} transactions arrived"
    )
    assert served(inbox) == Counter(str(i) for i in ids)
    by_pid = Counter(t["tags"]["worker.pid"] for t in inbox.transactions())
    assert {str(p) for p in pids} <= set(by_pid), (pids, by_pid)
    assert inbox.problems == []


def test_celery_prefork_children_export_when_init_ran_in_the_parent(
    inbox: Inbox, tmp_path: Path
) -> None:
    from celery import Celery

    with RedisServer() as redis:
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.support.fork_celery",
            "worker",
            "-P",
            "prefork",
            "-c",
            "2",
        ]
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SENTRY_", "OTEL_"))},
            **_env(inbox),
            "FORK_BROKER_URL": redis.url,
            "OTEL_SENTRY_INSTRUMENT": "celery",
        }
        log = tmp_path / "worker.log"
        with log.open("wb") as out:
            worker = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        producer = Celery("producer", broker=redis.url, backend=redis.url)
        try:
            results = [producer.send_task("fork.whoami", args=[n]) for n in range(20)]
            pids = Counter(r.get(timeout=120) for r in results)
            assert worker.pid not in pids  # run by the pool's children
            assert inbox.wait_for(lambda i: len(i.transactions()) >= 20, 15), log.read_text()
        finally:
            worker.terminate()
            worker.wait(timeout=30)
            producer.close()
    txns = inbox.transactions()
    assert len(txns) == 20
    by_pid = Counter(t["tags"]["worker.pid"] for t in txns)
    assert by_pid == Counter({str(p): n for p, n in pids.items()})
    assert inbox.problems == []
