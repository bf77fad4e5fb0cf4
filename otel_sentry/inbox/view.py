"""Terminal rendering of what the inbox receives: one readable block per item.

Errors show the exception, the last frames and the trace they belong to; transactions show
their span tree; OTLP spans are grouped by trace. Plain text, coloured when writing to a TTY::

    print(render(inbox.envelopes[-1]))
"""

from __future__ import annotations

import sys
import threading
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any, TextIO

from .store import ReceivedEnvelope

__all__ = ["Echo", "render", "render_otlp_logs", "render_otlp_spans"]

_FRAMES = 4
_BREADCRUMBS = 3
_COLOURS = {"red": "31", "yellow": "33", "green": "32", "cyan": "36", "dim": "2", "bold": "1"}
_LEVEL_COLOURS = {"fatal": "red", "error": "red", "warning": "yellow", "warn": "yellow"}


class _Paint:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, colour: str) -> str:
        if not self.enabled:
            return text
        return f"\033[{_COLOURS[colour]}m{text}\033[0m"


def render(received: ReceivedEnvelope, color: bool = False) -> str:
    """The envelope as a header line plus one block per item."""
    paint = _Paint(color)
    headers = received.envelope.headers
    sdk = headers.get("sdk")
    client = (
        f"{sdk.get('name')}/{sdk.get('version')}"
        if isinstance(sdk, dict) and sdk.get("name")
        else received.headers.get("user-agent")
    )
    when = datetime.fromtimestamp(received.received_at).strftime("%H:%M:%S")
    title = f"-- {when} envelope {received.event_id or '-'} {received.path}"
    if client:
        title += f" ({client})"
    lines = [paint(title, "dim")]
    for item in received.envelope.items:
        payload = item.json if isinstance(item.json, dict) else {}
        if item.type == "event":
            lines += _event(payload, paint)
        elif item.type == "transaction":
            lines += _transaction(payload, paint)
        elif item.type == "client_report":
            lines += _client_report(payload, paint)
        elif item.type == "log":
            lines += _logs(payload, paint)
        elif item.type == "span":
            lines += _span_items(payload, paint)
        elif item.type in ("session", "sessions"):
            lines.append(_session(item.type, payload))
        else:
            name = item.headers.get("filename")
            suffix = f" {name}" if name else ""
            lines.append(f"{item.type}  {len(item.payload)} bytes{suffix}")
    return "\n".join(lines) + "\n"


def _event(event: dict[str, Any], paint: _Paint) -> list[str]:
    level = str(event.get("level") or "error")
    values = (event.get("exception") or {}).get("values") or []
    if values:
        last = values[-1]
        headline = f"{last.get('type')}: {last.get('value')}"
    else:
        logentry = event.get("logentry") or {}
        headline = str(logentry.get("formatted") or logentry.get("message") or event.get("message"))
    lines = [
        f"{paint(level.upper(), _LEVEL_COLOURS.get(level, 'cyan'))}  {paint(headline, 'bold')}"
    ]
    if len(values) > 1:
        lines.append(f"  chained from {', '.join(str(v.get('type')) for v in values[:-1])}")
    frames = ((values[-1].get("stacktrace") or {}).get("frames") or []) if values else []
    for n, frame in enumerate(frames[-_FRAMES:][::-1]):
        where = f"{frame.get('filename') or frame.get('module')}:{frame.get('lineno')}"
        lines.append(f"  {'at' if n == 0 else '  '} {where} in {frame.get('function')}")
    if event.get("transaction"):
        lines.append(f"  transaction {event['transaction']}")
    trace = (event.get("contexts") or {}).get("trace") or {}
    if trace:
        lines.append(paint(f"  trace {trace.get('trace_id')} span {trace.get('span_id')}", "dim"))
    request = event.get("request") or {}
    if request.get("url") or request.get("method"):
        lines.append(f"  request {request.get('method', '')} {request.get('url', '')}".rstrip())
    crumbs = (event.get("breadcrumbs") or {}).get("values") or []
    if crumbs:
        lines.append(f"  breadcrumbs {len(crumbs)}")
        for crumb in crumbs[-_BREADCRUMBS:]:
            text = crumb.get("message") or crumb.get("category") or crumb.get("type")
            lines.append(f"    [{crumb.get('level', 'info')}] {text}")
    return lines


def _transaction(tx: dict[str, Any], paint: _Paint) -> list[str]:
    trace = (tx.get("contexts") or {}).get("trace") or {}
    status = trace.get("status") or "ok"
    duration = _duration_ms(tx.get("start_timestamp"), tx.get("timestamp"))
    head = f"{paint('TRANSACTION', 'green')}  {paint(str(tx.get('transaction')), 'bold')}"
    lines = [f"{head}  op={trace.get('op')} status={_status(status, paint)} {duration}"]
    lines.append(paint(f"  trace {trace.get('trace_id')}", "dim"))
    spans = [s for s in tx.get("spans") or [] if isinstance(s, dict)]
    children: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    known = {s.get("span_id") for s in spans} | {trace.get("span_id")}
    for span in spans:
        parent = span.get("parent_span_id")
        children[parent if parent in known else trace.get("span_id")].append(span)

    def walk(parent: Any, depth: int) -> None:
        ordered = sorted(children.get(parent, []), key=lambda s: _seconds(s.get("start_timestamp")))
        for span in ordered:
            text = f"{'  ' * depth}{span.get('op') or '-'}  {span.get('description') or ''}"
            text += f"  {_duration_ms(span.get('start_timestamp'), span.get('timestamp'))}"
            if span.get("status") not in (None, "ok"):
                text += f"  {_status(span['status'], paint)}"
            lines.append(text)
            walk(span.get("span_id"), depth + 1)

    walk(trace.get("span_id"), 2)
    return lines


