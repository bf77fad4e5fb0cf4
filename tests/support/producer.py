"""A batch process that produces transactions and exits, as a cron job or a worker does.

    python -m tests.support.producer 3000 [budget]   # 3000 transactions, then shutdown(budget)
    python -m tests.support.producer forever         # until SIGTERM

The DSN comes from SENTRY_DSN. Transactions are named ``job-<i>`` so a test can tell exactly
which arrived. It prints ``produced N`` when it stops producing: at the end, or from its own
SIGTERM handler, which otel-sentry's handler (installed by init() on top of it) calls after it
has shut down.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from types import FrameType

from opentelemetry import trace

import otel_sentry


def main() -> None:
    forever = sys.argv[1] == "forever"
    count = 0 if forever else int(sys.argv[1])
    budget = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    produced = 0

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        print(f"produced {produced}", flush=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    otel_sentry.init(instrument=False)
    tracer = trace.get_tracer("producer")
    print("ready", flush=True)
    i = 0
    while forever or i < count:
        with tracer.start_as_current_span(f"job-{i}"), tracer.start_as_current_span("step"):
            pass
        i += 1
        produced = i
        if forever and i % 50 == 0:
            time.sleep(0.01)  # a busy service, not a spin: ~2-4 thousand a second
    print(f"produced {produced}", flush=True)
    otel_sentry.shutdown(budget)


if __name__ == "__main__":
    main()
