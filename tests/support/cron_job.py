"""A cron script with three monitored jobs, run as its own process by the cron monitor test.

``python -m tests.support.cron_job``: a decorated function that succeeds, a decorated coroutine
that succeeds, and a ``with otel_sentry.monitor(...)`` block that raises. otel-sentry's exit
flush delivers everything (``SENTRY_DSN`` from the environment).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import otel_sentry


class VendorDownError(RuntimeError):
    """What the vendor import raises."""


@otel_sentry.monitor("nightly-report", schedule="0 3 * * *", max_runtime=30, checkin_margin=5)
def nightly_report() -> int:
    return 42


@otel_sentry.monitor("hourly-sync", schedule=timedelta(hours=1), failure_issue_threshold=2)
async def hourly_sync() -> None:
    await asyncio.sleep(0)


def vendor_import() -> None:
    with otel_sentry.monitor("vendor-import", schedule="*/10 * * * *", timezone="Europe/Vienna"):
        raise VendorDownError("vendor API answered 503")


def main() -> None:
    otel_sentry.init(environment="test", release="cron@1", service_name="cron-job")
    assert nightly_report() == 42
    asyncio.run(hourly_sync())
    with contextlib.suppress(VendorDownError):
        vendor_import()


if __name__ == "__main__":
    main()
