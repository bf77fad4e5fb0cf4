"""Finished spans -> segments: one per local root span, with all its descendants in this process.

A Sentry transaction is a local root span (no parent, or a parent in another process) and the
spans below it. Spans finish children-first, so children wait here, keyed by parent, until their
root arrives. Nothing is lost on the way: a child that ends after its root was sent becomes a
*late* segment of its own (same trace, parent pointing at the sent span), and children whose
root never comes (a leaked span, a root dropped upstream) are sent as *orphans* once they have
waited ``max_wait`` seconds or the buffer is full. Memory is bounded by ``max_pending`` spans.

This runs on the export thread only; it is not thread-safe and does not need to be.

    >>> buffer = SegmentBuffer()
    >>> buffer.add(span)   # the segment, once the root of ``span`` has arrived  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["Segment", "SegmentBuffer", "is_local_root"]


@dataclass(slots=True)
class Segment:
    root: ReadableSpan
    children: list[ReadableSpan]
    kind: str = "complete"  # "complete" | "late" | "orphan"
    dropped: int = 0  # children over the per-transaction cap, counted not sent
    # keep_error_traces (keep_errors.py): the segment holds an error, so it is sent whatever the
    # head decided (weighted 1); ``head_sampled`` False: sent only for that error.
    errored: bool = False
    head_sampled: bool = True


class SegmentBuffer:
    def __init__(
        self,
        max_children: int = 1000,
        max_pending: int = 20_000,
        max_wait: float = 300.0,
        remember_sent: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
        size: Callable[[ReadableSpan], int] | None = None,
        max_bytes: int = 0,
    ) -> None:
        self.max_children = max_children
        self.max_pending = max_pending
        self.max_wait = max_wait
        self.remember_sent = remember_sent
        self._clock = clock
        # Optional byte budget: ``size`` estimates a span, ``max_bytes`` bounds what waits.
        self._size = size
        self.max_bytes = max_bytes
        self.pending_bytes = 0
        self.shed = 0  # children let go early because a budget was full
        self._children: dict[int, list[ReadableSpan]] = {}
        self._waiting_since: OrderedDict[int, float] = OrderedDict()
        self._sent: OrderedDict[int, None] = OrderedDict()
        self.pending = 0

    def add(self, span: ReadableSpan) -> Segment | None:
        """File a finished span; returns its segment when ``span`` completes one."""
        parent = span.parent
        if parent is None or parent.is_remote:
            return self._collect(span, "complete")
        if parent.span_id in self._sent:
            return self._collect(span, "late")
        siblings = self._children.get(parent.span_id)
        if siblings is None:
            self._children[parent.span_id] = [span]
            self._waiting_since[parent.span_id] = self._clock()
        else:
            siblings.append(span)
        self.pending += 1
        if self._size is not None:
            self.pending_bytes += self._size(span)
        return None

    def expire(self, flush_all: bool = False) -> list[Segment]:
        """Release children that waited too long (or all of them): each becomes an orphan root."""
        out: list[Segment] = []
        deadline = self._clock() - self.max_wait
        while self._waiting_since:
            parent_id, since = next(iter(self._waiting_since.items()))
            full = self.pending > self.max_pending or (
                self.max_bytes > 0 and self.pending_bytes > self.max_bytes
            )
            if not (flush_all or since <= deadline or full):
                break
            del self._waiting_since[parent_id]
            orphans = self._children.pop(parent_id, [])
            self.pending -= len(orphans)
            self._unhold(orphans)
            if full and not flush_all and since > deadline:
                self.shed += len(orphans)
            for orphan in orphans:
                out.append(self._collect(orphan, "orphan"))
        return out

    def _collect(self, root: ReadableSpan, kind: str) -> Segment:
        children: list[ReadableSpan] = []
        stack = [root.context.span_id]
        while stack:
            parent_id = stack.pop()
            found = self._children.pop(parent_id, None)
            if found:
                del self._waiting_since[parent_id]
                children.extend(found)
                stack.extend(c.context.span_id for c in found)
        self.pending -= len(children)
        self._unhold(children)
        self._remember(root, children)
        dropped = 0
        if len(children) > self.max_children:
            children.sort(key=_start)  # keep the first spans: they explain what came after
            dropped = len(children) - self.max_children
            del children[self.max_children :]
        return Segment(root, children, kind, dropped)

    def _unhold(self, spans: list[ReadableSpan]) -> None:
        size = self._size
        if size is not None and spans:
            self.pending_bytes -= sum(size(s) for s in spans)

    def _remember(self, root: ReadableSpan, children: list[ReadableSpan]) -> None:
        sent = self._sent
        sent[root.context.span_id] = None
        for child in children:
            sent[child.context.span_id] = None
        while len(sent) > self.remember_sent:
            sent.popitem(last=False)


def _start(span: ReadableSpan) -> int:
    return span.start_time or 0


def is_local_root(span: ReadableSpan) -> bool:
    """The root of a transaction here: no parent, or a parent in another process."""
    parent = span.parent
    return parent is None or parent.is_remote