def _client_report(report: dict[str, Any], paint: _Paint) -> list[str]:
    lines = [paint("CLIENT REPORT", "yellow")]
    for entry in report.get("discarded_events") or []:
        lines.append(
            f"  discarded {entry.get('quantity')} {entry.get('category')} ({entry.get('reason')})"
        )
    return lines


def _logs(container: dict[str, Any], paint: _Paint) -> list[str]:
    lines = []
    for record in container.get("items") or []:
        level = str(record.get("level"))
        lines.append(
            f"{paint('LOG', 'cyan')} {paint(level, _LEVEL_COLOURS.get(level, 'dim'))}  "
            f"{record.get('body')}  {paint('trace ' + str(record.get('trace_id')), 'dim')}"
        )
    return lines


def _span_items(container: dict[str, Any], paint: _Paint) -> list[str]:
    spans = container.get("items") if "items" in container else [container]
    lines = []
    for span in spans or []:
        name = span.get("name") or span.get("description") or ""
        duration = _duration_ms(span.get("start_timestamp"), span.get("end_timestamp"))
        lines.append(
            f"{paint('SPAN', 'cyan')}  {name}  {duration}  "
            f"{paint('trace ' + str(span.get('trace_id')), 'dim')}"
        )
    return lines


def _session(kind: str, payload: dict[str, Any]) -> str:
    if kind == "sessions":
        return f"sessions  {len(payload.get('aggregates') or [])} aggregate(s)"
    attrs = payload.get("attrs") or {}
    return (
        f"session  status={payload.get('status')} errors={payload.get('errors', 0)} "
        f"release={attrs.get('release')}"
    )


def render_otlp_spans(spans: Iterable[dict[str, Any]], color: bool = False) -> str:
    """OTLP spans grouped by trace, each trace as a tree by parent span id."""
    paint = _Paint(color)
    traces: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in spans:
        traces[span["trace_id"]].append(span)
    lines: list[str] = []
    for trace_id, members in traces.items():
        service = members[0].get("resource", {}).get("service.name")
        lines.append(
            paint(f"-- OTLP trace {trace_id}" + (f" ({service})" if service else ""), "dim")
        )
        ids = {s["span_id"] for s in members}
        children: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
        for span in members:
            parent = span.get("parent_span_id")
            children[parent if parent in ids else None].append(span)

        _otlp_tree(children, None, 1, lines, paint)
    return "\n".join(lines) + "\n"


def _otlp_tree(
    children: dict[str | None, list[dict[str, Any]]],
    parent: str | None,
    depth: int,
    lines: list[str],
    paint: _Paint,
) -> None:
    for span in sorted(children.get(parent, []), key=lambda s: int(s["start_time_unix_nano"])):
        ms = (span["end_time_unix_nano"] - span["start_time_unix_nano"]) / 1e6
        text = f"{'  ' * depth}{span['name']}  {span['kind']}  {ms:.1f}ms"
        if span.get("status_code") == "ERROR":
            text += "  " + paint(f"ERROR {span.get('status_message') or ''}".rstrip(), "red")
        lines.append(text)
        _otlp_tree(children, span["span_id"], depth + 1, lines, paint)


def render_otlp_logs(records: Iterable[dict[str, Any]], color: bool = False) -> str:
    paint = _Paint(color)
    lines = []
    for record in records:
        level = record.get("severity_text") or record.get("severity_number")
        trace = paint(f"trace {record.get('trace_id')}", "dim")
        lines.append(f"{paint('OTLP LOG', 'cyan')} {level}  {record.get('body')}  {trace}")
    return "\n".join(lines) + "\n"


class Echo:
    """Writes each rendering to a stream as it arrives, one whole block at a time."""

    def __init__(self, stream: TextIO | None = None, color: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        isatty = getattr(self.stream, "isatty", None)
        self.color = color if color is not None else bool(isatty and isatty())
        self._lock = threading.Lock()
        self._broken = False

    def envelope(self, received: ReceivedEnvelope) -> None:
        self.write(render(received, self.color))

    def otlp_spans(self, spans: list[dict[str, Any]]) -> None:
        self.write(render_otlp_spans(spans, self.color))

    def otlp_logs(self, records: list[dict[str, Any]]) -> None:
        self.write(render_otlp_logs(records, self.color))

    def write(self, text: str) -> None:
        with self._lock:
            if self._broken:
                return
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):
                # A closed or broken terminal must not turn deliveries into failures.
                self._broken = True


def _status(status: str, paint: _Paint) -> str:
    return paint(status, "green" if status == "ok" else "red")


def _seconds(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return 0.0
    return 0.0


def _duration_ms(start: Any, end: Any) -> str:
    if start is None or end is None:
        return "?ms"
    return f"{(_seconds(end) - _seconds(start)) * 1000:.1f}ms"
