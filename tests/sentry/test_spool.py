"""The breaker and the spool on their own: backoff, order, bounds, files, crash recovery."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sentry_sdk.consts import DEFAULT_OPTIONS
from sentry_sdk.envelope import Envelope, Item, PayloadRef
from sentry_sdk.transport import HttpTransport

from otel_sentry._internal.sentry.spool import Breaker, Spool


def _envelope(n: int, size: int = 10) -> Envelope:
    event = {"event_id": f"{n:032x}", "type": "transaction", "pad": "x" * size}
    item = Item(payload=PayloadRef(json=event), type="transaction")
    return Envelope(headers={"event_id": event["event_id"]}, items=[item])


def _id(envelope: Envelope | None) -> int:
    assert envelope is not None
    return int(json.loads(envelope.items[0].get_bytes())["event_id"], 16)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_backs_off_doubling_and_lets_one_probe_through() -> None:
    clock = Clock()
    breaker = Breaker(base=1.0, cap=4.0, clock=clock)
    assert breaker.allow() and not breaker.open
    breaker.failure()
    assert breaker.open and not breaker.allow()
    clock.now += 1.01
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one
    breaker.failure()  # probe failed: 2 s now
    clock.now += 1.5
    assert not breaker.allow()
    clock.now += 0.6
    assert breaker.allow()
    breaker.failure()
    breaker.failure()
    breaker.failure()
    assert 3.9 < breaker.seconds_left() <= 4.0  # capped
    clock.now += 4.1
    assert breaker.allow()
    breaker.success()
    assert not breaker.open and breaker.allow() and breaker.allow()


def test_memory_spool_is_fifo_and_drops_oldest_beyond_its_bound() -> None:
    dropped: list[int] = []
    spool = Spool(max_bytes=3 * 700, on_drop=lambda e: dropped.append(_id(e)))
    for n in range(5):
        spool.put(_envelope(n, size=400))
    assert dropped == [0, 1]
    assert [_id(spool.take()) for _ in range(3)] == [2, 3, 4]
    assert spool.take() is None and spool.bytes == 0 and len(spool) == 0


def test_what_waits_in_memory_is_sent_as_it_was_and_lost_spans_are_still_counted() -> None:
    lost: list[tuple[str, int]] = []
    transport = HttpTransport({**DEFAULT_OPTIONS, "dsn": "http://key@127.0.0.1:9/1"})
    spans = [{"span_id": f"{i:016x}", "op": "db"} for i in range(3)]
    event = {"event_id": "a" * 32, "type": "transaction", "spans": spans}
    original = Envelope(
        headers={"event_id": event["event_id"]},
        items=[Item(payload=PayloadRef(json=event), type="transaction")],
    )
    spool = Spool(max_bytes=1 << 20)
    spool.put(original)
    waiting = spool.take()
    assert waiting is not None
    assert waiting.serialize() == original.serialize()  # byte for byte what would have gone
    # Dropped later (over a rate limit, out of room): its spans are still reported.
    for item in waiting.items:
        transport.record_lost_event("ratelimit_backoff", item=item)
    report = transport._fetch_pending_client_report(force=True)
    assert report is not None
    for outcome in report.payload.json["discarded_events"]:
        lost.append((outcome["category"], outcome["quantity"]))
    assert sorted(lost) == [("span", 4), ("transaction", 1)]  # 3 spans + the transaction


def test_disk_spool_keeps_order_and_bound(tmp_path: Path) -> None:
    dropped: list[int] = []
    spool = Spool(tmp_path, max_bytes=3 * 700, on_drop=lambda e: dropped.append(_id(e)))
    assert spool.on_disk
    for n in range(5):
        ticket = spool.hold(_envelope(n, size=400))
        assert ticket.path is not None and ticket.path.exists()
        spool.retry(ticket)
        assert not ticket.path.exists()  # moved from held/ to retry/
    assert dropped == [0, 1]
    assert [_id(spool.take()) for _ in range(3)] == [2, 3, 4]
    assert spool.take() is None
    own = next(p for p in tmp_path.iterdir() if p.is_dir())
    assert list((own / "retry").iterdir()) == []
    spool.close()


def test_released_envelopes_leave_no_file(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    tickets = [spool.hold(_envelope(n)) for n in range(3)]
    for ticket in tickets:
        spool.release(ticket)
    own = next(p for p in tmp_path.iterdir() if p.is_dir())
    assert list((own / "held").iterdir()) == [] and len(spool) == 0


def test_a_killed_process_leaves_its_envelopes_to_the_next_start(tmp_path: Path) -> None:
    # A real process holds two envelopes (as if mid-send) and spools one, then dies by SIGKILL.
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_spool import _envelope
        from otel_sentry._internal.sentry.spool import Spool
        spool = Spool({str(tmp_path)!r})
        spool.hold(_envelope(1))
        spool.retry(spool.hold(_envelope(2)))
        spool.hold(_envelope(3))
        print("ready", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True
    )
    assert proc.stdout.strip() == "ready" and proc.returncode == -9, proc.stderr

    spool = Spool(tmp_path)
    assert sorted(_id(spool.take()) for _ in range(3)) == [1, 2, 3]
    assert spool.take() is None
    # The dead process's directory is gone; only ours is left.
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 1
    spool.close()


def test_a_live_process_keeps_its_directory(tmp_path: Path) -> None:
    first = Spool(tmp_path)
    first.put(_envelope(7))
    second = Spool(tmp_path)
    assert second.take() is None  # first is alive: its envelope is its own
    assert _id(first.take()) == 7
    first.close()
    second.close()


def test_unreadable_files_are_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dropped: list[Envelope] = []
    spool = Spool(tmp_path, on_drop=dropped.append)
    spool.put(_envelope(1))
    own = next(p for p in tmp_path.iterdir() if p.is_dir())
    (path,) = list((own / "retry").iterdir())
    path.write_bytes(b"\x00\xffnot an envelope\n{")
    spool.put(_envelope(2))
    with caplog.at_level(logging.WARNING, logger="otel_sentry"):
        taken = spool.take()
    # The torn file is skipped (logged, removed) and the next envelope comes out, no exception.
    assert _id(taken) == 2
    assert [r.getMessage() for r in caplog.records if r.name == "otel_sentry"] == [
        f"otel-sentry: skipping an unreadable spool file {path.name}"
    ]
    assert not path.exists() and list((own / "retry").iterdir()) == []
    # Nothing is left, and an unreadable file is not a dropped envelope (nothing to count).
    assert spool.take() is None and len(spool) == 0 and spool.bytes == 0
    assert dropped == [] and spool.dropped == 0
    spool.close()


def test_spooled_bytes_are_the_envelope_unchanged(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    original = _envelope(9, size=1000)
    spool.put(original)
    again = spool.take()
    assert again is not None
    assert json.loads(again.items[0].get_bytes()) == json.loads(original.items[0].get_bytes())
    assert again.headers == original.headers
    assert os.listdir(next(p for p in tmp_path.iterdir() if p.is_dir()) / "retry") == []
    spool.close()


def test_a_forked_child_starts_empty_and_adopts_only_the_dead(tmp_path: Path) -> None:
    parent = Spool(tmp_path)
    parent.put(_envelope(1))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it found, then leave without cleanup
        try:
            parent.after_fork()
            found = [_id(e) for e in iter(parent.take, None)]
            os.write(write, json.dumps(found).encode())
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    child_found = json.loads(os.read(read, 1000) or b"null")
    os.close(read)
    assert status == 0 and child_found == []  # the parent is alive: its envelope is its own
    assert _id(parent.take()) == 1
    parent.close()
