"""What scrubbing costs per typical error event, transaction and span, next to ``json.dumps``.

Every payload is also serialized with ``json.dumps`` in the same run: that is the anchor, since
every payload is serialized exactly once on its way out anyway. Scrubbing runs in the export
threads, never on the request thread; this says how much export CPU it adds.

- ``event``: an error with 12 frames of local variables and source context, request headers,
  15 breadcrumbs, tags and contexts, two secrets in it;
- ``transaction``: an HTTP server transaction with 12 child spans (SQL, Redis, HTTP client);
- ``span``: one ``ReadableSpan`` with the FastAPI instrumentation's attributes, through the OTLP
  path (``scrub_span``): ``clean`` has nothing to replace (the common case, no copy),
  ``secret`` has a token in its URL (copied).

``warm`` reuses the scrubber, as a running process does (strings seen before come from its
cache); ``cold`` clears the cache before every payload: every string is new.

    python -m benchmarks.scrub            # writes the `scrub` section of BENCHMARKS.md
    python -m benchmarks.scrub --quick    # smoke run, writes nothing
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from benchmarks.report import replace_section
from otel_sentry._internal.scrub import Scrubber
from otel_sentry._internal.scrub_spans import scrub_span
from otel_sentry._internal.sentry.hooks import scrub_event

START_MARKER = "<!-- bench:scrub:start -->"
END_MARKER = "<!-- bench:scrub:end -->"
_ROOT = Path(__file__).resolve().parents[1]


def _event() -> dict[str, Any]:
    frames = [
        {
            "filename": f"app/services/module_{i}.py",
            "abs_path": f"/srv/app/services/module_{i}.py",
            "function": f"handle_step_{i}",
            "module": f"app.services.module_{i}",
            "lineno": 40 + i,
            "pre_context": ["    item = items.get(item_id)", "    if item is None:"],
            "context_line": f"        return compute_total(item, quantity={i})",
            "post_context": ["    log.info('done', item=item_id)", ""],
            "vars": {
                "item_id": str(i),
                "quantity": "2",
                "item": "{'id': 1, 'name': 'widget', 'price': 1999}",
                "self": "<app.services.CheckoutService object at 0x7f3a2c1d9e50>",
                "request_id": "b7f9a1c2d3e4",
            },
            "in_app": True,
        }
        for i in range(12)
    ]
    frames[-1]["vars"]["api_token"] = "'tok_5f2a9c7e1b3d'"
    return {
        "event_id": "9c1f0e6a3b2d4c5e8f7a6b5c4d3e2f10",
        "level": "error",
        "platform": "python",
        "timestamp": 1763800000.123,
        "exception": {
            "values": [
                {
                    "type": "CheckoutError",
                    "value": "price service returned nothing for item 2",
                    "module": "app.errors",
                    "mechanism": {"type": "asgi", "handled": False},
                    "stacktrace": {"frames": frames},
                }
            ]
        },
        "request": {
            "method": "POST",
            "url": "https://shop.example.com/checkout/2",
            "headers": {
                "host": "shop.example.com",
                "user-agent": "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/131.0",
                "accept": "application/json",
                "content-type": "application/json",
            },
        },
        "breadcrumbs": {
            "values": [
                {
                    "type": "http",
                    "category": "httplib",
                    "data": {"url": f"https://inventory.internal/items/{i}", "status_code": 200},
                    "timestamp": 1763799999.0 + i / 10,
                }
                for i in range(14)
            ]
            + [{"category": "auth", "message": "login ok user=ada password=hunter2"}]
        },
        "tags": {"region": "eu-west-1", "plan": "pro", "feature.checkout_v2": "on"},
        "contexts": {
            "trace": {
                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                "span_id": "00f067aa0ba902b7",
            },
            "runtime": {"name": "CPython", "version": "3.11.9"},
            "os": {"name": "Linux", "version": "6.8.0"},
        },
        "release": "shop@2.4.1",
        "environment": "production",
    }


def _span_data(i: int) -> tuple[str, str, dict[str, Any]]:
    kind = i % 3
    if kind == 0:
        return (
            "db",
            "SELECT id, name, price FROM items WHERE id = ?",
            {
                "db.system": "postgresql",
                "db.name": "shop",
                "db.statement": "SELECT id, name, price FROM items WHERE id = %(id)s",
                "db.user": "shop_app",
                "net.peer.name": "db.internal",
                "net.peer.port": 5432,
            },
        )
    if kind == 1:
        return (
            "db.redis",
            "GET ?",
            {
                "db.system": "redis",
                "db.statement": "GET ?",
                "db.redis.database_index": 0,
                "net.peer.name": "cache.internal",
                "net.peer.port": 6379,
                "db.redis.args_length": 2,
            },
        )
    return (
        "http.client",
        "GET https://inventory.internal/items/2",
        {
            "http.method": "GET",
            "http.url": f"https://inventory.internal/items/{i}",
            "http.status_code": 200,
            "net.peer.name": "inventory.internal",
        },
    )


def _transaction() -> dict[str, Any]:
    spans = []
    for i in range(12):
        op, description, data = _span_data(i)
        spans.append(
            {
                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                "span_id": f"{i + 1:016x}",
                "parent_span_id": "00f067aa0ba902b7",
                "op": op,
                "description": description,
                "status": "ok",
                "start_timestamp": 1763800000.0 + i / 100,
                "timestamp": 1763800000.005 + i / 100,
                "origin": "auto.otel",
                "data": data,
            }
        )
    return {
        "type": "transaction",
        "event_id": "9c1f0e6a3b2d4c5e8f7a6b5c4d3e2f11",
        "platform": "python",
        "transaction": "POST /checkout/{item_id}",
        "transaction_info": {"source": "route"},
        "start_timestamp": 1763800000.0,
        "timestamp": 1763800000.2,
        "contexts": {
            "trace": {
                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                "span_id": "00f067aa0ba902b7",
                "op": "http.server",
                "status": "ok",
                "origin": "auto.otel",
                "data": dict(_SERVER_ATTRIBUTES),
            },
            "otel": {"resource": {"service.name": "shop", "service.version": "2.4.1"}},
        },
        "spans": spans,
        "release": "shop@2.4.1",
        "environment": "production",
    }


_SERVER_ATTRIBUTES: dict[str, Any] = {
    "http.scheme": "http",
    "http.host": "127.0.0.1:8000",
    "net.host.port": 8000,
    "http.flavor": "1.1",
    "http.target": "/checkout/2",
    "http.url": "http://127.0.0.1:8000/checkout/2",
    "http.method": "POST",
    "http.server_name": "shop.example.com",
    "http.user_agent": "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/131.0",
    "net.peer.port": 52144,
    "http.route": "/checkout/{item_id}",
    "http.status_code": 200,
    "sentry.sample_rate": 1.0,
    "sentry.sample_rand": 0.421337,
}


def _span(url: str) -> ReadableSpan:
    attributes = dict(_SERVER_ATTRIBUTES)
    attributes["http.url"] = url
    context = SpanContext(
        0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, False, TraceFlags(1)
    )
    return ReadableSpan(
        name="POST /checkout/{item_id}",
        context=context,
        attributes=attributes,
        kind=SpanKind.SERVER,
        resource=Resource({"service.name": "shop"}),
        start_time=1,
        end_time=2,
    )


def _per_call_us(fn: Callable[[], Any], number: int, repeats: int) -> float:
    results = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        results.append((time.perf_counter() - start) / number * 1e6)
    return statistics.median(results)


def measure(quick: bool) -> list[dict[str, Any]]:
    repeats = 3 if quick else 7
    number = 20 if quick else 300
    scrubber = Scrubber()
    event, txn = _event(), _transaction()
    clean = _span("http://127.0.0.1:8000/checkout/2")
    secret = _span("http://127.0.0.1:8000/checkout/2?token=tok_5f2a9c7e1b3d")

    def cold(fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            scrubber._texts.clear()
            return fn()

        return run

    def dumps(payload: Any) -> Callable[[], Any]:
        return lambda: json.dumps(payload)

    assert scrub_span(clean, scrubber) is clean and scrub_span(secret, scrubber) is not secret
    cases: list[tuple[str, Callable[[], Any], Callable[[], Any], int]] = [
        ("event", lambda: scrub_event(scrubber, event), dumps(event), number),
        ("transaction", lambda: scrub_event(scrubber, txn), dumps(txn), number),
        ("span clean", lambda: scrub_span(clean, scrubber), dumps(_SERVER_ATTRIBUTES), number * 10),
        (
            "span secret",
            lambda: scrub_span(secret, scrubber),
            dumps(_SERVER_ATTRIBUTES),
            number * 10,
        ),
    ]
    rows = []
    for name, fn, anchor, n in cases:
        anchor_us = _per_call_us(anchor, n, repeats)
        warm_us = _per_call_us(fn, n, repeats)
        cold_us = _per_call_us(cold(fn), n, repeats)
        rows.append({"payload": name, "dumps": anchor_us, "warm": warm_us, "cold": cold_us})
    return rows


def render(rows: list[dict[str, Any]], elapsed: float) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        START_MARKER,
        "## Scrubbing (`python -m benchmarks.scrub`)",
        "",
        f"{when}, Python {platform.python_version()}, {platform.machine()}; "
        f"median of 7 batches, {elapsed:.0f} s. Anchor: `json.dumps` of the same payload "
        "(for spans: of the span's attributes), same run.",
        "",
        "| payload | json.dumps (us) | scrub warm (us) | ratio | scrub cold (us) | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['payload']} | {r['dumps']:.1f} | {r['warm']:.1f} | {r['warm'] / r['dumps']:.2f} "
            f"| {r['cold']:.1f} | {r['cold'] / r['dumps']:.2f} |"
        )
    lines += [
        "",
        "warm: the scrubber's caches (key verdicts, recent strings) as in a running process; "
        "cold: string cache cleared before every payload. Scrubbing runs in the export threads.",
        END_MARKER,
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run; writes nothing")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = measure(args.quick)
    section = render(rows, time.perf_counter() - started)
    print(section)
    if not args.quick:
        replace_section(_ROOT / "BENCHMARKS.md", section, START_MARKER, END_MARKER)


if __name__ == "__main__":
    main()
