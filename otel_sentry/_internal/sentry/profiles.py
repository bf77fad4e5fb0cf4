"""Profiles tied to OpenTelemetry spans, recorded by sentry_sdk's own profilers.

A service moving from sentry_sdk keeps ``profiles_sample_rate`` (or ``profiles_sampler``) and
``profile_session_sample_rate`` with ``profile_lifecycle``. ``init()`` passes them on to
``sentry_sdk.init``, which sets its profilers up as it always does: the transaction profiler's
scheduler (one sampler thread, 101 stacks a second) or the continuous profiler, which cuts
60-second chunks and sends them through the client's transport (ours). What sentry_sdk's
``Transaction`` does with them at its start and end, :class:`ProfileRecorder` does at a local
root span's start and end, since transactions here are built from OpenTelemetry spans:

- a sampled local root starts: a sentry_sdk ``Profile``, sampled by sentry_sdk's rules
  (``profiles_sampler`` gets the context a ``traces_sampler`` gets); with
  ``profile_lifecycle="trace"``, the continuous profiler runs while such a root is open;
- while a continuous profiler runs, every span gets sentry_sdk's span data ``thread.id``,
  ``thread.name`` and ``profiler_id``, so Sentry can cut the chunk by span; the transaction
  names the profiler in ``contexts.profile`` (``transactions.py``);
- the root ends: the profile stops, on the request thread, as sentry_sdk stops it;
- the export thread builds the transaction, and :meth:`ProfileRecorder.envelope_item` makes the
  ``profile`` item of its envelope with sentry_sdk's ``Profile.to_json``, from the transaction as
  it is sent (after the hooks), as sentry_sdk's client does.

Reused as is: the schedulers and their thread, ``Profile`` (decision, ``start``, ``stop``,
``valid`` with its client reports, ``to_json``), the continuous profiler's lifecycle, chunks and
sending. Not reused: ``Profile.__enter__``/``__exit__`` and ``Scope.start_transaction``'s wiring,
which hang the profile on a sentry_sdk ``Transaction`` and its scope; span start and end here.

    recorder = ProfileRecorder.from_client()   # None unless profiling is configured
"""

from __future__ import annotations

import weakref
from datetime import datetime, timezone
from typing import Any

import sentry_sdk
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import INVALID_SPAN_CONTEXT
from sentry_sdk.envelope import Item, PayloadRef
from sentry_sdk.profiler import continuous_profiler
from sentry_sdk.profiler.continuous_profiler import (
    ContinuousProfile,
    get_profiler_id,
    try_profile_lifecycle_trace_start,
)
from sentry_sdk.profiler.transaction_profiler import Profile, has_profiling_enabled
from sentry_sdk.utils import format_timestamp, get_current_thread_meta, nanosecond_time

from otel_sentry._internal.sentry.encode import dumps
from otel_sentry._internal.sentry.sampler import sampling_context

__all__ = ["PROFILER_ID", "ProfileRecorder"]

# sentry_sdk's span data keys (``SPANDATA``); ``thread.*`` are OpenTelemetry's too.
PROFILER_ID = "profiler_id"
THREAD_ID = "thread.id"
THREAD_NAME = "thread.name"


