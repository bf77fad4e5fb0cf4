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
import sys

from benchmarks.distant import run_row
from benchmarks.sink import SinkProcess

__all__ = ["main"]

COLUMNS = ("s", "RSS MiB", "spans queued", "envelopes queued", "in flight", "connections", "spool")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.backlog", description=__doc__)
    parser.add_argument("--rps", type=float, default=900.0)
    parser.add_argument("--latency", type=int, default=150, help="ms")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    parser.add_argument("--tls", action="store_true", help="TLS sink offering h2 and http/1.1")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between samples")
    args = parser.parse_args(argv)
    args.quiet_wait = 0.0  # run_row's: no waiting for a quiet machine before the row
    proto = "h2" if args.tls else "http1"
    with SinkProcess(tls=args.tls, http2=args.tls) as sink:
        row = run_row(
            sink, proto, "otel_sentry", args.latency, args, worker_args=("--watch", str(args.every))
        )
    if "error" in row:
        print(f"the row failed: {row['error']}")
        return 1
    print(
        f"{row['requests']} requests at {row['achieved_rps']} req/s, sink {args.latency} ms "
        f"({proto}); delivered {row['delivered']}, reported {row['reported'] or 0}, "
        f"unaccounted {row.get('unaccounted')}; peak RSS {row['rss_mib']} MiB; drain "
        f"{row['drain_s']} s; request p50 {row['p50_us']} us"
    )
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---:|" * len(COLUMNS))
    for sample in row["watch"]:
        print("| " + " | ".join(str(v) for v in sample) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
