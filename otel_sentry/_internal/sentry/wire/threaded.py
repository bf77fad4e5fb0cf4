"""The :class:`~otel_sentry._internal.sentry.wire.Wire` interface over blocking sends, for proxies.

Behind an HTTP(S) or SOCKS proxy, or with custom socket options, the transport keeps sentry_sdk's
urllib3 pool, which knows how to reach through them. Blocking sends overlap only across
threads: up to ``threads`` of them, started as requests wait.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context

from otel_sentry._internal.sentry.wire.message import Request

__all__ = ["ThreadedWire", "post_blocking"]

_log = logging.getLogger("otel_sentry")


class ThreadedWire:
    def __init__(self, send: Callable[[Request], Any], threads: int = 16) -> None:
        self._send = send
        self._max_threads = threads
        self._reset()

    def _reset(self) -> None:
        self._queue: collections.deque[Request] = collections.deque()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._closed = False

    @property
    def outstanding(self) -> int:
        return len(self._queue) + self._busy

    def submit(self, request: Request) -> None:
        with self._cond:
            self._queue.append(request)
            idle = len(self._threads) - self._busy
            if idle < len(self._queue) and len(self._threads) < self._max_threads:
                thread = threading.Thread(
                    target=self._run, name=f"otel-sentry-send-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            self._cond.notify()

    def close(self, timeout: float = 1.0) -> list[Request]:
        with self._cond:
            self._closed = True
            left = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        return left  # in-flight sends finish on their daemon threads or die with the process

    def after_fork(self) -> None:
        self._reset()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                request = self._queue.popleft()
                self._busy += 1
            try:
                try:
                    response = self._send(request)
                except Exception as exc:
                    request.done(None, exc)
                else:
                    request.done(response, None)
            except Exception:
                _log.exception("otel-sentry: handling Sentry's answer failed")
            finally:
                with self._cond:
                    self._busy -= 1


def post_blocking(pool: Any, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Any:
    """One POST through sentry_sdk's urllib3 ``pool`` (proxies, socket options), no retries."""
    import urllib3

    # Our own sends must never become spans, whatever instrumentation is installed.
    token = otel_context.attach(
        otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True)
    )
    try:
        return pool.request(
            "POST",
            url,
            body=body,
            headers=headers,
            timeout=urllib3.Timeout(total=timeout),
            retries=False,
        )
    finally:
        otel_context.detach(token)
