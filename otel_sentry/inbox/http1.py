"""HTTP/1.1 over TLS for the TLS inbox: one keep-alive connection, parsed by h11, on the loop.

The TLS inbox runs on one event loop (see :mod:`.tls_server`), so its HTTP/1.1 side cannot be
the plain mode's thread-per-connection ``BaseHTTPRequestHandler``; h11 does the framing
(Content-Length, chunked, ``Expect: 100-continue``, keep-alive) and this module only moves bytes
and applies the connection's faults: ``refuse`` closes without answering, ``close_after`` marks
the Nth answer ``Connection: close`` and closes, as the plain mode does::

    await Http1Connection(reader, writer, answer, faults).serve()
"""

from __future__ import annotations

import asyncio
import http

import h11

from .faults import FaultSwitch
from .routes import IDLE_TIMEOUT, MAX_BODY, AsyncAnswer, reply_headers
from .wire import Reply, Request, json_reply

__all__ = ["Http1Connection"]

_READ_SIZE = 64 * 1024


class _IdleError(Exception):
    """The peer sent nothing for IDLE_TIMEOUT: drop the connection, as the plain mode does."""


class _BodyTooLargeError(Exception):
    pass


class Http1Connection:
    """Serves requests on one connection in turn until either side closes it.

    ``answer`` turns a request into a reply off the loop; ``faults`` is read for ``close_after``
    after each answer. The coroutine :meth:`serve` returns once the connection is closed.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        answer: AsyncAnswer,
        faults: FaultSwitch,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._answer = answer
        self._faults = faults
        self._h11 = h11.Connection(h11.SERVER)
        self.answered = 0

    async def serve(self) -> None:
        """Serve until the connection must close; the caller closes the writer afterwards."""
        try:
            while await self._serve_one():
                self._h11.start_next_cycle()
        except (_IdleError, OSError, h11.LocalProtocolError):
            pass

    async def _serve_one(self) -> bool:
        """Read, answer and send one request; False once the connection must close."""
        try:
            request = await self._read_request()
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint
            await self._send(json_reply(status, {"detail": f"bad HTTP/1.1 request: {exc}"}), True)
            return False
        except _BodyTooLargeError as exc:
            await self._send(json_reply(413, {"detail": str(exc)}), close=True)
            return False
        if request is None:
            return False
        reply = await self._answer(request)
        if reply.refuse:
            return False  # closed without answering: the sender sees a network error
        self.answered += 1
        await self._send(reply, close=self._faults.closes_after(self.answered))
        return self._h11.our_state is not h11.MUST_CLOSE

    async def _read_request(self) -> Request | None:
        """The next request with its whole body, or None when the peer closed between requests."""
        start: h11.Request | None = None
        body = bytearray()
        while True:
            event = self._h11.next_event()
            if event is h11.NEED_DATA:
                if self._h11.they_are_waiting_for_100_continue:
                    self._write(h11.InformationalResponse(status_code=100, headers=[]))
                self._h11.receive_data(await self._read())
            elif isinstance(event, h11.Request):
                start = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    raise _BodyTooLargeError(f"body exceeds the inbox limit of {MAX_BODY} bytes")
            elif isinstance(event, h11.EndOfMessage) and start is not None:
                headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in start.headers]
                return Request.build(
                    start.method.decode("ascii"),
                    start.target.decode("latin-1"),
                    headers,
                    bytes(body),
                    f"HTTP/{start.http_version.decode('ascii')}",
                )
            else:
                return None  # ConnectionClosed, or PAUSED after the peer said Connection: close

    async def _read(self) -> bytes:
        try:
            return await asyncio.wait_for(self._reader.read(_READ_SIZE), IDLE_TIMEOUT)
        except asyncio.TimeoutError:
            raise _IdleError from None

    async def _send(self, reply: Reply, close: bool) -> None:
        headers = [("Server", "otel-sentry-inbox"), *reply_headers(reply)]
        if close:
            headers.append(("Connection", "close"))
        try:
            reason = http.HTTPStatus(reply.status).phrase
        except ValueError:
            reason = ""
        self._write(h11.Response(status_code=reply.status, headers=headers, reason=reason))
        if reply.body:
            self._write(h11.Data(data=reply.body))
        self._write(h11.EndOfMessage())
        await self._writer.drain()

    def _write(self, event: h11.Event) -> None:
        data = self._h11.send(event)
        if data:
            self._writer.write(data)
