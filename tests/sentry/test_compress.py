"""Envelope bodies as the ingest receives them: zstd, compressed a batch at a time, and the way
back for an ingest that does not take zstd, with nothing lost on the way."""

from __future__ import annotations

import gzip
import logging
import os
from collections import Counter

import brotli
import pytest
import sentry_sdk
import zstandard
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from sentry_sdk.envelope import Envelope, Item, PayloadRef

import otel_sentry
from otel_sentry._internal.sentry.compress import Compression
from otel_sentry._internal.sentry.span_exporter import SentrySpanExporter
from otel_sentry._internal.sentry.transport import BATCH
from otel_sentry.inbox import Fault, Inbox

pytestmark = pytest.mark.usefixtures("fresh")


def _spans(n: int, name: str = "t") -> None:
    tracer = trace.get_tracer("tests")
    for i in range(n):
        with tracer.start_as_current_span(f"{name}{i}"):
            pass


def _encodings(inbox: Inbox) -> Counter[str | None]:
    return Counter(received.headers.get("content-encoding") for received in inbox.envelopes)


def test_a_batch_is_compressed_in_one_call_into_frames_that_each_decode() -> None:
    compression = Compression("br", 4, {})
    assert compression.encoding == "zstd" and compression.level == 1
    assert compression.batches
    bodies = [b"x", b'{"a":1}\n' * 3, bytes(range(256)) * 4000, b"{}\n" + b"y" * 70_000]
    frames = compression.many(bodies)
    assert len(frames) == len(bodies)
    unzstd = zstandard.ZstdDecompressor()
    assert [unzstd.decompressobj().decompress(frame) for frame in frames] == bodies
    assert len(frames[2]) < len(bodies[2]) // 10
    assert compression.many([]) == []


def test_the_fallback_is_what_sentry_sdk_would_have_sent() -> None:
    raw = b'{"event_id":"0"}\n' * 50
    # brotli installed, nothing chosen: zstd now, brotli (quality 1) for an ingest without it.
    compression = Compression("br", 4, {})
    assert compression.fallback == ("br", 1)
    assert brotli.decompress(compression.one(raw, "br")) == raw
    # The user's level means the user's algorithm (sentry_sdk assumes gzip), not zstd.
    chosen = Compression("gzip", 6, {"transport_compression_level": 6})
    assert (chosen.encoding, chosen.level) == ("gzip", 6)
    assert gzip.decompress(chosen.one(raw)) == raw
    assert not chosen.batches
    off = Compression(None, 0, {"transport_compression_algo": "none"})
    assert off.encoding is None and off.one(raw) == raw


def test_transactions_arrive_in_zstd_and_whole(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    _spans(300)
    assert otel_sentry.flush(10)
    items = inbox.wait_for_items("transaction", count=300, timeout=10)
    assert sorted(item.json["transaction"] for item in items) == sorted(f"t{i}" for i in range(300))
    assert _encodings(inbox) == {"zstd": inbox.counts.envelopes}
    assert inbox.problems == []


def test_the_exporter_for_another_setup_compresses_its_whole_batch(inbox: Inbox) -> None:
    # BatchSpanProcessor hands the exporter 512 spans at once: several of our batches in one
    # export() call, the last one short.
    provider = TracerProvider()
    processor = BatchSpanProcessor(
        SentrySpanExporter(dsn=inbox.dsn()), max_export_batch_size=512, schedule_delay_millis=60_000
    )
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("tests")
    count = 3 * BATCH + 7
    for i in range(count):
        with tracer.start_as_current_span(f"batched{i}"):
            pass
    assert processor.force_flush(10_000)
    items = inbox.wait_for_items("transaction", count=count, timeout=10)
    assert len({item.json["event_id"] for item in items}) == count
    assert _encodings(inbox) == {"zstd": count}
    provider.shutdown()


def test_an_ingest_without_zstd_gets_brotli_and_nothing_is_lost(
    inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    inbox.set_fault(Fault(refuse_encoding="zstd"))
    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    with caplog.at_level(logging.WARNING, logger="otel_sentry"):
        _spans(150, "first")
        assert otel_sentry.flush(15)
        refused = inbox.counts.rejected.get("encoding", 0)
        _spans(50, "later")
        sentry_sdk.capture_message("an error after the switch")
        assert otel_sentry.flush(15)
    items = inbox.wait_for_items("transaction", count=200, timeout=10)
    assert len({item.json["event_id"] for item in items}) == 200  # each once, none lost
    [event] = inbox.wait_for_items("event", timeout=10)
    assert event.json["message"] == "an error after the switch"
    # What was refused came again as brotli; once one was taken that way, zstd stopped.
    assert 1 <= refused <= 150
    assert inbox.counts.rejected == {"encoding": refused}
    assert _encodings(inbox) == {"br": inbox.counts.envelopes}
    assert not inbox.counts.discarded  # no client report of anything lost
    switched = [r for r in caplog.records if "does not take zstd" in r.getMessage()]
    assert len(switched) == 1
    assert "HTTP 400" in switched[0].getMessage()


def test_a_400_for_a_bad_envelope_does_not_turn_zstd_off(inbox: Inbox) -> None:
    # Refused in every encoding: not the encoding's fault, so zstd stays.
    inbox.set_fault(Fault(status=400, remaining=2))
    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    _spans(1, "refused")
    assert otel_sentry.flush(10)
    inbox.wait_for(lambda i: i.counts.faulted == 2, timeout=10)
    _spans(1, "accepted")
    assert otel_sentry.flush(10)
    [item] = inbox.wait_for_items("transaction", timeout=10)
    assert item.json["transaction"] == "accepted0"
    # The refused one went as zstd, then as brotli; what came after is zstd again.
    assert set(_encodings(inbox)) == {"zstd"}


@pytest.mark.parametrize("algo", ["gzip", "br"])
def test_a_sentry_sdk_users_choice_passed_to_init_is_kept(inbox: Inbox, algo: str) -> None:
    otel_sentry.init(
        dsn=inbox.dsn(), instrument=False, _experiments={"transport_compression_algo": algo}
    )
    _spans(20)
    sentry_sdk.capture_message("chosen")
    assert otel_sentry.flush(10)
    inbox.wait_for_items("transaction", count=20, timeout=10)
    inbox.wait_for_items("event", timeout=10)
    assert _encodings(inbox) == {algo: inbox.counts.envelopes}
    assert inbox.problems == []


def test_a_body_bigger_than_the_socket_buffer_arrives_whole(inbox: Inbox) -> None:
    # Over plain HTTP/1.1 the first part of a body is written at once without letting go of the
    # GIL (wire/direct.py) and what the socket did not take goes through asyncio: both halves
    # must arrive, in order. Random bytes stay ~8 MiB compressed, far past a socket's buffer.
    otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    data = os.urandom(8 * 1024 * 1024)
    envelope = Envelope(
        items=[Item(payload=PayloadRef(bytes=data), type="attachment", headers={"filename": "b"})]
    )
    transport = sentry_sdk.get_client().transport
    assert transport is not None
    for _ in range(3):
        transport.capture_envelope(envelope)
    assert otel_sentry.flush(20)
    attachments = inbox.wait_for_items("attachment", count=3, timeout=20)
    assert [item.payload == data for item in attachments] == [True, True, True]
    assert inbox.problems == []
