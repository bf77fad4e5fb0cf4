"""The ingest endpoints: Sentry envelopes (with auth), Spotlight's ``/stream``, and OTLP/HTTP.

Each request is authenticated like Sentry does it, put through the active fault if any,
decompressed, parsed strictly, then recorded, archived, validated and echoed::

    reply = ingest.envelope(request, project_id=1)
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Any, Literal

from .envelope import ContentEncodingError, EnvelopeError, decompress, parse_envelope
from .faults import Fault, FaultSwitch
from .otlp import (
    OtlpError,
    OtlpUnavailableError,
    decode_logs,
    decode_traces,
    is_json,
    response_body,
)
from .persist import Archive, ArchivedEnvelope
from .store import ReceivedEnvelope, Store
from .validate import Validator
from .view import Echo
from .wire import Reply, Request, json_reply

__all__ = ["Ingest", "sentry_key"]

_DSN_PROJECT = re.compile(r"/(\d+)/?$")


def sentry_key(request: Request) -> str | None:
    """The public key from ``X-Sentry-Auth`` (any case) or the ``sentry_key`` query parameter."""
    header = request.headers.get("x-sentry-auth", "").strip()
    if header[:7].lower() == "sentry ":
        for pair in header[7:].split(","):
            name, _, value = pair.strip().partition("=")
            if name.strip().lower() == "sentry_key" and value.strip():
                return value.strip()
    return request.query.get("sentry_key") or None


@dataclass
class Ingest:
    """The ingest side of an inbox; the handler calls one method per ingest route."""

    store: Store
    faults: FaultSwitch
    public_key: str
    validator: Validator | None = None
    archive: Archive | None = None
    echo: Echo | None = None

    def envelope(self, request: Request, project_id: int | None, spotlight: bool = False) -> Reply:
        """Sentry's envelope endpoint; ``spotlight`` is the sidecar's ``/stream``: no auth and
        no faults, as a local sidecar has neither, with the project taken from the DSN."""
        self.store.count_request(len(request.body))
        denied = None if spotlight else self._authenticate(request)
        if denied is not None:
            return denied
        fault = None if spotlight else self.faults.take()
        early = self._apply_fault(fault)
        if early is not None:
            return early
        coding = request.headers.get("content-encoding")
        if fault is not None and coding is not None and coding == fault.refuse_encoding:
            return self._reject("encoding", f"unsupported Content-Encoding {coding!r} (a fault)")
        try:
            data = decompress(request.body, coding)
        except ContentEncodingError as exc:
            return self._reject("encoding", str(exc))
        try:
            envelope = parse_envelope(data)
        except EnvelopeError as exc:
            return self._reject("parse", str(exc))
        if project_id is None:
            project_id = _project_from_dsn(envelope.headers.get("dsn"))
        received = ReceivedEnvelope(
            envelope=envelope,
            received_at=time.time(),
            project_id=project_id,
            path=request.path,
            headers=dict(request.headers),
            http_version=request.http_version,
        )
        self.accept(received, raw=data)
        return json_reply(200, {"id": envelope.event_id}, _fault_headers(fault))

    def accept(self, received: ReceivedEnvelope, raw: bytes | None = None) -> None:
        """Record an envelope; ``raw`` (the decompressed body) is archived when given."""
        self.store.add_envelope(received)
        if self.archive is not None and raw is not None:
            self.archive.append(
                ArchivedEnvelope(
                    received.received_at, received.project_id, received.path, received.headers, raw
                )
            )
        if self.validator is not None:
            try:
                problems = self.validator.check(received)
            except Exception as exc:
                # A validator bug is reported where tests look, not turned into a failed send.
                problems = [f"envelope {received.event_id}: validation crashed: {exc!r}"]
            self.store.add_problems(problems)
        if self.echo is not None:
            self.echo.envelope(received)

    def otlp(
        self,
        request: Request,
        signal: Literal["traces", "logs"],
        project_id: int | None,
        authenticate: bool,
    ) -> Reply:
        self.store.count_request(len(request.body))
        denied = self._authenticate(request) if authenticate else None
        if denied is not None:
            return denied
        fault = self.faults.take()
        early = self._apply_fault(fault)
        if early is not None:
            return early
        content_type = request.headers.get("content-type")
        try:
            data = decompress(request.body, request.headers.get("content-encoding"))
        except ContentEncodingError as exc:
            return self._reject("encoding", str(exc))
        try:
            decoded = (decode_traces if signal == "traces" else decode_logs)(data, content_type)
        except OtlpError as exc:
            return self._reject("parse", str(exc))
        except OtlpUnavailableError as exc:
            # The sender did nothing wrong: 501, as for a server that lacks the feature.
            self.store.reject("unavailable", str(exc))
            return json_reply(501, {"detail": str(exc)})
        origin = {"path": request.path, "project_id": project_id}
        records: list[dict[str, Any]] = [{**record, **origin} for record in decoded]
        if signal == "traces":
            self.store.add_otlp_spans(records)
            if self.echo is not None:
                self.echo.otlp_spans(records)
        else:
            self.store.add_otlp_logs(records)
            if self.echo is not None:
                self.echo.otlp_logs(records)
        body, ctype = response_body(is_json(content_type))
        return Reply(status=200, body=body, content_type=ctype, headers=_fault_headers(fault))

    def _authenticate(self, request: Request) -> Reply | None:
        key = sentry_key(request)
        if key is None:
            reason = (
                "missing authorization information: send 'X-Sentry-Auth: Sentry "
                "sentry_version=7, sentry_key=<public key>' or '?sentry_key=<public key>'"
            )
        elif key != self.public_key:
            reason = f"invalid sentry_key {key!r}: this inbox's public key is {self.public_key!r}"
        else:
            return None
        self.store.reject("auth", reason)
        return json_reply(403, {"detail": reason})

    def _apply_fault(self, fault: Fault | None) -> Reply | None:
        """Sleep and answer per the fault; None means carry on and deliver."""
        if fault is None:
            return None
        self.store.count_fault()
        if fault.delay:
            time.sleep(fault.delay)
        if fault.refuse:
            return Reply(refuse=True)
        if fault.delivers:
            return None
        return json_reply(
            fault.status, {"detail": f"fault injected by the inbox: {fault}"}, _fault_headers(fault)
        )

    def _reject(self, kind: str, reason: str) -> Reply:
        self.store.reject(kind, reason)
        return json_reply(400, {"detail": reason})


def _fault_headers(fault: Fault | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if fault is not None and fault.rate_limits is not None:
        headers["X-Sentry-Rate-Limits"] = fault.rate_limits
    if fault is not None and fault.retry_after is not None:
        # HTTP allows only whole seconds here; urllib3 (under sentry_sdk) rejects fractions.
        headers["Retry-After"] = str(math.ceil(fault.retry_after))
    return headers


def _project_from_dsn(dsn: Any) -> int | None:
    match = _DSN_PROJECT.search(dsn) if isinstance(dsn, str) else None
    return int(match.group(1)) if match else None
