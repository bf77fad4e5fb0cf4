"""SQLite persistence: envelopes survive a restart, and clear() empties the file too."""

from __future__ import annotations

import gzip
from pathlib import Path

import httpx

from otel_sentry.inbox import Inbox, encode_envelope

from .conftest import auth_header


def _post(inbox: Inbox, http: httpx.Client, message: str, project_id: int) -> None:
    body = encode_envelope({"event_id": message * 32}, [({"type": "event"}, {"message": message})])
    response = http.post(
        f"{inbox.url}/api/{project_id}/envelope/",
        content=gzip.compress(body),
        headers={**auth_header(inbox.public_key), "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200


def test_envelopes_survive_a_restart(tmp_path: Path, http: httpx.Client) -> None:
    db = tmp_path / "inbox.sqlite"
    with Inbox(db_path=db) as first:
        _post(first, http, "a", 1)
        _post(first, http, "b", 2)
        before = first.envelopes
    with first:  # restarting the same instance shows the file once, not twice
        assert len(first.envelopes) == 2

    with Inbox(db_path=db) as second:
        after = second.envelopes
        assert [e.event_id for e in after] == ["a" * 32, "b" * 32]
        assert [(e.project_id, e.path) for e in after] == [
            (1, "/api/1/envelope/"),
            (2, "/api/2/envelope/"),
        ]
        assert [e.received_at for e in after] == [e.received_at for e in before]
        assert after[0].headers["content-encoding"] == "gzip"
        assert [e["message"] for e in second.events()] == ["a", "b"]
        assert second.counts.items == {"event": 2}
        _post(second, http, "c", 1)
        second.clear()
        _post(second, http, "d", 1)

    with Inbox(db_path=db) as third:
        assert [e["message"] for e in third.events()] == ["d"]
