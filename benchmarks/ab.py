"""Two revisions of otel_sentry, alternating in fresh processes: what ``*_ab`` benchmarks share.

``request_ab`` and ``export_ab`` each run a worker (their own module with ``--worker``) once per
revision per round, this tree and ``git archive REV`` (``distant.Baseline``), alternating who
goes first, and read the JSON line the worker prints last::

    name, seen = compare("0cb8c49", 4, "benchmarks.export_ab", lambda dsn: [dsn],
                         describe=lambda result: f"{result['min_us']:.1f} us")
    seen["this tree"], seen[name]   # one result per round each
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.distant import REPO, Baseline, worker_env
from benchmarks.sink import SinkProcess

__all__ = ["alternate", "compare", "run_worker"]


def run_worker(tree: Path, module: str, args: list[str]) -> dict[str, Any]:
    """``python -m module --worker *args`` run from ``tree``; its last line, as JSON.

    The worker prints ``otel_sentry.__file__`` as ``file``: a worker that imported another
    tree's package than the one it was run for is an error, not a figure.
    """
    env = worker_env(tree)
    env["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="ab-")  # its own exit spool
    command = [sys.executable, "-m", module, "--worker", *args]
    done = subprocess.run(
        command, cwd=tree, env=env, capture_output=True, text=True, check=True, timeout=300
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if not str(result["file"]).startswith(str(tree)):
        raise RuntimeError(f"the worker imported otel_sentry from {result['file']}, not {tree}")
    return result


def alternate(
    rounds: int,
    trees: dict[str, Path],
    run: Callable[[Path], dict[str, Any]],
    describe: Callable[[dict[str, Any]], str],
) -> dict[str, list[dict[str, Any]]]:
    """``run`` each tree once per round, the order reversed every other round; results by name."""
    seen: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for round_ in range(1, rounds + 1):
        order = list(trees.items())
        if round_ % 2 == 0:  # alternate who goes first
            order.reverse()
        for name, tree in order:
            result = run(tree)
            seen[name].append(result)
            print(f"round {round_} {name:>12}: {describe(result)}", flush=True)
    return seen


def compare(
    baseline_rev: str,
    rounds: int,
    module: str,
    worker_args: Callable[[str], list[str]],
    describe: Callable[[dict[str, Any]], str],
) -> tuple[str, dict[str, list[dict[str, Any]]]]:
    """This tree against ``git archive baseline_rev``, ``rounds`` times, against one sink.

    ``worker_args(dsn)``: the worker's arguments. Returns the baseline's name (``@rev``) and
    the results by name (``this tree`` and that one).
    """
    baseline = Baseline(baseline_rev)
    trees = {"this tree": REPO, f"@{baseline.rev}": baseline.tree}
    try:
        with SinkProcess() as sink:
            seen = alternate(
                rounds,
                trees,
                lambda tree: run_worker(tree, module, worker_args(sink.dsn)),
                describe,
            )
    finally:
        baseline.remove()
    return f"@{baseline.rev}", seen
