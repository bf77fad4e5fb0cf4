"""How much CPU other processes took while a setup ran: the noise a shared machine adds.

Benchmarks here share 2 cores with whatever else runs (test suites, builds). Wall-clock numbers
taken while another process competes for a core are not comparable, so every run records the
CPU used by everyone except the worker, the sink and the runner, in cores::

    with ForeignCpu(sink_pid) as foreign:
        subprocess.run(worker)
    foreign.cores   # e.g. 0.9: another process kept one core busy for the whole run

Linux only (``/proc``); elsewhere ``cores`` stays None.
"""

from __future__ import annotations

import os
import resource
import time
from types import TracebackType

__all__ = ["ForeignCpu", "process_seconds"]

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _busy_seconds() -> float | None:
    """CPU seconds all cores spent not idle since boot."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal ...: idle and iowait are not busy.
    busy = sum(fields[:8]) - fields[3] - fields[4]
    return busy / _TICK


def process_seconds(pid: int | None) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far; 0.0 when it is gone."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            # The command name may hold spaces: fields are counted after its closing parenthesis.
            after = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(after[11]) + int(after[12])) / _TICK  # utime, stime


def _own_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # waited-for workers
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class ForeignCpu:
    """Measures, over a ``with`` block, the cores busy with processes other than ours."""

    def __init__(self, sink_pid: int | None) -> None:
        self.sink_pid = sink_pid
        self.cores: float | None = None
        # Also, over the same wall time: the sink's cores, and ours (this process and the
        # workers it waited for), to tell a saturated machine from a slow setup.
        self.sink_cores: float | None = None
        self.own_cores: float | None = None

    def __enter__(self) -> ForeignCpu:
        self._start = (
            time.monotonic(),
            _busy_seconds(),
            _own_seconds(),
            process_seconds(self.sink_pid),
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        wall0, busy0, own0, sink0 = self._start
        busy1 = _busy_seconds()
        if busy0 is None or busy1 is None:
            return
        wall = time.monotonic() - wall0
        own = _own_seconds() - own0
        sink = process_seconds(self.sink_pid) - sink0
        if wall > 0:
            self.cores = max(0.0, (busy1 - busy0 - own - sink) / wall)
            self.sink_cores, self.own_cores = sink / wall, own / wall
