"""Where otel_sentry's backlog waits while a row of the distant-ingest benchmark runs.

One ``benchmarks.distant_worker`` row (otel_sentry, rate 1.0, paced in-process requests) against
the sink answering ``--latency`` ms late, with the worker sampling every half second: the
process's RSS, the spans waiting for the export thread, the envelopes waiting for a connection,
those sent and not yet answered, the connections, and the spool. It tells which thread falls
behind (BENCHMARKS.md, "Behind: the GIL, not the CPU")::

    python -m benchmarks.backlog --rps 900 --latency 150 [--tls]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

from benchmarks.distant import REPO, set_delay, worker_env
from benchmarks.sink import SinkProcess

__all__ = ["main"]

COLUMNS = ("s", "RSS MiB", "spans queued", "envelopes queued", "in flight", "connections", "spool")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.backlog", description=__doc__)
    parser.add_argument("--rps", type=float, default=900.0)
    parser.add_argument("--latency", type=float, default=150.0, help="ms")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    parser.add_argument("--tls", action="store_true", help="TLS sink offering h2 and http/1.1")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between samples")
    args = parser.parse_args(argv)
    with SinkProcess(tls=args.tls, http2=args.tls) as sink, tempfile.TemporaryDirectory() as spool:
        set_delay(sink, args.latency / 1000)
        command = [sys.executable, "-m", "benchmarks.distant_worker", "--setup", "otel_sentry"]
        command += ["--dsn", sink.dsn, "--rps", str(args.rps), "--duration", str(args.duration)]
        command += ["--spool-dir", spool, "--watch", str(args.every)]
        if sink.ca_file:
            command += ["--ca-file", sink.ca_file]
        done = subprocess.run(
            command, capture_output=True, text=True, cwd=REPO, env=worker_env(), check=False
        )
        if done.returncode != 0 or not done.stdout.strip():
            print(done.stderr[-2000:])
            return 1
        row = json.loads(done.stdout.strip().splitlines()[-1])
        delivered = int(sink.stats()["counts"].get("items", {}).get("transaction", 0))
    print(
        f"{row['requests']} requests at {row['achieved_rps']} req/s, sink {args.latency:g} ms "
        f"({'TLS, h2' if args.tls else 'HTTP/1.1'}); delivered {delivered}; peak RSS "
        f"{row['rss_mib']} MiB; drain {row['drain_s']} s; request p50 {row['p50_us']} us"
    )
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---:|" * len(COLUMNS))
    for sample in row["watch"]:
        print("| " + " | ".join(str(v) for v in sample) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
