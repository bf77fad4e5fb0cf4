"""Envelopes that could not reach Sentry yet: kept, bounded, and sent again when it is back.

sentry_sdk drops an envelope the moment a send fails (``network_error``), so everything a service
produces while Sentry is unreachable, answering 5xx or too slow to keep up is lost. Two pieces
here change that, used by :class:`~otel_sentry._internal.sentry.transport.EnvelopeTransport`:

- :class:`Breaker`: after a failed send, stop trying for a while (1 s, doubling up to a cap) and
  then let exactly one probe through; a success closes it again. While it is open nothing waits
  on a dead host, and the app's threads never see any of it.
- :class:`Spool`: where envelopes wait meanwhile, oldest first out. In memory by default, bounded
  in bytes (oldest dropped first, counted as ``network_error``). With a directory it is on disk
  instead: each envelope is one file, written to a temporary name and renamed, so a crash leaves
  either the whole envelope or nothing. Every process has its own subdirectory, locked while it
  lives; a process that starts finds the directories of processes that died (lock free) and takes
  their envelopes over, so what a crash left behind is sent by the next start.

In disk mode the spool is also a write-ahead log: :meth:`Spool.hold` writes an envelope before
its first send attempt and :meth:`Spool.release` removes it once Sentry answered; a process killed
mid-send leaves the held files behind for the next start. Files are not fsynced: they survive the
process being killed, not the machine losing power.

    spool = Spool(directory="/var/lib/myapp/sentry-spool", max_bytes=64 << 20, on_drop=count)
    ticket = spool.hold(envelope)       # before sending
    spool.release(ticket)               # answered: gone
    spool.retry(ticket)                 # failed: wait for Sentry to come back
    envelope = spool.take()             # oldest waiting envelope, or None
"""

from __future__ import annotations

import collections
import contextlib
import errno
import fcntl
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentry_sdk.envelope import Envelope, Item, PayloadRef

__all__ = [
    "Breaker",
    "Spool",
    "Ticket",
    "claimable",
    "is_slim",
    "read_file",
    "slim",
    "transaction_item",
    "write_file",
]

_log = logging.getLogger("otel_sentry")

OnDrop = Callable[[Envelope], None]


