"""The ``otel-sentry`` command: doctor, test-event, release, collector, inbox.

    $ otel-sentry doctor          # effective config, where each value came from, reachability
    $ otel-sentry test-event      # the "verify it works" step: one error and one transaction
    $ sentry-cli releases new "$(otel-sentry release)"   # the same release name the SDK uses
    $ otel-sentry collector agent.yaml --write /etc/otelcol   # a shipped Collector config

Every command exits non-zero when something is misconfigured, so CI can run them as checks.
The help text is written for a terminal (see ``_DESCRIPTION``), not taken from this docstring.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from otel_sentry._internal.config import (
    OPTIONS,
    ConfigError,
    DsnParts,
    Settings,
    redact_url,
    resolve,
)
from otel_sentry._internal.instrument import registry
from otel_sentry._version import __version__

if TYPE_CHECKING:
    # importlib.resources.abc is 3.11+; this name is the one 3.10 has.
    from importlib.abc import Traversable

__all__ = ["check_ingest", "collector_configs", "main"]

# What --help prints: plain text (argparse shows docstrings' markup as it is).
_DESCRIPTION = "otel-sentry: check the setup, send a test event, print the release, ship configs."
_EPILOG = """examples:
  otel-sentry doctor                     effective config, where each value came from, reachability
  otel-sentry test-event                 one error and one transaction, to find in Sentry
  sentry-cli releases new "$(otel-sentry release)"
  otel-sentry collector agent.yaml       print a shipped OpenTelemetry Collector config
  otel-sentry inbox --port 8969          a local Sentry-compatible ingest, with a live view

