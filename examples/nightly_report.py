"""A periodic job as a cron monitor: ``python examples/nightly_report.py`` (cron runs it at 3:00).

``otel_sentry.monitor`` sends Sentry an ``in_progress`` check-in when the run starts and ``ok``
(or ``error``, if it raises) with its duration when it ends, on the trace of the run's own
transaction, so a missed or failed run links to what the job did.
"""

from __future__ import annotations

import time

import otel_sentry

otel_sentry.init()


@otel_sentry.monitor("nightly-report", schedule="0 3 * * *", max_runtime=30)
def nightly_report() -> int:
    rows = sum(i * i for i in range(200_000))  # stands in for the report's queries
    time.sleep(0.05)
    return rows


if __name__ == "__main__":
    nightly_report()