class Breaker:
    """Stops sends after a failure, for a backoff that doubles per failure, then probes once."""

    def __init__(
        self, base: float = 1.0, cap: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._base, self._cap, self._clock = base, cap, clock
        self._lock = threading.Lock()
        self._failures = 0
        self._until = 0.0
        self._probing = False

    @property
    def open(self) -> bool:
        """True while sends are held back (after a failure, until a probe succeeds)."""
        return self._failures > 0

    def allow(self) -> bool:
        """May this thread send now? While open, one caller per backoff gets to probe."""
        if self._failures == 0:
            return True
        with self._lock:
            if self._failures == 0:
                return True
            if self._probing or self._clock() < self._until:
                return False
            self._probing = True
            return True

    def ready(self) -> bool:
        """Would :meth:`allow` let a send through now? (Claims nothing.)"""
        return self._failures == 0 or (not self._probing and self._clock() >= self._until)

    def success(self) -> None:
        if self._failures or self._probing:
            with self._lock:
                self._failures = 0
                self._probing = False

    def failure(self) -> None:
        """A send failed. Only the first failure and a failed probe lengthen the backoff: with
        many requests in flight, those sent before the breaker opened fail together, and they
        are one outage, not a hundred."""
        with self._lock:
            if self._failures and not self._probing:
                return
            self._failures += 1
            self._probing = False
            delay = min(self._cap, self._base * 2 ** min(self._failures - 1, 16))
            self._until = self._clock() + delay

    def seconds_left(self) -> float:
        return max(0.0, self._until - self._clock()) if self._failures else 0.0


@dataclass(frozen=True, slots=True)
class Ticket:
    """An envelope on its way: in memory only, or also as a file (disk mode)."""

    envelope: Envelope
    path: Path | None = None


class _Waiting(Item):
    """An item waiting in memory: its bytes, and the span count client reports need.

    The parsed payload it came with is a tree of dicts and lists (a transaction's spans and
    their data): kept for every envelope of an outage, that was hundreds of thousands of objects
    more for each full garbage collection to walk while the app served requests, and twice the
    memory. The bytes are what is sent; the disk spool keeps no more either.
    """

    def __init__(self, item: Item) -> None:
        super().__init__(payload=PayloadRef(bytes=item.get_bytes()), headers=item.headers)
        event = item.get_transaction_event()
        spans = event.get("spans") if event is not None else None
        self._spans = len(spans) if isinstance(spans, list) else 0

    def get_transaction_event(self) -> Any:
        # sentry_sdk reads it only to count the spans of a transaction it reports as lost.
        return {"spans": range(self._spans)} if self.type == "transaction" else None


def transaction_item(body: bytes, spans: int) -> Item:
    """The item of a transaction serialized to ``body``, with ``spans`` child spans.

    Built this way from the start (span_processor.py), the item is what waits and is sent: the
    event's dicts are freed once serialized, and :func:`slim` has nothing left to do.
    """
    item = _Waiting.__new__(_Waiting)  # from the bytes: no event to parse for the span count
    Item.__init__(item, payload=PayloadRef(bytes=body), type="transaction")
    item._spans = spans
    return item


def is_slim(envelope: Envelope) -> bool:
    """Whether every item of ``envelope`` is bytes only already (what :func:`slim` gives)."""
    return all(isinstance(item, _Waiting) for item in envelope.items)


def slim(envelope: Envelope) -> Envelope:
    """``envelope`` with its items as bytes only (what waits is sent as it is, never re-read)."""
    items = [
        item if isinstance(item, _Waiting) or item.payload.json is None else _Waiting(item)
        for item in envelope.items
    ]
    return Envelope(headers=envelope.headers, items=items)


def _size(envelope: Envelope) -> int:
    return sum(len(item.get_bytes()) + 64 for item in envelope.items) + 128


class Spool:
    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        max_bytes: int = 16 << 20,
        on_drop: OnDrop | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self._on_drop = on_drop
        self._lock = threading.Lock()
        self._memory: collections.deque[tuple[int, Envelope]] = collections.deque()
        self._bytes = 0
        self._files: collections.deque[tuple[int, Path]] = collections.deque()
        self.dropped = 0
        self.root = Path(directory) if directory is not None else None
        self._own: Path | None = None
        self._lock_fd: int | None = None
        if self.root is not None:
            self._open_disk(self.root)

    # -- public -------------------------------------------------------------------------------
    @property
    def on_disk(self) -> bool:
        return self._own is not None

    def __len__(self) -> int:
        return len(self._memory) + len(self._files)

    @property
    def bytes(self) -> int:
        return self._bytes

    def hold(self, envelope: Envelope) -> Ticket:
        """Before the first attempt: in disk mode the envelope is written, so a crash keeps it."""
        if self._own is None:
            return Ticket(envelope)
        try:
            return Ticket(envelope, write_file(self._own / "held", envelope))
        except OSError as exc:
            _log.warning("otel-sentry: could not write to the spool (%s); sending without it", exc)
            return Ticket(envelope)

    def release(self, ticket: Ticket) -> None:
        """Sentry answered (accepted, or refused for good): the envelope is done."""
        if ticket.path is not None:
            with contextlib.suppress(FileNotFoundError):
                ticket.path.unlink()

    def retry(self, ticket: Ticket) -> None:
        """The send failed in a way worth retrying: keep the envelope until Sentry is back."""
        if self._own is not None:
            path = ticket.path
            try:
                if path is None:
                    path = write_file(self._own / "retry", ticket.envelope)
                else:
                    target = self._own / "retry" / path.name
                    os.replace(path, target)
                    path = target
                size = path.stat().st_size
            except OSError as exc:
                _log.warning("otel-sentry: could not spool an envelope (%s)", exc)
                self._drop(ticket.envelope)
                return
            with self._lock:
                self._files.append((size, path))
                self._bytes += size
                evicted = self._evict_files()
            for envelope in evicted:
                self._drop(envelope)
            return
        envelope = slim(ticket.envelope)
        size = _size(envelope)
        with self._lock:
            self._memory.append((size, envelope))
            self._bytes += size
            dropped: list[Envelope] = []
            while self._bytes > self.max_bytes and len(self._memory) > 1:
                old_size, old = self._memory.popleft()
                self._bytes -= old_size
                dropped.append(old)
        for envelope in dropped:
            self._drop(envelope)

    def put(self, envelope: Envelope) -> None:
        """Straight to waiting (Sentry is known to be down: no attempt now)."""
        self.retry(Ticket(envelope))

    def take(self) -> Envelope | None:
        """The oldest waiting envelope, removed from the spool; None when nothing waits."""
        while True:
            with self._lock:
                if self._memory:
                    size, waiting = self._memory.popleft()
                    self._bytes -= size
                    return waiting
                if not self._files:
                    return None
                size, path = self._files.popleft()
                self._bytes -= size
            envelope = read_file(path)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            if envelope is not None:
                return envelope

    def close(self) -> None:
        """Let go of the directory lock; files stay for the next start."""
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

    def after_fork(self) -> None:
        """A forked child gets a directory (and lock) of its own; the parent keeps its files.

        The child also adopts what dead processes left (a gunicorn worker killed and replaced
        by a fresh fork hands its envelopes to its successor this way).
        """
        self._lock = threading.Lock()  # another thread may have held the parent's at fork
        self._memory.clear()
        self._files.clear()
        self._bytes = 0
        if self.root is None:
            return
        if self._lock_fd is not None:
            # Our copy of the parent's descriptor; the parent's flock lives on through its own.
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
        self._lock_fd = None
        self._open_disk(self.root, adopt=True)

    # -- disk -----------------------------------------------------------------------------------
    def _open_disk(self, root: Path, adopt: bool = True) -> None:
        root.mkdir(parents=True, exist_ok=True)
        own = root / f"{os.getpid()}-{time.time_ns()}"
        (own / "held").mkdir(parents=True)
        (own / "retry").mkdir()
        fd = os.open(own / "lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._own, self._lock_fd = own, fd
        if adopt:
            self._adopt(root)

    def _adopt(self, root: Path) -> None:
        """Take over what processes that are gone left behind, oldest first."""
        found: list[Path] = []
        for other in sorted(root.iterdir()):
            if other == self._own or not other.is_dir():
                continue
            if not claimable(other):
                continue
            for sub in ("retry", "held"):
                with contextlib.suppress(FileNotFoundError):
                    found.extend(p for p in (other / sub).iterdir() if p.suffix == ".env")
            for path in found:
                with contextlib.suppress(OSError):
                    os.replace(path, self._own / "retry" / path.name)  # type: ignore[operator]
            found.clear()
            _remove_tree(other)
        assert self._own is not None
        for path in sorted((self._own / "retry").iterdir()):
            with contextlib.suppress(OSError):
                size = path.stat().st_size
                self._files.append((size, path))
                self._bytes += size
        for envelope in self._evict_files():
            self._drop(envelope)
        if self._files:
            _log.info("otel-sentry: %d envelopes from an earlier run are waiting", len(self._files))

    def _evict_files(self) -> list[Envelope]:
        dropped: list[Envelope] = []
        while self._bytes > self.max_bytes and len(self._files) > 1:
            size, path = self._files.popleft()
            self._bytes -= size
            envelope = read_file(path)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            if envelope is not None:
                dropped.append(envelope)
        return dropped

    def _drop(self, envelope: Envelope) -> None:
        self.dropped += 1
        if self._on_drop is not None:
            try:
                self._on_drop(envelope)
            except Exception:
                _log.exception("otel-sentry: counting a dropped envelope failed")


def claimable(directory: Path) -> bool:
    """May this process take over ``directory``'s envelopes (no live process holds its lock)?"""
    try:
        fd = os.open(directory / "lock", os.O_RDWR)
    except OSError:
        return True  # no lock file: nothing holds it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False  # a live process owns it
        raise
    os.close(fd)
    return True


_seq = itertools.count()


def write_file(directory: Path, envelope: Envelope) -> Path:
    """``envelope`` as one file in ``directory``: written to a temporary name, then renamed."""
    # Names sort by creation time across processes, so adopted files keep their order.
    name = f"{time.time_ns():020d}-{os.getpid()}-{next(_seq):08d}.env"
    path = directory / name
    tmp = directory / (name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(envelope.serialize())
    os.replace(tmp, path)
    return path


def read_file(path: Path) -> Envelope | None:
    """The envelope in ``path``; None if it is gone or unreadable (logged, never raised)."""
    try:
        data = path.read_bytes()
        return Envelope.deserialize(data)
    except FileNotFoundError:
        return None
    except Exception:  # a torn or foreign file: skip it, never crash the sender
        _log.warning("otel-sentry: skipping an unreadable spool file %s", path.name)
        return None


def _remove_tree(directory: Path) -> None:
    for path in _walk(directory):
        with contextlib.suppress(OSError):
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink()
    with contextlib.suppress(OSError):
        directory.rmdir()


def _walk(directory: Path) -> Iterator[Path]:
    with contextlib.suppress(OSError):
        for path in directory.iterdir():
            if path.is_dir():
                yield from _walk(path)
            yield path
