"""HTTP/2 for the TLS inbox: one connection's streams, framed by h2, each answered concurrently.

Sentry's ingest speaks HTTP/2, and a sender that keeps many envelopes in flight on one
connection meets things HTTP/1.1 never shows it: a limit on concurrent streams, flow-control
windows on large envelopes, slow answers that must not hold back fast ones, and GOAWAY when the
server retires the connection. This module is the server side of exactly those:

- ``max_streams`` is advertised as SETTINGS_MAX_CONCURRENT_STREAMS (Sentry-like 100 by default);
- received data is acknowledged as it arrives, and answers are sent within the peer's windows;
- each stream is answered by a task of its own, so a ``delay`` fault on one does not delay others;
- ``Fault(close_after=N)`` sends GOAWAY naming the Nth stream once it starts, answers the streams
  up to it, refuses newer ones (RST_STREAM REFUSED_STREAM) and closes when the last is answered,
  as nginx's ``keepalive_requests`` does; ``Fault(refuse=True)`` resets the one stream
  (INTERNAL_ERROR), the HTTP/2 form of a connection closed without an answer.

h2 itself moves its connection to CLOSED when asked to send GOAWAY and then refuses to answer
the streams the GOAWAY promised to finish, so the graceful GOAWAY is written as a raw frame::

    await Http2Connection(reader, writer, answer, faults, max_streams=100).serve()
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

from .faults import FaultSwitch
from .routes import IDLE_TIMEOUT, MAX_BODY, AsyncAnswer, reply_headers
from .wire import Reply, Request, json_reply

__all__ = ["Http2Connection"]

_READ_SIZE = 64 * 1024


@dataclass
class _Stream:
    headers: list[tuple[str, str]]
    body: bytearray = field(default_factory=bytearray)
    task: asyncio.Task[None] | None = None


class Http2Connection:
    """Serves one HTTP/2 connection until the peer leaves, GOAWAY completes, or it is cancelled.

    ``answer`` turns a request into a reply off the loop; ``faults`` is read for
    ``close_after`` as each stream starts. :attr:`started` counts the streams taken on.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        answer: AsyncAnswer,
        faults: FaultSwitch,
        max_streams: int = 100,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._answer = answer
        self._faults = faults
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self._h2 = h2.connection.H2Connection(config=config)
        self._h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_streams},
        )
        self._streams: dict[int, _Stream] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # every stream's, until it is done
        self._window_waiters: list[asyncio.Future[None]] = []
        self._last_stream: int | None = None  # set once GOAWAY is sent
        self._all_answered: asyncio.Future[None]
        self.started = 0

    async def serve(self) -> None:
        """Serve until the connection ends; the caller closes the writer afterwards."""
        self._h2.initiate_connection()
        self._flush()
        self._all_answered = asyncio.get_running_loop().create_future()
        try:
            while not self._retired():
                data = await self._read()
                if not data:
                    break
                try:
                    for event in self._h2.receive_data(data):
                        self._on_event(event)
                except h2.exceptions.ProtocolError:
                    self._flush()  # h2 has queued a GOAWAY naming the error
                    break
                self._flush()
                await self._writer.drain()
        except OSError:
            pass  # the peer went away
        finally:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _read(self) -> bytes:
        """The next bytes from the peer; b"" once it left, stayed idle, or GOAWAY completed."""
        read = asyncio.ensure_future(self._reader.read(_READ_SIZE))
        waiting: set[asyncio.Future[Any]] = {read, self._all_answered}
        done, _ = await asyncio.wait(
            waiting,
            timeout=None if self._streams else IDLE_TIMEOUT,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if read in done:
            return read.result()
        read.cancel()
        if not self._all_answered.done():
            self._goaway(self._h2.highest_inbound_stream_id)  # idle: retire it politely
        return b""

    def _retired(self) -> bool:
        """After GOAWAY: whether every stream it promised to answer has been answered."""
        return self._last_stream is not None and not self._streams

    def _on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self._start(event.stream_id, [(_text(n), _text(v)) for n, v in event.headers])
        elif isinstance(event, h2.events.DataReceived):
            # Acknowledge at once: the inbox keeps whole bodies, so the window must reopen.
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            stream = self._streams.get(event.stream_id)
            if stream is not None and stream.task is None:
                stream.body += event.data
                if len(stream.body) > MAX_BODY:
                    detail = f"body exceeds the inbox limit of {MAX_BODY} bytes"
                    self._reply_now(event.stream_id, json_reply(413, {"detail": detail}))
        elif isinstance(event, h2.events.StreamEnded):
            stream = self._streams.get(event.stream_id)
            if stream is not None and stream.task is None:
                stream.task = self._spawn(self._serve_stream(event.stream_id, stream))
        elif isinstance(event, h2.events.StreamReset):
            stream = self._streams.pop(event.stream_id, None)
            if stream is not None and stream.task is not None:
                stream.task.cancel()
            self._wake_senders()
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self._wake_senders()
        elif isinstance(event, h2.events.ConnectionTerminated):
            # The peer retires the connection: answer nothing more, as it reads nothing more.
            self._last_stream = event.last_stream_id or 0
            for stream in self._streams.values():
                if stream.task is not None:
                    stream.task.cancel()
            self._streams.clear()

    def _start(self, stream_id: int, headers: list[tuple[str, str]]) -> None:
        if self._last_stream is not None and stream_id > self._last_stream:
            # Opened before the client read our GOAWAY: refused, so it may safely retry.
            self._h2.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
            return
        self._streams[stream_id] = _Stream(headers)
        self.started += 1
        if self._faults.closes_after(self.started):
            self._goaway(stream_id)

    def _goaway(self, last_stream_id: int) -> None:
        """A graceful GOAWAY: streams up to ``last_stream_id`` are still answered."""
        if self._last_stream is not None:
            return
        self._last_stream = last_stream_id
        self._flush()
        frame = GoAwayFrame(stream_id=0, last_stream_id=last_stream_id, error_code=0)
        self._writer.write(frame.serialize())

    def _reply_now(self, stream_id: int, reply: Reply) -> None:
        self._streams[stream_id].task = self._spawn(self._send_reply(stream_id, reply))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _serve_stream(self, stream_id: int, stream: _Stream) -> None:
        pseudo = dict(h for h in stream.headers if h[0].startswith(":"))
        headers = [h for h in stream.headers if not h[0].startswith(":")]
        if ":authority" in pseudo and not any(name == "host" for name, _ in headers):
            headers.append(("host", pseudo[":authority"]))
        request = Request.build(
            pseudo.get(":method", "GET"),
            pseudo.get(":path", "/"),
            headers,
            bytes(stream.body),
            "HTTP/2",
        )
        stream.body = bytearray()
        reply = await self._answer(request)
        await self._send_reply(stream_id, reply)

    async def _send_reply(self, stream_id: int, reply: Reply) -> None:
        try:
            if reply.refuse:
                self._h2.reset_stream(stream_id, ErrorCodes.INTERNAL_ERROR)
            else:
                await self._send_response(stream_id, reply)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, ConnectionError):
            pass  # the peer reset the stream or left: nobody reads this answer
        finally:
            self._flush()
            self._streams.pop(stream_id, None)
            if self._retired() and not self._all_answered.done():
                self._all_answered.set_result(None)  # wakes serve() from its read

    async def _send_response(self, stream_id: int, reply: Reply) -> None:
        headers = [(":status", str(reply.status))]
        headers += [(name.lower(), value) for name, value in reply_headers(reply)]
        body = memoryview(reply.body)
        self._h2.send_headers(stream_id, headers, end_stream=not body)
        self._flush()
        sent = 0
        while sent < len(body):
            window = self._h2.local_flow_control_window(stream_id)
            if window <= 0:
                await self._window_opened()
                continue
            size = min(window, self._h2.max_outbound_frame_size, len(body) - sent)
            end = sent + size == len(body)
            self._h2.send_data(stream_id, body[sent : sent + size].tobytes(), end_stream=end)
            sent += size
            self._flush()
            await self._writer.drain()

    async def _window_opened(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._window_waiters.append(waiter)
        await waiter

    def _wake_senders(self) -> None:
        waiters, self._window_waiters = self._window_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and not self._writer.is_closing():
            self._writer.write(data)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
