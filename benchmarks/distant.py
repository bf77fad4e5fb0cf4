"""Distant ingest: how much reaches a Sentry that answers 20-150 ms late, and at what cost.

The real Sentry is 20-150 ms away. A transport that sends one envelope at a time gets at most
1/latency envelopes per second through (20 per second at 50 ms), far below one transaction per
request at a few hundred requests per second; whatever it cannot send has to be reported,
spooled or is lost. Each row here is one setup in a fresh worker process
(``benchmarks/distant_worker.py``) at one ingest latency over one protocol:

- the sink (``benchmarks/sink.py``, the project's inbox in its own process) delays every ingest
  answer by the row's latency (inbox fault ``{"delay": x}``, set before the worker starts and
  cleared after it exits), over plain HTTP/1.1 (``http1``) or TLS offering h2 by ALPN (``h2``;
  ``http1-tls``: TLS offering http/1.1 only);
- the worker drives the FastAPI app at ``--rps`` for ``--duration`` s, flushes with 30 s, reads
  the sink's count (delivered by the end of the flush) and its own sender CPU, and exits;
- after it exited, the runner reads the sink's count again (delivered), the client reports that
  arrived (reported), and the transactions left on disk at exit (spooled: otel_sentry's exit
  spool, pointed into the row's directory); what is in none of them is ``unaccounted``: lost
  without a trace.

    python -m benchmarks.distant                      # every row (~25 min), prints the table
    python -m benchmarks.distant --quick              # 5 s rows, 0 and 50 ms, two setups
    python -m benchmarks.distant --write --json distant.json
    python -m benchmarks.distant --setups otel_sentry,sentry_native --latencies 0,50 --protos http1
    python -m benchmarks.distant --check              # exit 1 unless otel_sentry passes
    python -m benchmarks.distant --setups otel_sentry --baseline f43e845   # + the old revision

``--baseline REV`` adds a row ``otel_sentry@REV`` under every ``otel_sentry`` row: the same
worker (the current ``benchmarks/``) run from ``git archive REV`` exported to a temporary
directory, so ``import otel_sentry`` is that revision's; the sink always runs from this tree.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.cpu import ForeignCpu
from benchmarks.distant_report import END_MARKER, START_MARKER, check, render
from benchmarks.report import replace_section
from benchmarks.run import wait_for_quiet
from benchmarks.sink import SinkProcess
from benchmarks.steal import Steal

__all__ = ["Baseline", "count_spooled", "main", "run_row"]

REPO = Path(__file__).resolve().parent.parent
SETUPS = ("otel_sentry", "otel_otlp", "sentry_native", "sentry_http2")
H2_ONLY = ("sentry_http2",)  # sentry_sdk's HTTP/2 transport negotiates h2 over TLS only
LATENCIES = (0, 20, 50, 150)
PROTOS = ("http1", "h2")
WARMUP = 200  # distant_worker.WARMUP, not imported: that module is the worker's, not ours


def worker_env(tree: Path = REPO) -> dict[str, str]:
    """The environment without SENTRY_*, OTEL_* or CA settings: only the setup configures.

    ``tree`` goes first on PYTHONPATH: the repository, or a ``--baseline`` revision's export.
    """
    drop = ("SENTRY_", "OTEL_", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tree), env.get("PYTHONPATH")) if p)
    return env


class Baseline:
    """An earlier revision's tree, exported to a temporary directory, with today's benchmarks/.

    ``git archive REV | tar -x`` (no network, no checkout touched); then ``benchmarks/`` is
    replaced by the current one, so the same worker code drives the old ``otel_sentry``.
    """

    def __init__(self, rev: str) -> None:
        done = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", f"{rev}^{{commit}}"],
            check=False,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise ValueError(f"--baseline {rev}: not a commit ({done.stderr.strip()})")
        self.rev = done.stdout.strip()
        self.setup = f"otel_sentry@{self.rev}"
        self.tree = Path(tempfile.mkdtemp(prefix=f"distant-baseline-{self.rev}-"))
        try:
            archive = subprocess.Popen(
                ["git", "-C", str(REPO), "archive", self.rev], stdout=subprocess.PIPE
            )
            untar = subprocess.run(
                ["tar", "-x", "-C", str(self.tree)], stdin=archive.stdout, check=False
            )
            assert archive.stdout is not None
            archive.stdout.close()
            if archive.wait() != 0 or untar.returncode != 0:
                raise RuntimeError(f"git archive {self.rev} | tar -x failed")
            if not (self.tree / "otel_sentry" / "__init__.py").is_file():
                raise RuntimeError(f"{self.rev} has no otel_sentry/ package")
            shutil.rmtree(self.tree / "benchmarks", ignore_errors=True)
            shutil.copytree(
                REPO / "benchmarks",
                self.tree / "benchmarks",
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
        except BaseException:
            self.remove()
            raise

    def remove(self) -> None:
        shutil.rmtree(self.tree, ignore_errors=True)


def _check_import(row_setup: str, imported: str | None, tree: Path) -> None:
    """Stop the run if a worker imported otel_sentry from the wrong tree: its row is not its."""
    if imported is None:
        raise RuntimeError(f"{row_setup}: the worker did not report otel_sentry.__file__")
    if not Path(imported).resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(
            f"{row_setup}: the worker imported otel_sentry from {imported}, not from {tree}"
        )


def set_delay(sink: SinkProcess, seconds: float) -> None:
    """The inbox's fault switch: every ingest answer ``seconds`` late, or none (0)."""
    method, data = (
        ("POST", json.dumps({"delay": seconds}).encode()) if seconds else ("DELETE", None)
    )
    request = urllib.request.Request(f"{sink.url}/api/_inbox/fault", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    context = None
    if sink.ca_file:
        import ssl

        context = ssl.create_default_context(cafile=sink.ca_file)
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        response.read()


def count_spooled(directory: Path) -> tuple[int, int, int]:
    """(envelope files, transaction items in them, files that did not parse) under ``directory``."""
    from sentry_sdk.envelope import Envelope

    files = transactions = broken = 0
    for path in directory.rglob("*.env"):
        files += 1
        try:
            envelope = Envelope.deserialize(path.read_bytes())
        except Exception:
            broken += 1
            continue
        transactions += sum(1 for item in envelope.items if item.type == "transaction")
    return files, transactions, broken


def _delivered(counts: dict[str, Any], unit: str) -> int:
    if unit == "spans":
        return int(counts.get("otlp_spans", 0))
    return int(counts.get("items", {}).get("transaction", 0))


def _settled_counts(sink: SinkProcess, latency: float, unit: str) -> dict[str, Any]:
    """The sink's counts once they stop moving: requests in flight at exit still land late."""
    counts = sink.stats()["counts"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.5 + 2 * latency)
        again = sink.stats()["counts"]
        if _delivered(again, unit) == _delivered(counts, unit) and again.get(
            "discarded"
        ) == counts.get("discarded"):
            return again
        counts = again
    return counts


def run_row(
    sink: SinkProcess,
    proto: str,
    setup: str,
    latency_ms: int,
    args: argparse.Namespace,
    baseline: Baseline | None = None,
    worker_args: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One fresh worker at one latency; the row as the report reads it.

    ``setup`` is the row's name; ``otel_sentry@REV`` runs the ``otel_sentry`` setup from the
    ``baseline`` tree. ``worker_args``: more for the worker (``benchmarks.backlog``'s
    ``--watch``, whose samples the row keeps as ``watch``).
    """
    row: dict[str, Any] = {"proto": proto, "setup": setup, "latency_ms": latency_ms}
    tree = REPO
    worker_setup = setup
    if baseline is not None and setup == baseline.setup:
        tree, worker_setup = baseline.tree, "otel_sentry"
    spool = Path(tempfile.mkdtemp(prefix="distant-spool-"))
    command = [sys.executable, "-m", "benchmarks.distant_worker", "--setup", worker_setup]
    command += ["--dsn", sink.dsn, "--spool-dir", str(spool), "--rps", str(args.rps)]
    command += ["--duration", str(args.duration), *worker_args]
    if getattr(args, "load_shedding", False):
        command.append("--load-shedding")
    if sink.ca_file:
        command += ["--ca-file", sink.ca_file]
    if args.quiet_wait > 0:
        wait_for_quiet(sink, args.quiet_wait)
    sink.clear()
    set_delay(sink, latency_ms / 1000)
    try:
        with ForeignCpu(sink.pid) as foreign:
            done = subprocess.run(
                command,
                check=False,
                capture_output=True,
                text=True,
                env=worker_env(tree),
                cwd=tree,
                timeout=args.duration + 150,
            )
        exited_at = time.time()
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            tail = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
            row["error"] = tail[0][:200]
            return row
        result = json.loads(lines[-1])
        row["otel_sentry_file"] = result.get("otel_sentry_file")
        if worker_setup == "otel_sentry":
            _check_import(setup, row["otel_sentry_file"], tree)
        row["exit_s"] = round(exited_at - result["printed_at"], 2)
        after = _settled_counts(sink, latency_ms / 1000, result["unit"])
    except subprocess.TimeoutExpired:
        row["error"] = f"the worker did not finish in {args.duration + 150:.0f} s"
        return row
    finally:
        set_delay(sink, 0)
        files, spooled, broken = count_spooled(spool)
        shutil.rmtree(spool, ignore_errors=True)
    row.update(_figures(result, after, setup))
    row.update(
        spool_files=files,
        spooled=spooled if worker_setup == "otel_sentry" else None,
        foreign_cores=None if foreign.cores is None else round(foreign.cores, 2),
        sink_cores=None if foreign.sink_cores is None else round(foreign.sink_cores, 2),
        worker_cores=None if foreign.own_cores is None else round(foreign.own_cores, 2),
        stderr_tail=done.stderr.strip().splitlines()[-3:],
        watch=result.get("watch") or [],
    )
    if broken:
        row["notes"].append(f"{broken} spool files did not parse")
    if row["produced"] is not None and row["delivered"] is not None:
        row["unaccounted"] = (
            row["produced"] - row["delivered"] - sum(row["reported"].values()) - (spooled or 0)
        )
    return row


def _figures(result: dict[str, Any], after: dict[str, Any], setup: str) -> dict[str, Any]:
    unit = result["unit"]
    figures: dict[str, Any] = {
        key: result.get(key)
        for key in (
            "unit",
            "requests",
            "planned",
            "failures",
            "behind_s",
            "achieved_rps",
            "p50_us",
            "p99_us",
            "rss_mib",
            "drain_s",
            "flush_result",
            "roots",
            "spans",
            "cpu",
        )
    }
    figures["notes"] = list(result.get("notes", []))
    figures.update(produced=None, delivered=None, delivered_at_flush=None, reported={})
    figures.update(unaccounted=None, cpu_us=None, cpu_us_threads=None)
    if setup == "bare":
        return figures
    # At rate 1.0 every request is one transaction root; OTLP counts spans, which the worker's
    # SpanCounter saw (the OTel SDK samples nothing away here).
    produced = result["spans"] if unit == "spans" else result["requests"]
    delivered = _delivered(after, unit)
    reported: dict[str, int] = {}
    for entry in after.get("discarded", []):
        if entry["category"] == ("span" if unit == "spans" else "transaction"):
            reported[entry["reason"]] = reported.get(entry["reason"], 0) + entry["quantity"]
    # Per transaction delivered; for OTLP the spans delivered over the spans per trace.
    per_trace = (result["spans"] / result["roots"]) if unit == "spans" and result["roots"] else 1
    delivered_tx = delivered / per_trace
    cpu = result["cpu"]
    figures.update(
        produced=produced,
        delivered=delivered,
        delivered_at_flush=_delivered(result["at_flush"], unit),
        reported=reported,
        cpu_us=cpu["process_minus_main_s"] / delivered_tx * 1e6 if delivered_tx else None,
        cpu_us_threads=cpu["threads_s"] / delivered_tx * 1e6 if delivered_tx else None,
    )
    return figures


def plan(args: argparse.Namespace, baseline: str | None = None) -> list[tuple[str, int, str]]:
    """(protocol, latency ms, setup) in the order they run; ``baseline`` (``otel_sentry@REV``)
    right after each otel_sentry row."""
    rows: list[tuple[str, int, str]] = []
    for proto in args.protos:
        for latency in args.latencies:
            for setup in args.setups:
                if setup in H2_ONLY and proto != "h2":
                    continue
                rows.append((proto, latency, setup))
                if setup == "otel_sentry" and baseline:
                    rows.append((proto, latency, baseline))
    return rows


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.distant", description=__doc__)
    parser.add_argument("--rps", type=float, default=1000.0, help="requests per second (paced)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load per row")
    parser.add_argument("--setups", default=",".join(SETUPS), help="bare is added once per run")
    parser.add_argument("--latencies", default=",".join(map(str, LATENCIES)), help="ms")
    parser.add_argument("--protos", default=",".join(PROTOS), help="http1, h2, http1-tls")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare anchor row")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=5.0,
        help="before each row, wait up to this many seconds for a second the others leave the "
        "cores alone (0: don't)",
    )
    parser.add_argument("--quick", action="store_true", help="5 s, 0 and 50 ms, two setups")
    parser.add_argument(
        "--load-shedding",
        action="store_true",
        help="otel_sentry rows with load shedding on, as users get it (off by default here)",
    )
    parser.add_argument(
        "--steal",
        type=float,
        default=0.0,
        help="a slower host: one process per core busy this fraction of every 10 ms "
        "(benchmarks/steal.py); implies --quiet-wait 0",
    )
    parser.add_argument("--write", action="store_true", help="replace the section in BENCHMARKS.md")
    parser.add_argument("--json", help="also write the raw rows here")
    parser.add_argument("--check", action="store_true", help="exit 1 unless otel_sentry passes")
    parser.add_argument(
        "--label",
        help="what code was measured, for the header (default: git HEAD and whether "
        "otel_sentry/ had uncommitted changes)",
    )
    parser.add_argument(
        "--from-json", help="measure nothing: render (and --write, --check) a saved --json run"
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also run otel_sentry from git revision REV (git archive into a temporary "
        "directory, today's benchmarks/ copied in): a row otel_sentry@REV under each "
        "otel_sentry row, and --check compares their sender CPU",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    given = set(argv if argv is not None else sys.argv[1:])
    if args.quick:
        args.duration = 5.0 if "--duration" not in given else args.duration
        if "--latencies" not in given:
            args.latencies = "0,50"
        if "--setups" not in given:
            args.setups = "otel_sentry,sentry_native"
    if args.steal > 0:
        args.quiet_wait = 0.0  # the machine is busy on purpose
    args.setups = [s for s in _csv(args.setups) if s != "bare"]
    args.latencies = [int(x) for x in _csv(args.latencies)]
    args.protos = _csv(args.protos)
    unknown = [s for s in args.setups if s not in SETUPS] + [
        p for p in args.protos if p not in ("http1", "h2", "http1-tls")
    ]
    if unknown:
        print(f"unknown setup or protocol: {', '.join(unknown)}", file=sys.stderr)
        return 2
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        meta, rows = saved["meta"], saved["rows"]
    else:
        baseline = None
        if args.baseline:
            if "otel_sentry" not in args.setups:
                print("--baseline needs otel_sentry in --setups", file=sys.stderr)
                return 2
            try:
                baseline = Baseline(args.baseline)
            except (ValueError, RuntimeError) as exc:
                print(str(exc), file=sys.stderr)
                return 2
        try:
            started = time.monotonic()
            rows, skipped = measure_all(args, baseline)
            meta = _meta(args, argv, time.monotonic() - started, skipped)
            meta["baseline"] = baseline.rev if baseline else None
        finally:
            if baseline is not None:
                baseline.remove()
    section = render(rows, meta)
    print(section)
    if args.json and not args.from_json:
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    if args.write:
        _write_section(REPO / "BENCHMARKS.md", section)
    if args.check:
        return 0 if all(ok for ok, _ in check(rows, meta["protos"], meta["skipped"])) else 1
    return 0


def measure_all(
    args: argparse.Namespace, baseline: Baseline | None = None
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Every planned row, one sink per protocol; the protocols whose sink did not start, why.

    The sink always runs from this tree (the baseline's inbox may lack what a protocol needs).
    """
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    todo = plan(args, baseline.setup if baseline else None)
    total = len(todo) + (0 if args.no_bare else 1)

    def progress(row: dict[str, Any]) -> None:
        what = row.get("error") or (
            f"delivered {row.get('delivered')}/{row.get('produced')}, "
            f"by flush {row.get('delivered_at_flush')}, unaccounted {row.get('unaccounted')}, "
            f"p50 {row.get('p50_us')} us, {row.get('achieved_rps')} req/s, "
            f"drain {row.get('drain_s')} s, exit {row.get('exit_s')} s"
        )
        print(
            f"[{len(rows)}/{total} {time.monotonic() - started:.0f}s] {row['proto']} "
            f"{row['setup']} {row['latency_ms']} ms: {what}",
            file=sys.stderr,
            flush=True,
        )

    with Steal(args.steal):  # a slower host, on purpose (0: none)
        for proto in args.protos:
            try:
                sink = SinkProcess(tls=proto != "http1", http2=proto == "h2").start()
            except RuntimeError as exc:
                skipped[proto] = str(exc)
                total -= sum(1 for p, _, _ in todo if p == proto)
                print(f"{proto}: not measured: {exc}", file=sys.stderr, flush=True)
                continue
            try:
                if not args.no_bare and not any(r["setup"] == "bare" for r in rows):
                    rows.append(run_row(sink, "-", "bare", 0, args))
                    progress(rows[-1])
                for p, latency, setup in todo:
                    if p == proto:
                        rows.append(run_row(sink, proto, setup, latency, args, baseline))
                        progress(rows[-1])
            finally:
                sink.stop()
    return rows, skipped


def _meta(
    args: argparse.Namespace, argv: list[str] | None, elapsed: float, skipped: dict[str, str]
) -> dict[str, Any]:
    import sentry_sdk

    shown = shlex.join(argv if argv is not None else sys.argv[1:])
    return {
        "command": f"python -m benchmarks.distant {shown}".strip(),
        "stamp": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "elapsed_s": elapsed,
        "rps": args.rps,
        "duration": args.duration,
        "warmup": WARMUP,
        "protos": args.protos,
        "skipped": skipped,
        "sentry_sdk": sentry_sdk.VERSION,
        "code": args.label or _code_label(),
        "steal": args.steal,
        "load_shedding": args.load_shedding,
    }


def _code_label() -> str:
    def git(*command: str) -> str:
        done = subprocess.run(
            ["git", *command], check=False, capture_output=True, text=True, cwd=REPO
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD")
    if not head:
        return "unknown (not a git checkout)"
    dirty = git("status", "--porcelain", "--", "otel_sentry")
    return f"{head}" + (" + uncommitted changes under otel_sentry/" if dirty else "")


def _write_section(path: Path, section: str) -> None:
    """Replace the section; the first time, its markers go right after the soak section."""
    replace_section(path, section, START_MARKER, END_MARKER, after="<!-- bench:soak:end -->")


if __name__ == "__main__":
    sys.exit(main())
