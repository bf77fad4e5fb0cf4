"""Soak: a service under steady load while Sentry fails, and what reached Sentry afterwards.

Each scenario runs ``benchmarks/soak_app.py`` under uvicorn in its own process, pointed at the
inbox (``benchmarks/sink.py``, its own process), and loads it open-loop at a fixed rate from
this process: ``--healthy`` seconds with Sentry healthy, ``--fault`` seconds with the fault
switched on at the inbox, ``--recover`` seconds healthy again, then the load stops, delivery
is given time to settle, and the app is stopped with SIGTERM. One request in 50 raises, so
errors flow as well as transactions.

Latency is measured from each request's *scheduled* start (open loop: a stalled app shows up as
latency, not as fewer requests). What the app produced is what it answered; what arrived is the
inbox's count; what the SDK reported dropping comes from the client reports that arrived.

    python -m benchmarks.soak                       # every fault, spool off and on
    python -m benchmarks.soak --quick               # short phases, writes nothing
    python -m benchmarks.soak --faults refuse --spool on
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.report import replace_section
from benchmarks.sink import SinkProcess
from otel_sentry._internal.sentry.transport import _Connection

START_MARKER = "<!-- bench:soak:start -->"
END_MARKER = "<!-- bench:soak:end -->"

# name -> (inbox fault JSON, or None for no fault; load multiplier during the fault phase;
# the fault phase's length when it is not --fault)
FAULTS: dict[str, tuple[dict[str, Any] | None, int, float | None]] = {
    "healthy": (None, 1, None),
    "refuse": ({"refuse": True}, 1, None),
    "status_500": ({"status": 500}, 1, None),
    "slow_5s": ({"delay": 5.0}, 1, None),
    # As Relay answers when one category is over quota: the others are still accepted.
    "rate_limited": ({"status": 200, "rate_limits": "30:transaction:organization"}, 1, None),
    "burst_10x": (None, 10, 10.0),
    # The anchor for the burst: the same app and load without otel-sentry at all.
    "burst_10x_bare": (None, 10, 10.0),
    # The burst with SENTRY_TRACES_SAMPLE_RATE=0.1: what sampling buys back under overload.
    "burst_10x_sampled": (None, 10, 10.0),
    # Past what the traced app can serve (not the bare one): load shedding on (the default),
    # off, and the bare anchor.
    "burst_20x": (None, 20, 10.0),
    "burst_20x_noshed": (None, 20, 10.0),
    "burst_20x_bare": (None, 20, 10.0),
}


FAIL_EVERY = 50  # one request in this many raises


@dataclass
class Sample:
    scheduled: float
    latency: float
    status: int
    path: str


@dataclass
class Result:
    fault: str
    spool: bool
    rate: float
    samples: list[Sample] = field(default_factory=list)
    phases: tuple[float, float, float, float] = (0, 0, 0, 0)
    counts: dict[str, Any] = field(default_factory=dict)
    peak_rss_mib: float = 0.0
    exit_s: float = 0.0
    settle_s: float = 0.0
    app_errors: list[str] = field(default_factory=list)

    def phase(self, i: int) -> list[Sample]:
        lo, hi = self.phases[i], self.phases[i + 1]
        return [s for s in self.samples if lo <= s.scheduled < hi]


def _free_port() -> int:

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_app(
    dsn: str,
    spool_dir: str | None,
    bare: bool = False,
    sampled: bool = False,
    shedding: bool = True,
) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTRY_", "OTEL_"))}
    env.update(
        SENTRY_DSN=dsn,
        SENTRY_TRACES_SAMPLE_RATE="1.0",
        SENTRY_ENVIRONMENT="soak",
        SENTRY_RELEASE="soak",
        OTEL_SENTRY_INSTRUMENT="fastapi",
    )
    if spool_dir:
        env["OTEL_SENTRY_SPOOL_DIR"] = spool_dir
    if bare:
        env["SOAK_BARE"] = "1"
    if sampled:
        env["SENTRY_TRACES_SAMPLE_RATE"] = "0.1"
    if not shedding:
        env["OTEL_SENTRY_LOAD_SHEDDING"] = "false"
    log = Path(tempfile.mkstemp(prefix="soak-app-", suffix=".log")[1])
    command = [sys.executable, "-m", "uvicorn", "benchmarks.soak_app:app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level"]
    command += ["warning"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, env=env, cwd=_root(), stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"{url}/items/0", timeout=1).read()
            return proc, url, log
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the app did not start within 30 s")


def _peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _load(
    url: str,
    plan: list[tuple[float, float, int]],
    threads: int,
    out: list[Sample],
) -> None:
    """Open loop: request k of a phase goes at its scheduled time, whatever came before."""
    schedule: list[float] = []
    for start, end, rate in plan:
        n = int((end - start) * rate)
        schedule += [start + i / rate for i in range(n)]
    lock = threading.Lock()

    def worker(offset: int) -> None:
        mine: list[Sample] = []
        client = _Client(url)
        try:
            for k in range(offset, len(schedule), threads):
                at = schedule[k]
                delay = at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                path = "/fail" if k % FAIL_EVERY == FAIL_EVERY - 1 else f"/items/{k % 1000}"
                # uvicorn closes a connection after an unhandled exception; a request already
                # on its way over it would come back as a reset, so /fail asks for the close.
                status = client.get(path, close=path == "/fail")
                mine.append(Sample(at, time.monotonic() - at, status, path))
        finally:
            client.close()
        with lock:
            out.extend(mine)

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


class _Client:
    """The load generator's connection: the transport's own minimal HTTP/1.1 client.

    httpx cost ~1.4 ms of CPU per request here, CPU the app, on the same cores, then did not
    have; the transport's connection (keep-alive, Content-Length and chunked answers) costs a
    fraction of that.
    """

    def __init__(self, url: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.conn = _Connection(parsed.hostname or "127.0.0.1", parsed.port or 80, None, 30.0)

    def get(self, path: str, close: bool = False) -> int:
        """The status code, or 0 when the request failed (connection refused, reset, timeout)."""
        try:
            response = self.conn.request("GET", path, b"", {"Connection": "close"} if close else {})
        except (OSError, ValueError):
            self.conn.close()
            return 0
        if close:
            self.conn.close()
        return response.status

    def close(self) -> None:
        self.conn.close()


def _settle(sink: SinkProcess, want_tx: int, timeout: float) -> float:
    """Wait until the inbox has what we expect or stops changing for 5 s."""
    start = last_change = time.monotonic()
    last = -1
    while time.monotonic() - start < timeout:
        tx = sink.stats()["counts"]["items"].get("transaction", 0)
        if tx >= want_tx:
            break
        if tx != last:
            last, last_change = tx, time.monotonic()
        elif time.monotonic() - last_change > 5:
            break
        time.sleep(0.5)
    return time.monotonic() - start


def run_scenario(
    sink: SinkProcess,
    fault: str,
    spool: bool,
    rate: float,
    phases: tuple[float, float, float],
    warmup: float = 3.0,
) -> Result:
    fault_json, multiplier, length = FAULTS[fault]
    sink.clear()
    _set_fault(sink, None)
    spool_dir = tempfile.mkdtemp(prefix="soak-spool-") if spool else None
    proc, url, log = _start_app(
        sink.dsn,
        spool_dir,
        bare=fault.endswith("_bare"),
        sampled=fault.endswith("_sampled"),
        shedding=not fault.endswith("_noshed"),
    )
    result = Result(fault, spool, rate)
    try:
        healthy, faulty, recover = phases
        faulty = length if length is not None and faulty > length else faulty
        # A warm-up at the healthy rate first, not measured: a process's first requests pay
        # one-time costs (imports, caches) that are not what a fault does to latency.
        tw = time.monotonic() + 0.5
        t0 = tw + warmup
        t1, t2, t3 = t0 + healthy, t0 + healthy + faulty, t0 + healthy + faulty + recover
        result.phases = (t0, t1, t2, t3)
        plan = [(tw, t0, int(rate)), (t0, t1, int(rate))]
        plan += [(t1, t2, int(rate * multiplier)), (t2, t3, int(rate))]
        threads = max(4, int(rate * multiplier / 40))
        loader = threading.Thread(target=_load, args=(url, plan, threads, result.samples))
        loader.start()
        _sleep_until(t1)
        if fault_json is not None:
            _set_fault(sink, fault_json)
        _sleep_until(t2)
        _set_fault(sink, None)
        loader.join()
        answered = [s for s in result.samples if s.status]
        result.settle_s = _settle(sink, len(answered), timeout=90)
        result.peak_rss_mib = _peak_rss_mib(proc.pid)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        result.exit_s = time.monotonic() - started
        time.sleep(1.0)
        result.counts = sink.stats()["counts"]
        text = log.read_text(errors="replace")
        result.app_errors = _unexpected_exceptions(text)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        with contextlib.suppress(OSError):
            log.unlink()
    return result


def _unexpected_exceptions(log: str) -> list[str]:
    """The exception line of every traceback in the app's log but the deliberate SoakError's."""
    out: list[str] = []
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("Traceback (most recent call last):"):
            continue
        for after in lines[i + 1 :]:
            if after and not after[0].isspace():  # the first line past the frames
                if "SoakError" not in after:
                    out.append(after)
                break
    return out


def _sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _set_fault(sink: SinkProcess, fault: dict[str, Any] | None) -> None:
    method = "DELETE" if fault is None else "POST"
    data = None if fault is None else json.dumps(fault).encode()
    request = urllib.request.Request(f"{sink.url}/api/_inbox/fault", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _row(r: Result) -> dict[str, Any]:
    healthy = [s.latency * 1000 for s in r.phase(0)]
    faulty = [s.latency * 1000 for s in r.phase(1)]
    # What the requests that did not fail waited: a failing one carries its error's capture.
    faulty_ok = [s.latency * 1000 for s in r.phase(1) if s.path != "/fail"]
    answered = [s for s in r.samples if s.status]
    produced_tx = len(answered) + 1  # and the request that found the app up
    produced_err = sum(1 for s in answered if s.path == "/fail" and s.status == 500)
    items = r.counts.get("items", {})
    dropped: dict[str, int] = {}
    for d in r.counts.get("discarded", []):
        if d["category"] in ("transaction", "error"):
            key = f"{d['reason']} {d['category']}"
            dropped[key] = dropped.get(key, 0) + d["quantity"]
    return {
        "fault": r.fault,
        "spool": "no SDK" if r.fault.endswith("_bare") else ("on" if r.spool else "off"),
        "rate": r.rate,
        "served": produced_tx,
        "failed_requests": sum(1 for s in r.samples if s.status not in (200, 500)),
        "p50_healthy": statistics.median(healthy) if healthy else float("nan"),
        "p99_healthy": _pct(healthy, 0.99),
        "p50_fault": statistics.median(faulty) if faulty else float("nan"),
        "p99_fault": _pct(faulty, 0.99),
        "p99_fault_ok": _pct(faulty_ok, 0.99),
        "tx": f"{items.get('transaction', 0)}/{produced_tx}",
        "errors": f"{items.get('event', 0)}/{produced_err}",
        "tx_share": items.get("transaction", 0) / produced_tx if produced_tx else 0.0,
        "dropped": ", ".join(f"{k} {v}" for k, v in sorted(dropped.items())) or "-",
        "rss": r.peak_rss_mib,
        "exit_s": r.exit_s,
        "settle_s": r.settle_s,
        "app_errors": len(r.app_errors),
    }


def render(rows: list[dict[str, Any]], args: argparse.Namespace, elapsed: float) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        START_MARKER,
        "## Soak: Sentry down, slow, rate limiting; bursts",
        "",
        f"Measured with `python -m benchmarks.soak` ({stamp}, {elapsed:.0f} s): "
        "open loop at the row's req/s, "
        f"{args.warmup:g} s of warm-up (not measured), {args.healthy:g} s healthy, "
        f"{args.fault:g} s with the fault, {args.recover:g} s healthy again; one request in 50 "
        "raises. Latency in ms from each request's scheduled start, healthy phase vs fault "
        "phase of the same process. `tx`/`errors`: arrived at the inbox / produced by the "
        "app. Dropped: what the SDK reported in client reports (transactions and errors). "
        "`refuse`: the ingest closes every connection unanswered; `slow_5s`: it answers after "
        "5 s; `rate_limited`: every answer carries `X-Sentry-Rate-Limits: 30:transaction` "
        "(transactions over quota, errors accepted), so transactions are held back until 30 s "
        "after the last answer; `burst_10x`: no fault, 10x the rate for 10 s (the 'fault' "
        "columns are the burst), `burst_10x_bare` the same app and load without "
        "otel-sentry, the anchor, and `burst_10x_sampled` the burst at a 0.1 sample rate "
        "(tx arrived counts the sampled ones); `burst_20x`: 20x for 10 s, past what the "
        "traced app can serve but not the bare one, with load shedding on (the default), "
        "off (`_noshed`) and without otel-sentry (`_bare`). The spool rows run with "
        "`OTEL_SENTRY_SPOOL_DIR` set. Compare a fault's 'fault' columns with the `healthy` "
        "row's (same spool setting): that row's own two phases differ as much as any fault "
        "makes them (its 30 s phase holds more of the rare slow requests, the failing ones "
        "among them). p99 includes the failing requests, which carry the error's capture; the next "
        "column leaves them out."
        + (
            " Rows not measured in this run were kept from an earlier one (`--keep-rows`)."
            if args.keep_rows
            else ""
        ),
        "",
        "| fault | spool | req/s | served | p50 healthy | p99 healthy | p50 fault | p99 fault | "
        "p99 fault, not failing | tx arrived | errors arrived | dropped (reported) | "
        "peak RSS MiB | settle s | exit s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['fault']} | {row['spool']} | {row.get('rate', args.rate):g} | "
            f"{row['served']} | {row['p50_healthy']:.1f} | "
            f"{row['p99_healthy']:.1f} | {row['p50_fault']:.1f} | {row['p99_fault']:.1f} | "
            f"{row.get('p99_fault_ok', float('nan')):.1f} | "
            f"{row['tx']} ({row['tx_share']:.1%}) | {row['errors']} | {row['dropped']} | "
            f"{row['rss']:.0f} | {row['settle_s']:.1f} | {row['exit_s']:.1f} |"
        )
    lines.append(END_MARKER)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument(
        "--spool",
        choices=["off", "on", "both"],
        default="both",
        help="both: each fault in --spool-faults also runs with OTEL_SENTRY_SPOOL_DIR set",
    )
    parser.add_argument("--spool-faults", default="healthy,refuse,status_500,slow_5s")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds, not measured")
    parser.add_argument("--healthy", type=float, default=10.0)
    parser.add_argument("--fault", type=float, default=30.0)
    parser.add_argument("--recover", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="3/6/4 s phases; writes nothing")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument(
        "--keep-rows", help="rows of an earlier --json run to keep where not measured again"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.warmup, args.healthy, args.fault, args.recover = 1.0, 3.0, 6.0, 4.0
    spools = {"off": [False], "on": [True], "both": [False, True]}[args.spool]
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    with SinkProcess() as sink:
        for fault in args.faults.split(","):
            wanted = spools if fault in args.spool_faults.split(",") else spools[:1]
            for spool in wanted:
                result = run_scenario(
                    sink,
                    fault,
                    spool,
                    args.rate,
                    (args.healthy, args.fault, args.recover),
                    warmup=args.warmup,
                )
                row = _row(result)
                rows.append(row)
                print(json.dumps(row), flush=True)
                for line in result.app_errors[:5]:
                    print(f"  app: {line}", flush=True)
    if args.keep_rows:
        again = {(r["fault"], r["spool"]) for r in rows}
        kept = json.loads(Path(args.keep_rows).read_text())
        order = list(FAULTS)
        rows = sorted(
            [r for r in kept if (r["fault"], r["spool"]) not in again] + rows,
            key=lambda r: (order.index(r["fault"]), r["spool"]),
        )
    section = render(rows, args, time.monotonic() - started)
    print(section)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    if not args.quick:
        replace_section(Path(_root()) / "BENCHMARKS.md", section, START_MARKER, END_MARKER)
    return 0


def _root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


if __name__ == "__main__":
    sys.exit(main())
