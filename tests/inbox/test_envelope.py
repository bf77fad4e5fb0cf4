"""The strict envelope parser and body decompression."""

from __future__ import annotations

import gzip
import json
import zlib

import brotli
import pytest
import zstandard

from otel_sentry.inbox import (
    ContentEncodingError,
    EnvelopeError,
    decompress,
    encode_envelope,
    parse_envelope,
)

EVENT = b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","message":"hi"}'
HEADER = b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}'


@pytest.mark.parametrize(
    ("body", "types", "payloads"),
    [
        pytest.param(
            HEADER + b'\n{"type":"event","length":%d}\n' % len(EVENT) + EVENT + b"\n",
            ["event"],
            [EVENT],
            id="length-prefixed, trailing newline",
        ),
        pytest.param(
            HEADER + b'\n{"type":"event","length":%d}\n' % len(EVENT) + EVENT,
            ["event"],
            [EVENT],
            id="length-prefixed, no trailing newline",
        ),
        pytest.param(
            HEADER + b'\n{"type":"event"}\n' + EVENT + b"\n",
            ["event"],
            [EVENT],
            id="newline-delimited, trailing newline",
        ),
        pytest.param(
            HEADER + b'\n{"type":"event"}\n' + EVENT,
            ["event"],
            [EVENT],
            id="newline-delimited, no trailing newline",
        ),
        pytest.param(
            HEADER + b'\n{"type":"attachment","length":5}\na\nb\x00c\n{"type":"event"}\n' + EVENT,
            ["attachment", "event"],
            [b"a\nb\x00c", EVENT],
            id="length lets a payload hold newlines and binary",
        ),
        pytest.param(
            HEADER + b'\n{"type":"attachment","length":0}\n\n{"type":"attachment"}\n\n',
            ["attachment", "attachment"],
            [b"", b""],
            id="empty payloads, both framings",
        ),
        pytest.param(
            HEADER + b'\n{"type":"attachment"}', ["attachment"], [b""], id="header at EOF"
        ),
        pytest.param(HEADER, [], [], id="header only"),
        pytest.param(HEADER + b"\n", [], [], id="header only, newline"),
    ],
)
def test_parses_both_framings(body: bytes, types: list[str], payloads: list[bytes]) -> None:
    envelope = parse_envelope(body)
    assert envelope.event_id == "9ec79c33ec9942ab8353589fcb2e04dc"
    assert [item.type for item in envelope.items] == types
    assert [item.payload for item in envelope.items] == payloads


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty envelope"),
        (b"not json\n", "envelope header at byte 0 is not valid JSON"),
        (b"[1]\n", "must be a JSON object"),
        (HEADER + b"\n{oops\n", "item 0 header at byte 48 is not valid JSON"),
        (HEADER + b'\n{"length":2}\n{}\n', "has no 'type'"),
        (HEADER + b'\n{"type":""}\n{}\n', "has no 'type'"),
        (HEADER + b'\n{"type":"event","length":500}\n{}\n', "declares length 500 but only 3"),
        (HEADER + b'\n{"type":"event","length":1}\n{}\n', "expected a newline after 1 payload"),
        (HEADER + b'\n{"type":"event","length":-1}\n{}\n', "invalid length -1"),
        (HEADER + b'\n{"type":"event","length":"2"}\n{}\n', "invalid length '2'"),
        (HEADER + b'\n{"type":"event"}\nnot json\n', "item 0 (event) payload is not valid JSON"),
        (HEADER + b'\n{"type":"transaction"}\n[]\n', "(transaction) payload must be a JSON object"),
        (HEADER + b'\n{"type":"client_report"}\n\n', "(client_report) payload is not valid JSON"),
        (HEADER + b'\n{"type":"log"}\n{"items":\n', "(log) payload is not valid JSON"),
        (HEADER + b'\n{"type":"span"}\nnope', "(span) payload is not valid JSON"),
        (HEADER + b'\n{"type":"event"}\n{}\n\n', "item 1 header"),
    ],
)
def test_rejects_malformed(body: bytes, message: str) -> None:
    with pytest.raises(EnvelopeError, match=_literal(message)):
        parse_envelope(body)


def _literal(text: str) -> str:
    import re

    return re.escape(text)


def test_item_json_is_parsed_once_and_none_for_binary() -> None:
    body = encode_envelope(
        {"event_id": "a" * 32},
        [({"type": "event"}, {"message": "hi"}), ({"type": "attachment"}, b"\x89PNG")],
    )
    event, attachment = parse_envelope(body).items
    assert event.json == {"message": "hi"}
    assert event.json is event.json
    assert attachment.json is None
    assert parse_envelope(body).events() == [{"message": "hi"}]


def test_encode_envelope_round_trips() -> None:
    items = [({"type": "event"}, {"a": 1}), ({"type": "attachment", "filename": "x"}, b"raw\n")]
    envelope = parse_envelope(encode_envelope({"event_id": "b" * 32}, items))
    assert [(i.headers["type"], i.payload) for i in envelope.items] == [
        ("event", json.dumps({"a": 1}).encode()),
        ("attachment", b"raw\n"),
    ]


DATA = HEADER + b'\n{"type":"event"}\n' + EVENT


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def _zstd_stream(data: bytes) -> bytes:
    # A streamed frame carries no content size, which a plain decompress() refuses.
    compressor = zstandard.ZstdCompressor().compressobj()
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        (None, DATA),
        ("identity", DATA),
        ("gzip", gzip.compress(DATA)),
        ("GZIP", gzip.compress(DATA)),
        ("deflate", zlib.compress(DATA)),
        ("deflate", _raw_deflate(DATA)),
        ("br", brotli.compress(DATA)),
        ("zstd", zstandard.ZstdCompressor().compress(DATA)),
        ("zstd", _zstd_stream(DATA)),
        ("gzip, br", brotli.compress(gzip.compress(DATA))),
    ],
)
def test_decompress(encoding: str | None, body: bytes) -> None:
    assert decompress(body, encoding) == DATA


@pytest.mark.parametrize(
    ("encoding", "body", "message"),
    [
        ("lzma", DATA, "unsupported Content-Encoding 'lzma'"),
        ("gzip", DATA, "body is not valid gzip data"),
        ("br", DATA, "body is not valid br data"),
        ("zstd", DATA, "body is not valid zstd data"),
    ],
)
def test_decompress_errors(encoding: str, body: bytes, message: str) -> None:
    with pytest.raises(ContentEncodingError, match=message):
        decompress(body, encoding)
