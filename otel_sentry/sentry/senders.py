"""A few threads that post envelopes concurrently, so round trips to Sentry overlap.

Sentry takes one transaction per envelope: one sender waiting for each answer manages
1 / round-trip envelopes a second (50 a second at a 20 ms round trip), far below what one
busy service produces. ``threads`` senders, each with its own keep-alive connection, multiply
that. The queue in front of them is bounded; when it is full the export thread waits, spans
pile up in the exporter's own bounded queue, and what overflows there is counted.

    pool = SenderPool(lambda: sentry_sdk.get_client().transport)
    pool.submit(envelope)
    pool.wait_idle(timeout=5)
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable

from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

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
        self._pending: collections.deque[Envelope] = collections.deque()
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
        with self._cond:
            while len(self._pending) >= self._max_pending and not self._closed:
                self._cond.wait(0.1)
            self._pending.append(envelope)
            self._in_flight += 1
            self._cond.notify()

    def wait_idle(self, timeout: float) -> bool:
        """True once everything submitted has been answered (or dropped and counted)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._in_flight == 0, timeout)

    def close(self, timeout: float) -> None:
        self.wait_idle(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=1)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                envelope = self._pending.popleft()
                self._cond.notify_all()  # room for the producer
            try:
                transport = self._transport()
                if isinstance(transport, EnvelopeTransport):
                    transport.send_now(envelope)
                elif transport is not None:
                    transport.capture_envelope(envelope)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()