class ProfileRecorder(SpanProcessor):
    """Starts and stops sentry_sdk's profilers with sampled local roots; see the module.

    ``transaction_profiles``: sentry_sdk's transaction profiler is set up (``profiles_sample_rate``
    > 0 or a ``profiles_sampler``). ``continuous``: this process's continuous-profiling session
    was sampled (``profile_session_sample_rate``). Threads: ``on_start``/``on_end`` run on the
    request threads and take no lock; :meth:`envelope_item` runs on the export thread.
    """

    def __init__(self, *, transaction_profiles: bool, continuous: bool) -> None:
        self.transaction_profiles = transaction_profiles
        self.continuous = continuous
        # Open roots, by span id. A root that never ends keeps its entry, as a sentry_sdk
        # transaction that is never finished keeps its profile.
        self._open: dict[int, tuple[Profile | None, ContinuousProfile | None]] = {}
        # Ended roots -> their profile, until the export thread builds the transaction. Keyed by
        # the ReadableSpan the exporter queues, weakly: a transaction dropped on the way (queue
        # full, a hook) takes its profile with it.
        self._ended: weakref.WeakKeyDictionary[ReadableSpan, Profile] = weakref.WeakKeyDictionary()

    @classmethod
    def from_client(cls) -> ProfileRecorder | None:
        """A recorder for what the current sentry_sdk client set up, or None."""
        client = sentry_sdk.get_client()
        if not client.is_active():
            return None
        transaction_profiles = has_profiling_enabled(client.options)
        continuous = not transaction_profiles and continuous_profiler.is_profile_session_sampled()
        if not (transaction_profiles or continuous):
            return None
        return cls(transaction_profiles=transaction_profiles, continuous=continuous)

    # -- request threads ------------------------------------------------------------------------
    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        parent = span.parent
        if (parent is None or parent.is_remote) and span.context.trace_flags.sampled:
            self._start_root(span)
        if self.continuous:
            profiler_id = get_profiler_id()  # None while the profiler is not running
            if profiler_id is not None:
                # As sentry_sdk's Span.__init__ records them. thread.id stays an int, as
                # OpenTelemetry's semantic conventions have it; Relay takes an int or a string.
                thread_id, thread_name = get_current_thread_meta()
                span.set_attributes(
                    {
                        THREAD_ID: thread_id or 0,
                        THREAD_NAME: thread_name or "",
                        PROFILER_ID: profiler_id,
                    }
                )

    def _start_root(self, span: Span) -> None:
        profile: Profile | None = None
        if self.transaction_profiles:
            # Started at the span's start, in the profiler's own clock (perf_counter ns).
            profile = Profile(True, nanosecond_time())
            options = sentry_sdk.get_client().options
            context = _sampling_context(span) if options.get("profiles_sampler") else {}
            profile._set_initial_sampling_decision(sampling_context=context)
            if profile.sampled:
                profile.start()
            else:
                profile.valid()  # sentry_sdk's client report for a profile sampled out
                profile = None
        # sentry_sdk's "trace" lifecycle: None unless that lifecycle and a sampled session.
        lifecycle = try_profile_lifecycle_trace_start() if self.continuous else None
        if profile is not None or lifecycle is not None:
            self._open[span.context.span_id] = (profile, lifecycle)

    def on_end(self, span: ReadableSpan) -> None:
        if not self._open:
            return
        context = span.context
        if context is None:
            return
        entry = self._open.pop(context.span_id, None)
        if entry is None:
            return
        profile, lifecycle = entry
        if lifecycle is not None:
            lifecycle.stop()  # the profiler stops once no sampled root is open
        if profile is not None:
            profile.stop()
            self._ended[span] = profile

    # -- export thread --------------------------------------------------------------------------
    def envelope_item(self, root: ReadableSpan, event: dict[str, Any]) -> Item | None:
        """The ``profile`` item for ``event``, the transaction of ``root`` as it will be sent."""
        profile = self._ended.pop(root, None)
        if profile is None or not profile.valid():  # valid() reports too few samples
            return None
        # sentry_sdk's client hands to_json the prepared event, whose timestamps are RFC 3339
        # strings by then (Relay reads the profile's "timestamp" as one).
        start = datetime.fromtimestamp(event["start_timestamp"], timezone.utc)
        prepared: Any = {**event, "start_timestamp": format_timestamp(start)}  # sentry_sdk's Event
        payload = profile.to_json(prepared, sentry_sdk.get_client().options)
        return Item(payload=PayloadRef(bytes=dumps(payload), json=payload), type="profile")

    # -- lifecycle ------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop what is still open, and send the continuous profiler's last chunk now, while
        the client that sends it is still there (sentry_sdk leaves it to its atexit hook)."""
        for key in list(self._open):
            entry = self._open.pop(key, None)
            if entry is not None and entry[1] is not None:
                entry[1].stop()
        scheduler = continuous_profiler._scheduler  # no public handle; teardown() is public
        if self.continuous and scheduler is not None and scheduler.running:
            scheduler.teardown()  # joins its thread, which flushes the chunk on the way out

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def _sampling_context(span: Span) -> dict[str, Any]:
    """What sentry_sdk gives a ``profiles_sampler``: its ``traces_sampler`` context, sampled."""
    parent = span.parent or INVALID_SPAN_CONTEXT
    context = sampling_context(
        span.name,
        span.kind,
        span.attributes,
        parent.trace_flags.sampled if parent.is_valid else None,
        None,
        span.context.trace_id,
        parent,
    )
    transaction = context["transaction_context"]
    transaction["span_id"] = f"{span.context.span_id:016x}"
    transaction["sampled"] = True
    return context
