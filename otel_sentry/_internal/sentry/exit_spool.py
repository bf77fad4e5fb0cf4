"""What a process could not deliver before it exited, kept on disk for the next start.

At shutdown the flush has a budget (a SIGTERM'd container has seconds); against a Sentry 150 ms
away or down, envelopes may still be queued or in flight when it runs out. Instead of dropping
them, :func:`persist` writes each as a file under a per-user cache directory, one directory per
DSN (so another project never receives them), and the next process with that DSN :func:`adopt`\\ s
them and sends them first. The layout and the file helpers are the disk spool's
(``<pid>-<ns>/retry/*.env``, spool.py), so a process with ``spool_dir`` set to the same place
takes them over as well.

Only a process that exits uses this; while it runs, envelopes wait in memory unless ``spool_dir``
asks for disk. Off with ``spool_at_exit=False`` (``OTEL_SENTRY_SPOOL_AT_EXIT=false``): what is
left is then counted and reported in a client report in the same shutdown.

    directory = default_directory(dsn)          # ~/.cache/otel-sentry/spool/<dsn hash>
    persist(directory, envelopes)               # at exit
    envelopes = adopt(directory)                # at the next start
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from pathlib import Path

from sentry_sdk.envelope import Envelope
from sentry_sdk.utils import Dsn

from otel_sentry._internal.sentry.spool import claimable, read_file, write_file

__all__ = ["adopt", "choose", "default_directory", "persist", "usable"]

_log = logging.getLogger("otel_sentry")
_own: dict[tuple[Path, int], Path] = {}


def default_directory(dsn: str, base: str | os.PathLike[str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/otel-sentry/spool/<hash of the DSN's project>`` (``~/.cache`` if unset)."""
    if base is None:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    parsed = Dsn(dsn)
    key = f"{parsed.scheme}://{parsed.public_key}@{parsed.netloc}/{parsed.project_id}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(base) / "otel-sentry" / "spool" / f"{parsed.project_id}-{digest}"


def choose(dsn: str | None, spool_dir: str | None, enabled: bool) -> Path | None:
    """Where a process with these settings keeps what is left at exit; None: count it instead."""
    if not enabled or dsn is None:
        return None
    if spool_dir is not None:
        return Path(spool_dir)  # the disk spool keeps it already
    directory = default_directory(dsn)
    problem = usable(directory)
    if problem is not None:
        _log.warning(
            "otel-sentry: cannot keep undelivered envelopes at exit (%s); they will be counted "
            "and reported instead. Set spool_dir (OTEL_SENTRY_SPOOL_DIR) to a writable "
            "directory, or OTEL_SENTRY_SPOOL_AT_EXIT=false to silence this.",
            problem,
        )
        return None
    return directory


def usable(directory: Path) -> str | None:
    """None if envelopes can be written there; otherwise why not."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return str(exc)
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"{directory} is not writable"
    return None


def persist(directory: Path, envelopes: list[Envelope]) -> int:
    """Write ``envelopes`` as files for the next start; how many were written (in order)."""
    if not envelopes:
        return 0
    own = _own.get((directory, os.getpid()))
    if own is None:  # one directory per exiting process, however many calls
        own = _own[(directory, os.getpid())] = (
            directory / f"{os.getpid()}-{time.time_ns()}" / "retry"
        )
    written = 0
    try:
        own.mkdir(parents=True, exist_ok=True)
        for envelope in envelopes:
            write_file(own, envelope)
            written += 1
    except OSError as exc:
        _log.warning("otel-sentry: could not keep envelopes for the next start (%s)", exc)
    if written:
        _log.info(
            "otel-sentry: %d envelope(s) not yet delivered kept in %s for the next start",
            written,
            directory,
        )
    return written


def adopt(directory: Path, max_bytes: int = 16 << 20) -> list[Envelope]:
    """Take over what exited processes left in ``directory``, oldest first, up to ``max_bytes``.

    Each file is claimed by renaming it first, so of several processes starting at once
    (pre-fork workers) exactly one sends it. What is over ``max_bytes`` stays for a later start.
    """
    taken: list[Envelope] = []
    size = 0
    try:
        others = sorted(p for p in directory.iterdir() if p.is_dir())
    except OSError:
        return taken
    claim = f".{os.getpid()}-{time.time_ns()}.claim"
    for other in others:
        if not claimable(other):
            continue  # a live process with a disk spool owns it
        try:
            files = sorted((other / "retry").glob("*.env"))
        except OSError:
            continue
        for path in files:
            if size >= max_bytes:
                return taken
            mine = path.with_name(path.name + claim)
            try:
                os.rename(path, mine)
                size += mine.stat().st_size
            except OSError:
                continue  # another process claimed it first
            envelope = read_file(mine)
            with contextlib.suppress(OSError):
                mine.unlink()
            if envelope is not None:
                taken.append(envelope)
        for leftover in (other / "retry", other):
            with contextlib.suppress(OSError):
                leftover.rmdir()  # only once empty
    if taken:
        _log.info(
            "otel-sentry: %d envelope(s) an earlier run could not deliver are being sent",
            len(taken),
        )
    return taken
