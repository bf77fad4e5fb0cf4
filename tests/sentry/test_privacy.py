"""Breadcrumbs are scrubbed where they leave: inside the event, not one by one as recorded."""

from __future__ import annotations

import sentry_sdk

import otel_sentry
from otel_sentry.inbox import Inbox


def test_a_secret_in_a_breadcrumb_never_reaches_sentry(inbox: Inbox, fresh: None) -> None:
    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    sentry_sdk.add_breadcrumb(
        message="GET /cb?code=ok&token=canary-crumb-7f3a",
        data={"password": "canary-crumb-9b1c", "page": 2},
    )
    try:
        raise RuntimeError("after the crumb")
    except RuntimeError:
        sentry_sdk.capture_exception()
    assert otel_sentry.flush(10)
    [item] = inbox.wait_for_items("event", timeout=10)
    raw = b"".join(i.payload for e in inbox.envelopes for i in e.envelope.items)
    assert b"canary-crumb" not in raw
    [crumb] = [
        c for c in item.json["breadcrumbs"]["values"] if c.get("message", "").startswith("GET")
    ]
    assert crumb["message"] == "GET /cb?code=ok&token=[Filtered]"
    assert crumb["data"] == {"password": "[Filtered]", "page": 2}
