"""What sentry_sdk's Django integration costs per request when tracing is OpenTelemetry's.

Anchor: bare Django (no sentry_sdk), in the same run. Each setup runs in its own process (an
integration patches Django once per process): ``examples/django_app``'s ``GET /items/1``
through Django's test client, best of several rounds, errors to a transport that drops them.

- ``bare``: no sentry_sdk;
- ``sdk_without_django``: sentry_sdk with its Django integration disabled (the floor);
- ``django_default``: its Django integration with default options, tracing off;
- ``django_as_init``: the options ``otel_sentry.init()`` passes (no spans, no transaction).

    .venv/bin/python -m benchmarks.django_errors          # writes its section of BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.report import replace_section

ROOT = Path(__file__).resolve().parents[1]
START_MARKER = "<!-- bench:django_errors:start -->"
END_MARKER = "<!-- bench:django_errors:end -->"
SETUPS = ("bare", "sdk_without_django", "django_default", "django_as_init")


def _measure(setup: str, n: int, rounds: int) -> float:
    """Runs in a child process: microseconds per request, best round."""
    sys.path.insert(0, str(ROOT / "examples" / "django_app"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "shop.settings"
    if setup != "bare":
        import sentry_sdk
        from sentry_sdk.integrations.django import DjangoIntegration
        from sentry_sdk.transport import Transport

        class Drop(Transport):
            def capture_envelope(self, envelope: object) -> None:
                return None

        options: dict[str, object] = {
            "dsn": "http://key@127.0.0.1:9/1",
            "transport": Drop,
            "traces_sample_rate": None,
        }
        if setup == "sdk_without_django":
            options["disabled_integrations"] = [DjangoIntegration]
        elif setup == "django_as_init":
            from otel_sentry._internal.sentry.client import _tuned_integrations

            options["integrations"] = _tuned_integrations([])
        sentry_sdk.init(**options)  # type: ignore[arg-type]
    import django
    from django.test import Client

    django.setup()
    client = Client()
    for _ in range(n // 4):
        client.get("/items/1", HTTP_HOST="127.0.0.1")
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(n):
            client.get("/items/1", HTTP_HOST="127.0.0.1")
        best = min(best, (time.perf_counter() - started) / n)
    return best * 1e6


def _run(setup: str, n: int, rounds: int) -> float:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.django_errors",
            "--child",
            setup,
            f"--n={n}",
            f"--rounds={rounds}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(json.loads(out.strip().splitlines()[-1])["us"])


def render(results: dict[str, float], n: int, rounds: int) -> str:
    bare = results["bare"]
    lines = [
        START_MARKER,
        "## Django: sentry_sdk's integration for errors, tracing left to OpenTelemetry",
        "",
        f"`python -m benchmarks.django_errors`: `GET /items/1` of `examples/django_app` through "
        f"Django's test client, best of {rounds} rounds of {n}; anchor bare Django, same run.",
        "",
        "| setup | us / request | vs bare |",
        "|---|---:|---:|",
    ]
    lines += [f"| {s} | {results[s]:.0f} | {results[s] / bare:.2f}x |" for s in SETUPS]
    lines += ["", END_MARKER]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run; writes nothing")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", choices=SETUPS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps({"us": _measure(args.child, args.n, args.rounds)}))
        return
    n, rounds = (200, 1) if args.quick else (args.n, args.rounds)
    results = {setup: _run(setup, n, rounds) for setup in SETUPS}
    section = render(results, n, rounds)
    print(section)
    if not args.quick:
        replace_section(ROOT / "BENCHMARKS.md", section, START_MARKER, END_MARKER)


if __name__ == "__main__":
    main()
