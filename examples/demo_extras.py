"""What ``make demo`` prints beyond the request's error and trace: a profile and a cron check-in.

The API runs with ``SENTRY_PROFILES_SAMPLE_RATE=1.0`` (:data:`PROFILE_ENV`), so each sampled
transaction brings a profile of the request; ``examples/nightly_report.py`` runs once as a cron
job under ``otel_sentry.monitor``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from otel_sentry.inbox import Inbox

__all__ = ["PROFILE_ENV", "print_checkins", "print_profile", "run_cron_job"]

ROOT = Path(__file__).resolve().parent.parent
PROFILE_ENV = {"SENTRY_PROFILES_SAMPLE_RATE": "1.0"}


def run_cron_job(inbox: Inbox) -> None:
    env = {**os.environ, "SENTRY_DSN": inbox.dsn(), "SENTRY_ENVIRONMENT": "demo"}
    env["PYTHONPATH"] = str(ROOT)
    subprocess.run(
        [sys.executable, str(ROOT / "examples" / "nightly_report.py")],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=60,
    )


def print_checkins(inbox: Inbox) -> None:
    checkins = [item.json for item in inbox.items("check_in")]
    if not checkins:
        print("\nNo cron check-in arrived.")
        return
    first = checkins[0]
    statuses = " -> ".join(c.get("status", "?") for c in checkins)
    duration = next((c["duration"] for c in checkins if c.get("duration") is not None), None)
    trace_id = (first.get("contexts") or {}).get("trace", {}).get("trace_id")
    config = first.get("monitor_config") or {}
    schedule = config.get("schedule", {})
    print(f"\nCron monitor '{first.get('monitor_slug')}' ({schedule.get('value', schedule)}):")
    took = f", {duration * 1000:.0f} ms" if isinstance(duration, (int, float)) else ""
    print(f"  check-ins {statuses}{took}, max_runtime {config.get('max_runtime')} min")
    runs = [t for t in inbox.transactions() if t["contexts"]["trace"]["trace_id"] == trace_id]
    for txn in runs:
        print(f"  on trace {trace_id}: transaction '{txn['transaction']}'")


def print_profile(inbox: Inbox, name: str = "POST /ask") -> None:
    profiles = [item.json for item in inbox.items("profile")]
    chosen = next(
        (p for p in profiles if _transaction_of(p).get("name") == name),
        profiles[0] if profiles else None,
    )
    if chosen is None:
        print("\nNo profile arrived.")
        return
    txn = _transaction_of(chosen)
    samples = (chosen.get("profile") or {}).get("samples") or []
    print(f"\nProfile of '{txn.get('name')}' (transaction {txn.get('id')}):")
    print(f"  {len(samples)} samples; the app's own functions in them:")
    for function, count in _own_functions(chosen).most_common(5):
        print(f"    {count:>3}  {function}")


def _transaction_of(profile: dict[str, Any]) -> dict[str, Any]:
    found = profile.get("transactions") or [{}]
    return found[0] if isinstance(found[0], dict) else {}


def _own_functions(profile: dict[str, Any]) -> Counter[str]:
    body = profile.get("profile") or {}
    frames = body.get("frames") or []
    stacks = body.get("stacks") or []
    seen: Counter[str] = Counter()
    for sample in body.get("samples") or []:
        stack = stacks[sample["stack_id"]] if sample.get("stack_id") is not None else []
        names = {
            f"{frames[i].get('module')}.{frames[i].get('function')}"
            for i in stack
            if str(frames[i].get("module", "")).startswith("examples.")
        }
        seen.update(names)
    return seen
