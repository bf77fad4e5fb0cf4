"""What the serializer makes of awkward values, as the ingest receives them, with either encoder."""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pytest
import sentry_sdk
from opentelemetry import trace

import otel_sentry
from otel_sentry._internal.sentry import encode
from otel_sentry._internal.sentry.transport import EnvelopeTransport
from otel_sentry.inbox import Inbox

pytestmark = pytest.mark.usefixtures("fresh")


@dataclass
class Point:
    x: int


class Colour(Enum):
    RED = "red"


AWKWARD: dict[Any, Any] = {
    "nan": float("nan"),
    "inf": [float("inf"), -math.inf, 1.5],
    "when": datetime.datetime(2026, 12, 7, 4, 0, tzinfo=datetime.timezone.utc),
    "point": Point(3),
    "colour": Colour.RED,
    "bytes": b"ab",
    3: "int key",
    "text": 'é \u2028 "quoted"',
}


def _expected() -> dict[str, Any]:
    return {
        "nan": None,
        "inf": [None, None, 1.5],
        "when": "2026-12-07 04:00:00+00:00",
        "point": "Point(x=3)",
        "colour": "red",
        "bytes": "b'ab'",
        "3": "int key",
        "text": 'é \u2028 "quoted"',
    }


def test_awkward_values_become_json_sentry_accepts() -> None:
    assert json.loads(encode.dumps(AWKWARD)) == _expected()
    # The stdlib fallback writes the same, but an enum as str(member).
    assert json.loads(encode._stdlib(AWKWARD)) == {**_expected(), "colour": "Colour.RED"}


def test_what_orjson_refuses_goes_through_the_stdlib() -> None:
    value = {"big": 1 << 70, "nan": math.nan}
    assert json.loads(encode.dumps(value)) == {"big": 1 << 70, "nan": None}


def test_a_transaction_with_awkward_data_arrives_whole(inbox: Inbox) -> None:
    def add_awkward(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        event["contexts"]["trace"]["data"]["awkward"] = AWKWARD
        event["contexts"]["trace"]["data"]["big"] = 1 << 70
        return event

    otel_sentry.init(dsn=inbox.dsn(), instrument=False, before_send_transaction=add_awkward)
    with trace.get_tracer("t").start_as_current_span("awkward") as span:
        span.set_attribute("ratio", float("nan"))
    assert otel_sentry.flush(10)
    [item] = inbox.wait_for_items("transaction", timeout=10)
    data = item.json["contexts"]["trace"]["data"]
    assert data["ratio"] is None
    assert data["awkward"] == {**_expected(), "colour": "Colour.RED"}  # the stdlib's way
    assert data["big"] == 1 << 70
    assert inbox.problems == []


@pytest.mark.parametrize("algo", ["gzip", "br", "zstd", "none"])
def test_each_compression_sentry_sdk_offers_reaches_the_ingest(inbox: Inbox, algo: str) -> None:
    # init() does not take _experiments (yet): sentry_sdk's own init with our transport does.
    client = sentry_sdk.Client(
        dsn=inbox.dsn(),
        transport=EnvelopeTransport,
        _experiments={"transport_compression_algo": algo},
        default_integrations=False,
    )
    try:
        with sentry_sdk.new_scope() as scope:
            scope.set_client(client)
            sentry_sdk.capture_message(f"compressed {algo}")
        client.flush(10)
    finally:
        client.close()
    [item] = inbox.wait_for_items("event", timeout=10)
    assert item.json["message"] == f"compressed {algo}"
    [received] = inbox.envelopes
    assert received.headers.get("content-encoding") == (None if algo == "none" else algo)
