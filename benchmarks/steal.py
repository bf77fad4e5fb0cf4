"""A slower host on demand: processes that take a share of every core, as a noisy neighbour does.

The distant-ingest rows at 1000 requests/s need about one core of one interpreter, and whether
they pass followed the host's speed from hour to hour (BENCHMARKS.md, "Behind: the GIL, not the
CPU"). ``Steal(0.3)`` starts one process per core that keeps the core busy 30% of every 10 ms and
sleeps the rest, so a comparison can be run in a slow hour on purpose::

    with Steal(0.3):
        rows = measure_all(args)

    python -m benchmarks.distant --steal 0.3 ...

Each process stops when its parent is gone, and after an hour at most.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from types import TracebackType

__all__ = ["Steal"]

PERIOD = 0.01
LONGEST = 3600.0


class Steal:
    def __init__(self, fraction: float, processes: int | None = None) -> None:
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"--steal takes a fraction of each core in [0, 1), got {fraction}")
        self.fraction = fraction
        self.processes = processes or os.cpu_count() or 1
        self._children: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Steal:
        if self.fraction > 0:
            me = str(os.getpid())
            command = [sys.executable, "-m", "benchmarks.steal", str(self.fraction), me]
            self._children = [subprocess.Popen(command) for _ in range(self.processes)]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for child in self._children:
            child.terminate()
        for child in self._children:
            child.wait(5)
        self._children = []


def _burn(fraction: float, parent: int) -> None:
    busy, began = fraction * PERIOD, time.monotonic()
    while time.monotonic() - began < LONGEST and os.getppid() == parent:
        start = time.perf_counter()
        while time.perf_counter() - start < busy:
            pass
        time.sleep(PERIOD - busy)


if __name__ == "__main__":
    _burn(float(sys.argv[1]), int(sys.argv[2]))
