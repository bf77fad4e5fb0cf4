"""Optional SQLite archive of received envelopes, so an inbox survives a restart.

Each accepted envelope is stored as its decompressed bytes with arrival time, project id, path
and request headers; an inbox started on an existing file loads them back in arrival order.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Archive", "ArchivedEnvelope"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS envelopes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at REAL NOT NULL,
    project_id INTEGER,
    path TEXT NOT NULL,
    headers TEXT NOT NULL,
    body BLOB NOT NULL
)
"""


@dataclass(frozen=True)
class ArchivedEnvelope:
    received_at: float
    project_id: int | None
    path: str
    headers: dict[str, str]
    body: bytes


class Archive:
    """One SQLite file, written from any request thread (a lock serialises the connection)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        # WAL keeps appends cheap and lets another process read the file while we write.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)

    def append(self, envelope: ArchivedEnvelope) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO envelopes (received_at, project_id, path, headers, body) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    envelope.received_at,
                    envelope.project_id,
                    envelope.path,
                    json.dumps(envelope.headers),
                    envelope.body,
                ),
            )

    def load(self) -> Iterator[ArchivedEnvelope]:
        with self._lock:
            rows = self._db.execute(
                "SELECT received_at, project_id, path, headers, body FROM envelopes ORDER BY id"
            ).fetchall()
        for received_at, project_id, path, headers, body in rows:
            yield ArchivedEnvelope(received_at, project_id, path, json.loads(headers), bytes(body))

    def clear(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM envelopes")

    def close(self) -> None:
        with self._lock:
            self._db.close()