Every command exits non-zero when something is misconfigured, so CI can run them as checks."""


def _out(stream: TextIO, text: str = "") -> None:
    stream.write(text + "\n")


def check_ingest(dsn: DsnParts, timeout: float = 5.0) -> tuple[bool, str]:
    """POST an envelope with an empty client report: the host answers and the key is valid.

    An empty client report is the one item Sentry accepts that creates nothing in the project.
    """
    body = (
        json.dumps({"dsn": f"{dsn.origin}"}).encode()
        + b"\n"
        + json.dumps({"type": "client_report"}).encode()
        + b"\n"
        + json.dumps({"timestamp": 0, "discarded_events": []}).encode()
        + b"\n"
    )
    auth = (
        f"Sentry sentry_version=7, sentry_client=otel-sentry-doctor/{__version__}, "
        f"sentry_key={dsn.public_key}"
    )
    request = urllib.request.Request(
        dsn.envelope_url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/x-sentry-envelope", "X-Sentry-Auth": auth},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return True, f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            return False, f"HTTP {exc.code}: the ingest rejected the DSN's key (wrong or revoked)"
        if exc.code == 429:
            return True, "HTTP 429: reachable, but rate limited right now"
        return False, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, f"unreachable: {reason}"


def _show(settings: Settings, name: str) -> str:
    value = getattr(settings, name)
    option = next(o for o in OPTIONS if o.name == name)
    if option.secret and isinstance(value, str):
        return redact_url(value)
    return "-" if value is None or value == () else str(value)


def _doctor(args: argparse.Namespace, out: TextIO) -> int:
    problems = 0
    try:
        settings = resolve({})
    except ConfigError as exc:
        _out(out, f"✗ configuration: {exc}")
        return 2
    _out(out, f"otel-sentry {__version__}: effective configuration")
    width = max(len(o.name) for o in OPTIONS)
    for option in OPTIONS:
        _out(
            out,
            f"  {option.name:<{width}}  {_show(settings, option.name):<40}  "
            f"[{settings.sources.get(option.name, 'default')}]",
        )
    _out(out, f"  {'spans go to':<{width}}  {' and '.join(settings.span_export) or 'nowhere'}")

    _out(out, "\ninstrumentations")
    found = registry.discover(settings.instrument)
    for info in found:
        state = "on" if info.usable else f"off: {info.disabled_by or info.conflict}"
        _out(out, f"  {info.name:<14} {state}")
    if not found:
        _out(out, "  none installed (pip install 'otel-sentry[fastapi,httpx,...]')")

    _out(out, "\nsentry")
    parts = settings.dsn_parts
    if not settings.enabled:
        _out(out, "  disabled by SENTRY_ENABLED=false: nothing is sent")
    elif parts is None:
        problems += _without_dsn(settings, out)
    else:
        _out(out, f"  ingest   {parts.envelope_url}")
        _out(
            out, f"  project  {parts.project_id}   org {parts.org_id or '- (not in the DSN host)'}"
        )
        if args.offline:
            _out(out, "  reachability not checked (--offline)")
        else:
            ok, detail = check_ingest(parts, timeout=args.timeout)
            _out(out, f"  {'✓ reachable' if ok else '✗ not usable'}: {detail}")
            problems += 0 if ok else 1
    if settings.release is None:
        _out(out, "\n! release: none detected (set SENTRY_RELEASE or deploy from git)")
    _out(out, "\n" + ("✓ ok" if problems == 0 else f"✗ {problems} problem(s)"))
    return 0 if problems == 0 else 1


def _without_dsn(settings: Settings, out: TextIO) -> int:
    """What goes where without a DSN: a problem (1) when that is nowhere at all."""
    if "otlp" in settings.span_export:
        endpoint = redact_url(settings.otlp_endpoint or "")
        _out(out, f"  no DSN: errors are not sent; spans go over OTLP to {endpoint}")
        return 0
    if settings.spotlight:
        _out(out, f"  no DSN: errors go to Spotlight only ({settings.spotlight}); spans nowhere")
        return 0
    _out(
        out,
        "  ✗ no DSN and no OTLP endpoint: nothing will be sent, neither errors nor spans.\n"
        "    Fix: set SENTRY_DSN (errors and spans to Sentry), or OTEL_EXPORTER_OTLP_ENDPOINT\n"
        "    (spans over OTLP), or SENTRY_ENABLED=false if sending nothing is what you want.",
    )
    return 1


def _release(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        settings = resolve({})
    except ConfigError as exc:
        _out(err, str(exc))
        return 2
    if not settings.release:
        _out(
            err,
            "no release detected: set SENTRY_RELEASE, or run inside a git checkout or on a "
            "platform that sets its commit variable (VERCEL_GIT_COMMIT_SHA, ...)",
        )
        return 1
    _out(out, settings.release)
    return 0


def _test_event(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from otel_sentry._internal.verify import send_test_event

    try:
        result = send_test_event(timeout=args.timeout)
    except ConfigError as exc:
        _out(err, str(exc))
        return 2
    for line in result.lines():
        _out(out, line)
    return 0 if result.ok else 1


def collector_configs() -> dict[str, Traversable]:
    """The Collector configs shipped in the package (``otel_sentry/collector/*.yaml``), by name."""
    folder = resources.files("otel_sentry").joinpath("collector")
    found = {entry.name: entry for entry in folder.iterdir() if entry.name.endswith(".yaml")}
    return dict(sorted(found.items()))


def _summary(text: str) -> str:
    """The first sentence of a config's opening comment, for the listing."""
    opening = []
    for line in text.splitlines():
        if not line.startswith("#") or line.strip() == "#":
            break
        opening.append(line.lstrip("# ").strip())
    return " ".join(opening).split(". ")[0].rstrip(".")


def _collector(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    configs = collector_configs()
    if args.name is not None:
        name = args.name if args.name.endswith(".yaml") else f"{args.name}.yaml"
        if name not in configs:
            _out(err, f"no Collector config named {args.name!r}; shipped: {', '.join(configs)}")
            return 2
        configs = {name: configs[name]}
    if args.write is not None:
        target = Path(args.write)
        clashes = [name for name in configs if (target / name).exists()]
        if clashes and not args.force:
            _out(err, f"{target} already has {', '.join(clashes)}: pass --force to overwrite")
            return 1
        target.mkdir(parents=True, exist_ok=True)
        for name, source in configs.items():
            (target / name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
            _out(out, str(target / name))
        return 0
    if args.name is not None:
        [source] = configs.values()
        out.write(source.read_text(encoding="utf-8"))
        return 0
    width = max(len(name) for name in configs)
    for name, source in configs.items():
        _out(out, f"{name:<{width}}  {_summary(source.read_text(encoding='utf-8'))}")
    _out(
        out,
        "\notel-sentry collector NAME prints one; otel-sentry collector --write DIR writes them",
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-sentry",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"otel-sentry {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    doctor = sub.add_parser(
        "doctor",
        help="show the effective config and check the ingest",
        description="Show the effective configuration, where each value came from, the "
        "instrumentations found, and whether the DSN's ingest accepts its key. Exits 1 when "
        "nothing would be sent or the ingest is not usable, 2 when the configuration is invalid.",
    )
    doctor.add_argument("--offline", action="store_true", help="don't contact the ingest")
    doctor.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    test = sub.add_parser(
        "test-event",
        help="send a test error and transaction",
        description="Send one error (OtelSentryTestError) linked to one transaction through the "
        "configured pipeline, and print their ids to look up in Sentry.",
    )
    test.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    sub.add_parser(
        "release",
        help="print the release name the SDK will use",
        description="Print the release name the SDK will use (SENTRY_RELEASE, the git commit, "
        "or the platform's commit variable), e.g. for sentry-cli releases new.",
    )
    collector = sub.add_parser(
        "collector",
        help="list, print or write the shipped OpenTelemetry Collector configs",
        description="The OpenTelemetry Collector configs shipped with otel-sentry: without "
        "arguments, list them; with a NAME, print it; with --write DIR, write them (or NAME) "
        "into DIR.",
    )
    collector.add_argument(
        "name", nargs="?", metavar="NAME", help="a config as listed: agent, gateway, ..."
    )
    collector.add_argument("--write", metavar="DIR", help="write the config(s) into DIR")
    collector.add_argument("--force", action="store_true", help="with --write: overwrite")
    sub.add_parser("inbox", help="run the local Sentry-compatible inbox", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["inbox"]:
        from otel_sentry.inbox.command import main as inbox_main

        return inbox_main(args_list[1:])
    args = _parser().parse_args(args_list)
    if args.command == "doctor":
        return _doctor(args, sys.stdout)
    if args.command == "release":
        return _release(args, sys.stdout, sys.stderr)
    if args.command == "collector":
        return _collector(args, sys.stdout, sys.stderr)
    return _test_event(args, sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
