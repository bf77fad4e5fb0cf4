"""The TLS inbox's server: HTTPS on one event loop in a thread of its own, HTTP/2 or HTTP/1.1.

Each connection is handed, after the TLS handshake, to :class:`.http2.Http2Connection` when the
client picked ``h2`` over ALPN and to :class:`.http1.Http1Connection` otherwise, as Sentry's
ingest does. Requests are answered by the same :class:`.routes.Router` as the plain mode, on a
pool of worker threads: the endpoints are synchronous and may block (a ``delay`` fault sleeps,
the JSON API can wait for items), and one thread per request in flight lets the delays of
concurrent streams overlap instead of queueing on the loop.

:meth:`TLSServer.close` stops accepting, closes every connection, stops the loop and joins its
thread and the workers, so that no thread outlives the inbox::

    server = TLSServer(("127.0.0.1", 0), router, context, max_streams=100)
    server.start()
    ...
    server.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from .http1 import Http1Connection
from .http2 import Http2Connection
from .routes import Router
from .tls import ALPN_HTTP2
from .wire import Reply, Request

__all__ = ["TLSServer"]

# Threads are made only as requests wait on them; this many lets several connections of 100
# delayed streams each overlap their delays.
_MAX_WORKERS = 512
_JOIN_TIMEOUT = 2.0
_CLOSE_TIMEOUT = 1.0


class TLSServer:
    """HTTPS on ``address`` (port 0 picks a free one) with ``context`` (its ALPN decides h2).

    The socket is bound in the constructor, so a taken port fails there with OSError, as it
    does for the plain server. ``max_streams`` is HTTP/2's SETTINGS_MAX_CONCURRENT_STREAMS.
    """

    def __init__(
        self,
        address: tuple[str, int],
        router: Router,
        context: ssl.SSLContext,
        max_streams: int = 100,
    ) -> None:
        if max_streams < 1:
            raise ValueError(f"h2_max_streams must be >= 1, got {max_streams}")
        self._router = router
        self._context = context
        self._max_streams = max_streams
        self._socket = socket.create_server(address)
        self._socket.setblocking(False)
        self.port = int(self._socket.getsockname()[1])
        self._workers = ThreadPoolExecutor(_MAX_WORKERS, thread_name_prefix=self._worker_prefix)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def _worker_prefix(self) -> str:
        return f"inbox-tls-{self.port}-worker"

    def start(self) -> None:
        """Serve on a thread of its own; returns once the loop accepts connections."""
        self._thread = threading.Thread(
            target=self._run, name=f"inbox-tls-{self.port}", daemon=True
        )
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            self.close()
            raise RuntimeError(f"the TLS inbox could not serve: {self._failure!r}")

    def close(self) -> None:
        """Stop accepting, close every connection, and join the loop's thread and workers."""
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stopping.set)
        if thread is not None:
            thread.join()
        self._socket.close()
        self._workers.shutdown(wait=False, cancel_futures=True)
        # A worker may still sleep in a delay fault or wait in the JSON API; give it a moment.
        deadline = time.monotonic() + _JOIN_TIMEOUT
        for worker in threading.enumerate():
            if worker.name.startswith(self._worker_prefix):
                worker.join(max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:
            self._failure = exc  # raised by start(), in the caller's thread
        finally:
            self._ready.set()  # never leave start() waiting, even if serving failed
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(
            self._accept, sock=self._socket, ssl=self._context, ssl_handshake_timeout=10
        )
        self._ready.set()
        await self._stopping.wait()
        server.close()
        connections = list(self._connections)
        for task in connections:
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._converse(reader, writer)
            writer.close()
            # TLS waits for the peer's close_notify; an idle pooled client may never send it.
            await asyncio.wait_for(writer.wait_closed(), _CLOSE_TIMEOUT)
        except (OSError, asyncio.TimeoutError):
            writer.transport.abort()
        except asyncio.CancelledError:
            # stop(): no close_notify to wait for. Not re-raised: asyncio's stream callback
            # would log a cancelled connection task as an error.
            writer.transport.abort()
        finally:
            self._connections.discard(task)

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ssl_object = writer.get_extra_info("ssl_object")
        protocol = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        faults = self._router.ingest.faults
        if protocol == ALPN_HTTP2:
            await Http2Connection(reader, writer, self._answer, faults, self._max_streams).serve()
        else:
            await Http1Connection(reader, writer, self._answer, faults).serve()

    async def _answer(self, request: Request) -> Reply:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._workers, self._router.answer, request)
