"""A few threads that post envelopes concurrently, so round trips to Sentry overlap.

Sentry takes one transaction per envelope: one sender waiting for each answer manages
1 / round-trip envelopes a second (50 a second at a 20 ms round trip), far below what one
busy service produces. ``threads`` senders, each with its own keep-alive connection, multiply
that. The queue in front of them is bounded; when it is full (Sentry slow) or Sentry is known
to be failing, an envelope goes straight to the transport's spool and is sent when there is
room again, so the export thread never waits on the network. With a disk spool every envelope
is written before it is queued, so a process killed mid-send leaves it for the next start.

    pool = SenderPool(lambda: sentry_sdk.get_client().transport)
    pool.submit(envelope)
    pool.wait_idle(timeout=5)
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from otel_sentry.sentry.spool import Ticket
from otel_sentry.sentry.transport import EnvelopeTransport

__all__ = ["SenderPool"]


class SenderPool:
    def __init__(
        self,
        transport: Callable[[], Transport | None],
        threads: int = 4,
        max_pending: int = 256,
    ) -> None:
        self._transport = transport
        self._threads_wanted = threads
        self._max_pending = max_pending
        self._start()

    def _start(self) -> None:
        self._pending: collections.deque[tuple[Envelope, Ticket]] = collections.deque()
        self._in_flight = 0
        self._closed = False
        self._cond = threading.Condition()
        self._threads = [
            threading.Thread(target=self._run, name=f"otel-sentry-send-{i}", daemon=True)
            for i in range(self._threads_wanted)
        ]
        for thread in self._threads:
            thread.start()

    def after_fork(self) -> None:
        # Threads don't survive fork(); what the parent had queued is the parent's to send.
        self._start()

    def submit(self, envelope: Envelope) -> None:
        """Queue one envelope; waits while ``max_pending`` are already waiting."""
        transport = self._transport()
        if transport is None:
            return
        if not isinstance(transport, EnvelopeTransport):
            # Someone else's transport (tests, a custom one): it has its own queue.
            transport.capture_envelope(envelope)
            return
        ticket = transport.spool.hold(envelope)
        with self._cond:
            spill = len(self._pending) >= self._max_pending or transport.breaker.open
            if not spill:
                self._pending.append((envelope, ticket))
                self._in_flight += 1
                self._cond.notify()
        if spill:
            transport.defer(ticket)

    def wait_idle(self, timeout: float) -> bool:
        """True once everything submitted has been answered (or dropped and counted)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._in_flight == 0, timeout)

    def close(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self.wait_idle(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                envelope, ticket = self._pending.popleft()
            try:
                transport = self._transport()
                if isinstance(transport, EnvelopeTransport):
                    transport.send_now(envelope, ticket)
                elif transport is not None:
                    transport.capture_envelope(envelope)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()
