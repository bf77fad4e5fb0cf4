"""A count kept on the request thread and reported from another, without a lock.

dropped = DropCounter()
dropped.add()                  # request thread: next() on itertools.count is atomic
n = dropped.since_last_call()  # export thread: how many since it last asked
"""

from __future__ import annotations

import itertools

__all__ = ["DropCounter"]


class DropCounter:
    def __init__(self) -> None:
        self._count = itertools.count()
        self._reported = 0

    def add(self) -> None:
        next(self._count)

    def since_last_call(self) -> int:
        now = next(self._count)  # this call itself advances the count by one
        added = now - self._reported
        self._reported = now + 1
        return added
