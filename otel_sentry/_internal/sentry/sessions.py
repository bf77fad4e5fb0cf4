"""Release health for servers: one request-mode session per server request, as sentry_sdk counts.

sentry_sdk's ASGI, WSGI and aiohttp middlewares wrap every request in
``track_session(scope, session_mode="request")`` and send per-minute aggregates per release and
environment (Sentry's "crash-free sessions"). Here the Starlette/FastAPI middleware is ours
(``asgi.py``), so nothing counted FastAPI's requests. Rather than a session per framework, the
request is the OpenTelemetry server span, a SERVER local root, whichever instrumentation started
it: one :class:`SessionTracker` covers FastAPI, Starlette, Django, Flask and aiohttp. sentry_sdk's
own middleware sessions are switched off (``auto_session_tracking=False`` on its client) so no
request is counted twice.

- ``crashed``: an error event with ``mechanism.handled = false`` was captured for the request;
  ``errored``: any other event with an exception; ``exited``: the rest. Those are sentry_sdk's
  rules (``Client._update_session_from_event``), applied at the same point: after
  ``before_send`` (``client.py`` calls :func:`note_event`), so a dropped event counts for nothing.
  An error captured just after its span ended (aiohttp and plain Starlette capture outside the
  OTel middleware) finds the request through ``raised_in.py`` and moves its count, unless the
  minute was already sent.
- Every request, sampled for tracing or not. A sampled request is counted when its span ends;
  an unsampled one has no span a processor could see, so the sampler counts it as it starts
  (:meth:`SessionTracker.count_unsampled`) and a later error moves its count. Recording those
  roots instead (``RECORD_ONLY``) was exact but cost ~130 us per unsampled FastAPI request
  (729 against 593 us, same process, batches alternating): the instrumentation sets its
  attributes on every recording span, a fifth of a request that sampling is meant to make cheap.
- Not sessions: what the noise filters call noise (health checks, CORS preflights); a probe
  every few seconds would fill the denominator of the crash-free rate. sentry_sdk counts them.
- Only with a release, as sentry_sdk (``Client.capture_session`` discards sessions without one).
- On the request thread, no I/O: ~5 us per unsampled request (most of it the noise check),
  ~14 us per sampled one (on a ~20 us bare span start and end).
  Aggregates are handed to sentry_sdk's :class:`~sentry_sdk.sessions.SessionFlusher` (subclassed,
  and made the client's ``session_flusher``): its thread sends every 60 s, and ``client.flush()``
  and ``close()`` (so ``otel_sentry.flush()``, ``shutdown()`` and SIGTERM) send the rest, as
  ``sessions`` items through the client's transport (rate limits on category ``session``, client
  reports, the spool). Not its ``add_session``: that takes a ``Session`` per request (a uuid4 and
  two ``datetime.now()`` calls on the request thread) and cannot move a count afterwards.

    sessions.install(client, release, enabled=True)   # client.py, after sentry_sdk.init
    tracker = sessions.tracker(noise)   # pipeline.py: the span processor, or None when off
"""

from __future__ import annotations

import fnmatch
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import Attributes
from sentry_sdk.envelope import Envelope
from sentry_sdk.sessions import SessionFlusher
from sentry_sdk.utils import format_timestamp

from otel_sentry._internal.sentry.noise import NoiseFilter
from otel_sentry._internal.sentry.raised_in import raised_in
from otel_sentry._internal.sentry.sampler import _rule_candidates

__all__ = ["RequestSessions", "SessionTracker", "install", "note_event", "tracker"]

EXITED, ERRORED, CRASHED = 0, 1, 2
_NAMES = ("exited", "errored", "crashed")
_MINUTE_NS = 60_000_000_000
# Server spans started and not yet ended; more means spans that never end (an app's leak).
_MAX_OPEN = 100_000
_KEY = "_otel_sentry_request"


class _Request:
    """One request's outcome so far; where it was counted once its span ended."""

    __slots__ = ("counted", "crashed", "errors", "generation", "minute", "trace_id", "unsampled")

    def __init__(self, trace_id: int, unsampled: bool = False) -> None:
        self.trace_id = trace_id
        self.unsampled = unsampled  # counted as it started: its end is never seen
        self.errors = 0
        self.crashed = False
        self.counted = -1  # the outcome it was counted as, once its span ended
        self.minute = 0
        self.generation = -1

    def outcome(self) -> int:
        return CRASHED if self.crashed else ERRORED if self.errors else EXITED


