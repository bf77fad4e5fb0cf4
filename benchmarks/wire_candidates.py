"""The CPU per envelope of the ways to keep many envelopes in flight to Sentry, side by side.

The transport sends through :class:`otel_sentry._internal.sentry.wire.Wire` (one asyncio loop, h2
streams or a pool of kept-alive HTTP/1.1 connections parsed by a hand-written codec). This measures
it against what it could have been built on, and against the design it replaced, each candidate in a
fresh process of its own so its CPU is its own: ``time.process_time()`` (every thread of the
process) around posting ``--n`` copies of one real envelope, up to 128 in flight, after a warm-up
that opens the connections and pays one-time costs (imports, first TLS handshakes)::

    python -m benchmarks.wire_candidates              # 3 repeats, prints the table
    python -m benchmarks.wire_candidates --write      # ... and replaces <!-- bench:wire:* -->
    python -m benchmarks.wire_candidates --quick      # 500 envelopes, 1 repeat, writes nothing

The body is one envelope with a ~2 KB transaction, serialized by sentry_sdk and compressed with
brotli at quality 1 (``Content-Encoding: br``), as the transport sends it, posted as the same
bytes every time: the sink (the project's inbox, counters only) does not deduplicate, and every
row checks that it counted every envelope. See benchmarks/README.md for the candidates.

This module is the runner: it starts the sinks, runs each row's worker
(``benchmarks/wire_worker.py``, which holds the candidates) in a subprocess, reads its figures,
and summarizes and renders them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.cpu import ForeignCpu
from benchmarks.distant import REPO, set_delay, worker_env
from benchmarks.report import BUSY_CORES, replace_section
from benchmarks.run import wait_for_quiet
from benchmarks.sink import SinkProcess
from benchmarks.wire_worker import IN_FLIGHT

START_MARKER = "<!-- bench:wire:start -->"
END_MARKER = "<!-- bench:wire:end -->"
# name -> (over TLS, what it is)
CANDIDATES: dict[str, tuple[bool, str]] = {
    "wire-h1": (False, "our Wire: pooled HTTP/1.1, hand-written codec, plain HTTP"),
    "wire-h2": (True, "our Wire: HTTP/2 streams (h2) over TLS"),
    "wire-h1-tls": (True, "our Wire with http2=False: pooled HTTP/1.1 over TLS"),
    "h11-h1": (False, "our Wire's pool with an h11.Connection codec in place of ours"),
    "httpcore-h1": (False, "httpcore.AsyncConnectionPool(max_connections=128), 128 tasks"),
    "httpcore-h2": (True, "httpcore.AsyncConnectionPool(http2=True), 128 tasks, TLS"),
    "threads-h1": (False, "previous design: 4 threads, one blocking keep-alive connection each"),
    "threads-h1-tls": (True, "the same over TLS"),
}
DELAYED = ("wire-h1", "wire-h2", "threads-h1")  # also run at --delay-ms


def run_one(
    sink: SinkProcess, name: str, latency_ms: int, n: int, repeat: int, quiet_wait: float
) -> dict[str, Any]:
    warmup = 256 if not name.startswith("threads") else 32
    row: dict[str, Any] = {"candidate": name, "latency_ms": latency_ms, "repeat": repeat, "n": n}
    command = [sys.executable, "-m", "benchmarks.wire_worker", name]
    command += ["--dsn", sink.dsn, "--n", str(n), "--warmup", str(warmup)]
    if sink.ca_file:
        command += ["--ca-file", sink.ca_file]
    if quiet_wait > 0:
        wait_for_quiet(sink, quiet_wait)
    sink.clear()
    set_delay(sink, latency_ms / 1000)
    try:
        with ForeignCpu(sink.pid) as foreign:
            done = subprocess.run(
                command,
                check=False,
                capture_output=True,
                text=True,
                env=worker_env(),
                cwd=REPO,
                timeout=600,
            )
    finally:
        set_delay(sink, 0)
    row["foreign_cores"] = foreign.cores
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        return {**row, "error": tail[0][:200]}
    row.update(json.loads(lines[-1]))
    counts = sink.stats()["counts"]
    row["delivered"] = int(counts.get("items", {}).get("transaction", 0))
    row["rejected"] = counts.get("rejected") or {}
    row["cpu_us"] = row["cpu_s"] * 1e6 / n
    row["per_s"] = n / row["wall_s"]
    return row


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per candidate and latency, with its ratio to the same-TLS threads anchor."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["candidate"], run["latency_ms"]), []).append(run)
    rows = []
    for (name, latency), group in groups.items():
        ok = [r for r in group if "cpu_us" in r]
        cpu = [r["cpu_us"] for r in ok]
        notes = [f"repeat {r['repeat'] + 1}: {r['error']}" for r in group if r.get("error")]
        for r in ok:
            expected = r["n"] + r["warmup"]
            if r["failed"] or r["delivered"] != expected or r["rejected"]:
                timed = r["failed"] - r["warmup_failed"]
                notes.append(
                    f"repeat {r['repeat'] + 1}: {r['warmup_failed']} failed in the warm-up and "
                    f"{timed} in the timed sends ({r['error']}); the sink counted "
                    f"{r['delivered']} of {expected}, rejected {r['rejected'] or 0}"
                )
        foreign = [r["foreign_cores"] for r in group if r.get("foreign_cores") is not None]
        rows.append(
            {
                "candidate": name,
                "latency_ms": latency,
                "tls": CANDIDATES[name][0],
                "n": group[0]["n"],
                "cpu_us": statistics.median(cpu) if cpu else None,
                "cpu_min": min(cpu) if cpu else None,
                "per_s": statistics.median(r["per_s"] for r in ok) if ok else None,
                "connections": max((r["connections"] or 0 for r in ok), default=None),
                "foreign": max(foreign) if foreign else None,
                "body_bytes": ok[0]["body_bytes"] if ok else None,
                "notes": notes,
            }
        )
    for row in rows:
        anchor_name = "threads-h1-tls" if row["tls"] else "threads-h1"
        anchor = _row(rows, anchor_name, row["latency_ms"])
        row["anchor_at"] = row["latency_ms"]
        if anchor is None or anchor["cpu_us"] is None:
            anchor, row["anchor_at"] = _row(rows, anchor_name, 0), 0
        row["ratio"] = (
            row["cpu_us"] / anchor["cpu_us"]
            if anchor is not None and anchor["cpu_us"] and row["cpu_us"] is not None
            else None
        )
    return rows


def _row(rows: list[dict[str, Any]], name: str, latency: int) -> dict[str, Any] | None:
    return next((r for r in rows if r["candidate"] == name and r["latency_ms"] == latency), None)


def _num(value: float | None, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def findings(rows: list[dict[str, Any]]) -> list[str]:
    """What the figures say, computed from them so a new run cannot contradict its own text."""
    cpu = {r["candidate"]: r["cpu_us"] for r in rows if r["latency_ms"] == 0 and r["cpu_us"]}
    out = []
    if cpu:
        best = min(cpu, key=cpu.__getitem__)
        out.append(f"Cheapest at 0 ms: `{best}`, {cpu[best]:.0f} us of CPU per envelope.")

    def versus(a: str, b: str, text: str) -> None:
        if a in cpu and b in cpu:
            out.append(text.format(a=f"`{a}`", b=f"`{b}`", r=cpu[a] / cpu[b]))

    versus("wire-h1", "threads-h1", "Over plain HTTP {a} costs {r:.2f}x the CPU of {b}.")
    versus("wire-h2", "wire-h1-tls", "Over TLS, h2 ({a}) costs {r:.2f}x HTTP/1.1 ({b}),")
    versus("wire-h2", "threads-h1-tls", "and {r:.2f}x the previous design over TLS ({b}).")
    versus(
        "h11-h1",
        "wire-h1",
        "With h11 in place of the hand-written codec ({a}) the same pool costs {r:.2f}x {b}.",
    )
    versus("httpcore-h1", "wire-h1", "httpcore's pool ({a}) costs {r:.2f}x {b};")
    versus("httpcore-h2", "wire-h2", "over h2 ({a}) {r:.2f}x {b}.")
    stalled = sorted({r["candidate"] for r in rows if any("timed sends" in n for n in r["notes"])})
    if stalled:
        out.append(
            f"Requests failed in {', '.join(f'`{c}`' for c in stalled)} (Notes): the plain sink "
            "(socketserver, accept backlog 5) drops connects when a pool opens dozens at once, "
            "and a request sent on such a connection waits for its timeout, so those rows' "
            "envelopes/s measure that wait more than the candidate."
        )
    slow = {r["candidate"]: r for r in rows if r["latency_ms"] > 0 and r["per_s"]}
    anchor = slow.get("threads-h1")
    if anchor:
        for name in ("wire-h1", "wire-h2"):
            if name in slow:
                out.append(
                    f"At {anchor['latency_ms']} ms `{name}` moves {slow[name]['per_s']:.0f} "
                    f"envelopes/s against {anchor['per_s']:.0f}/s for `threads-h1`."
                )
    return out


def render(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        START_MARKER,
        "## Envelopes in flight: the CPU of each way to send them",
        "",
        f"Measured with `{meta['command']}` ({meta['stamp']}, {meta['elapsed_s']:.0f} s; "
        f"{meta['repeat']} repeat(s), interleaved). Each row is a fresh process posting the "
        f"same envelope (a ~2 KB transaction, {meta['body_bytes']} bytes after brotli quality "
        f"1) to the sink (the project's inbox, its own process), up to {IN_FLIGHT} in flight "
        "(`threads-*`: 4), after a warm-up that opens the connections. CPU = "
        "`time.process_time()` of the whole process over the sends, per envelope (median of "
        "the repeats, min in brackets); `x threads` divides it by `threads-h1` (plain rows) or "
        "`threads-h1-tls` (TLS rows) of the same latency (of 0 ms where marked `@0`). The sink "
        'answers `latency ms` late (inbox fault `{"delay": x}`). Every row\'s envelopes were '
        "all counted by the sink unless a note says otherwise. See benchmarks/README.md.",
        "",
        f"Noise: other processes used up to {_num(meta['foreign_max'], '.2f')} cores during a "
        f"row (median {_num(meta['foreign_median'], '.2f')}).",
        "",
        "| candidate | what it is | latency ms | envelopes | CPU us/envelope | x threads | "
        "envelopes/s | connections |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = _num(r["ratio"], ".2f") + ("x" if r["ratio"] is not None else "")
        if r["ratio"] is not None and r["anchor_at"] != r["latency_ms"]:
            ratio += " @0"
        lines.append(
            f"| `{r['candidate']}` | {CANDIDATES[r['candidate']][1]} | {r['latency_ms']} | "
            f"{r['n']} | {_num(r['cpu_us'])} ({_num(r['cpu_min'])}) | {ratio} | "
            f"{_num(r['per_s'])} | {_num(r['connections'])} |"
        )
    lines += ["", " ".join(findings(rows))]
    notes = [f"`{r['candidate']}` {r['latency_ms']} ms: {n}" for r in rows for n in r["notes"]]
    notes += [
        f"`{r['candidate']}` {r['latency_ms']} ms: other processes used {r['foreign']:.2f} cores"
        for r in rows
        if r["foreign"] is not None and r["foreign"] > BUSY_CORES
    ]
    if notes:
        lines += ["", "Notes:", "", *[f"- {note}" for note in notes]]
    lines.append(END_MARKER)
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace the section; the first time, its markers go right after the distant section."""
    replace_section(path, section, START_MARKER, END_MARKER, after="<!-- bench:distant:end -->")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.wire_candidates", description=__doc__
    )
    parser.add_argument("--n", type=int, default=5000, help="envelopes per row, after warm-up")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--delay-ms", type=int, default=50, help="the latency of the slow rows")
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--quiet-wait", type=float, default=3.0, help="seconds, per row (0: don't)")
    parser.add_argument("--quick", action="store_true", help="500 envelopes, 1 repeat, no write")
    parser.add_argument("--write", action="store_true", help="replace the section in BENCHMARKS.md")
    parser.add_argument("--json", help="also write every run's raw figures here")
    parser.add_argument("--from-json", help="measure nothing: render (and --write) a --json run")
    args = parser.parse_args(argv)
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        return _report(summarize(saved["runs"]), saved["meta"], args)
    if args.quick:
        args.n, args.repeat, args.quiet_wait, args.write = 500, 1, 0.0, False
    names = [c.strip() for c in args.candidates.split(",") if c.strip()]
    unknown = [c for c in names if c not in CANDIDATES]
    if unknown:
        print(f"unknown candidate(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    plan = [(c, 0) for c in names] + [(c, args.delay_ms) for c in names if c in DELAYED]
    started, runs = time.monotonic(), []
    with SinkProcess() as plain, SinkProcess(tls=True, http2=True) as tls:
        for repeat in range(args.repeat):
            for name, latency in plan:
                # A blocking sender gets 1/latency per thread: fewer envelopes keep it short.
                n = args.n if not (latency and name.startswith("threads")) else args.n // 5
                sink = tls if CANDIDATES[name][0] else plain
                run = run_one(sink, name, latency, max(n, 50), repeat, args.quiet_wait)
                print(json.dumps(run), flush=True)
                runs.append(run)
    rows = summarize(runs)
    foreign = [r["foreign_cores"] for r in runs if r.get("foreign_cores") is not None]
    argv_text = " ".join(argv if argv is not None else sys.argv[1:])
    meta = {
        "command": f"python -m benchmarks.wire_candidates {argv_text}".strip(),
        "stamp": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "elapsed_s": time.monotonic() - started,
        "repeat": args.repeat,
        "body_bytes": next((r["body_bytes"] for r in rows if r["body_bytes"]), "?"),
        "foreign_max": max(foreign) if foreign else None,
        "foreign_median": statistics.median(foreign) if foreign else None,
    }
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "runs": runs}, indent=2))
    return _report(rows, meta, args)


def _report(rows: list[dict[str, Any]], meta: dict[str, Any], args: argparse.Namespace) -> int:
    section = render(rows, meta)
    print(section)
    if args.write:
        write_section(REPO / "BENCHMARKS.md", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