# The request the current context serves (set where its server span starts, as roots.py does).
_current: ContextVar[_Request | None] = ContextVar("otel_sentry_request_session", default=None)


class RequestSessions(SessionFlusher):
    """sentry_sdk's ``SessionFlusher``, fed with per-minute counts instead of ``Session``s.

    ``count`` and ``recount`` run on request threads (a lock, no I/O); ``flush`` on the
    flusher's own thread every ``flush_interval`` seconds and from ``client.flush()``/``close()``.
    Application-mode sessions (``sentry_sdk.start_session()``) still go through sentry_sdk's path.
    """

    def __init__(
        self,
        capture_func: Callable[[Envelope], None],
        release: str,
        environment: str | None,
        flush_interval: int = 60,
    ) -> None:
        super().__init__(capture_func, flush_interval)
        attrs = {"release": release}
        if environment is not None:
            attrs["environment"] = environment
        # SessionFlusher's key for a group: Session.get_json_attrs(), sorted.
        self._attrs = tuple(sorted(attrs.items()))
        self._counts: dict[int, list[int]] = {}
        self._lock = threading.Lock()
        self._generation = 0  # bumped per flush: a count can be moved only before it is sent
        if hasattr(os, "register_at_fork"):
            ref = weakref.WeakMethod(self._after_fork)
            os.register_at_fork(after_in_child=lambda: (m := ref()) and m())

    def _after_fork(self) -> None:
        # The parent sends what it counted; the child starts from nothing (its thread restarts
        # by pid in _ensure_running).
        self._lock = threading.Lock()
        # SessionFlusher's own locks: the parent's flusher thread may have held one at the fork.
        self._aggregate_lock = threading.Lock()
        self._thread_lock = threading.Lock()
        self._counts = {}
        self.pending_aggregates = {}

    def count(self, request: _Request, minute: int) -> None:
        with self._lock:
            outcome = request.outcome()
            row = self._counts.get(minute)
            new = row is None
            if row is None:
                row = self._counts[minute] = [0, 0, 0]
            row[outcome] += 1
            request.counted, request.minute = outcome, minute
            request.generation = self._generation
        if new:  # once a minute: start (or, after a fork, restart) the flusher's thread
            self._ensure_running()

    def note(self, request: _Request, crashed: bool) -> None:
        """An error of ``request``; moves its count if it was counted and not yet sent."""
        with self._lock:
            request.errors += 1
            request.crashed = request.crashed or crashed
            if request.counted < 0 or request.generation != self._generation:
                return
            outcome = request.outcome()
            row = self._counts.get(request.minute)
            if outcome != request.counted and row is not None and row[request.counted] > 0:
                row[request.counted] -= 1
                row[outcome] += 1
                request.counted = outcome

    def flush(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, {}
            self._generation += 1
        if counts:
            # Into SessionFlusher's own structure (what add_aggregate_session builds), so its
            # flush sends them: make_aggregate_envelope, 100 items per envelope, capture_func.
            with self._aggregate_lock:
                states = self.pending_aggregates.setdefault(self._attrs, {})
                for minute, row in sorted(counts.items()):
                    started = datetime.fromtimestamp(minute * 60, timezone.utc)
                    state = states.setdefault(started, {"started": format_timestamp(started)})
                    for name, n in zip(_NAMES, row, strict=True):
                        if n:
                            state[name] = state.get(name, 0) + n
        super().flush()


class SessionTracker(SpanProcessor):
    """Counts each server request (SERVER local root span) once it ends.

    ``on_start``, ``on_end`` and ``count_unsampled`` (the sampler's, for the requests no
    processor sees) run on the request's thread.
    """

    def __init__(self, flusher: RequestSessions, noise: NoiseFilter) -> None:
        self.flusher = flusher
        self._open: dict[int, _Request] = {}
        rules = [p for p, _ in noise.sampling_rules()]
        self._noise = re.compile("|".join(fnmatch.translate(p) for p in rules)) if rules else None

    def counts(self, name: str, attributes: Attributes) -> bool:
        """Whether a request so named is a session (not noise); the sampler asks it too."""
        noise = self._noise
        if noise is None:
            return True
        return not any(noise.match(c) for c in _rule_candidates(name, attributes))

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if span.kind is not SpanKind.SERVER:
            return
        parent = span.parent
        if parent is not None and not parent.is_remote:
            return
        context = span.get_span_context()
        if not self.counts(span.name, span.attributes):
            _current.set(None)  # not a session; nor is the previous request of this thread
            return
        request = _Request(context.trace_id)
        _current.set(request)
        setattr(span, _KEY, request)  # for an error captured after the span ended
        open_ = self._open
        if len(open_) >= _MAX_OPEN:
            open_.pop(next(iter(open_)), None)
        open_[context.span_id] = request

    def count_unsampled(
        self, name: str, attributes: Attributes, trace_id: int, no_rule: bool = False
    ) -> None:
        """A server request not sampled for tracing, counted now (``SentrySampler``).

        ``no_rule``: the sampler's rules, the noise rules among them, matched nothing.
        """
        if not no_rule and not self.counts(name, attributes):
            _current.set(None)
            return
        request = _Request(trace_id, unsampled=True)
        _current.set(request)  # in the request's context: the sampler runs where it starts
        self.flusher.count(request, time.time_ns() // _MINUTE_NS)

    def on_end(self, span: ReadableSpan) -> None:
        if span.kind is not SpanKind.SERVER:
            return
        context = span.context
        request = self._open.pop(context.span_id, None) if context is not None else None
        if request is not None:
            self.flusher.count(request, (span.start_time or 0) // _MINUTE_NS)

    def shutdown(self) -> None:
        global _tracker
        if _tracker is self:
            _tracker = None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # counts are sent by client.flush() (setup.flush calls it)


_flusher: RequestSessions | None = None
_tracker: SessionTracker | None = None


def install(client: Any, release: str | None, *, enabled: bool) -> bool:
    """Make ``client``'s session flusher a :class:`RequestSessions` when sessions are wanted.

    ``enabled``: sentry_sdk's ``auto_session_tracking`` (default on). Without a release nothing
    is counted: sentry_sdk would discard every session (``Client.capture_session``).
    """
    global _flusher
    _flusher = None
    if not enabled or not release:
        return False
    previous = client.session_flusher
    flusher = RequestSessions(previous.capture_func, release, client.options.get("environment"))
    previous.kill()
    client.session_flusher = flusher
    _flusher = flusher
    return True


def tracker(noise: NoiseFilter) -> SessionTracker | None:
    """The span processor for this init()'s client, or None when it counts no sessions."""
    global _tracker
    _tracker = SessionTracker(_flusher, noise) if _flusher is not None else None
    return _tracker


def note_event(event: Mapping[str, Any], hint: Mapping[str, Any] | None) -> None:
    """An error event that is about to be sent: its request is ``errored`` or ``crashed``."""
    active = _tracker
    if active is None:
        return
    values = (event.get("exception") or {}).get("values")
    if not values:
        return  # sentry_sdk counts only events with an exception
    crashed = any(
        isinstance(v, Mapping)
        and isinstance(v.get("mechanism"), Mapping)
        and v["mechanism"].get("handled") is False
        for v in values
    )
    request = _request_of(hint)
    if request is not None:
        active.flusher.note(request, crashed)


def _request_of(hint: Mapping[str, Any] | None) -> _Request | None:
    """The request the event belongs to: the current one, or the one the exception left."""
    current = trace.get_current_span().get_span_context()
    request = _current.get()
    if request is not None and current.is_valid and current.trace_id == request.trace_id:
        return request
    exc_info = hint.get("exc_info") if hint else None
    exc = exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) == 3 else None
    origin = raised_in(exc)
    if origin is not None and (not current.is_valid or current.trace_id == origin.trace_id):
        found = getattr(origin.root, _KEY, None)  # a sampled request's root span
        if isinstance(found, _Request):
            return found
    # Captured just after an unsampled request's span (aiohttp, plain Starlette): its context.
    if request is not None and request.unsampled and not current.is_valid:
        return request
    return None
