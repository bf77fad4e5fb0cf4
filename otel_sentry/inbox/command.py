"""The ``otel-sentry inbox`` command: run a local ingest in the foreground with a live view.

It prints the DSN to point services at, shows everything as it arrives, and stops cleanly on
Ctrl-C or SIGTERM::

    $ python -m otel_sentry.inbox --port 8969
    SENTRY_DSN=http://0123...@127.0.0.1:8969/1

``--tls`` serves HTTPS (HTTP/2 and HTTP/1.1, as Sentry's ingest) with a CA made for the run, and
prints where its certificate is, as the variables sentry_sdk and OTLP exporters read::

    $ python -m otel_sentry.inbox --tls
    SENTRY_DSN=https://0123...@127.0.0.1:8969/1
    OTEL_EXPORTER_OTLP_ENDPOINT=https://127.0.0.1:8969
    OTEL_EXPORTER_OTLP_CERTIFICATE=/tmp/otel-sentry-inbox-tls-.../ca.pem
    SSL_CERT_FILE=/tmp/otel-sentry-inbox-tls-.../ca.pem
"""

from __future__ import annotations

import argparse
import importlib.util
import signal
import sys
import threading
from types import FrameType

from .faults import Fault
from .server import DEFAULT_PUBLIC_KEY, Inbox
from .tls import TLSUnavailableError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-sentry inbox",
        description="Run a local Sentry-compatible ingest (envelopes, Spotlight /stream, OTLP).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8969, help="port (default 8969, as Spotlight)")
    parser.add_argument("--public-key", default=DEFAULT_PUBLIC_KEY, help="DSN public key")
    parser.add_argument("--project-id", type=int, default=1, help="project id in the printed DSN")
    parser.add_argument("--db", metavar="PATH", help="SQLite file to keep envelopes across runs")
    parser.add_argument("--quiet", action="store_true", help="no live view")
    parser.add_argument("--no-validate", action="store_true", help="skip Relay validation")
    parser.add_argument(
        "--counts-only", action="store_true", help="keep counters only (for load tests)"
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS (HTTP/2 and HTTP/1.1) with a CA made for this run; prints its file",
    )
    parser.add_argument(
        "--no-http2", action="store_true", help="with --tls: offer HTTP/1.1 only over ALPN"
    )
    fault = parser.add_argument_group("fault injection (applies to ingest endpoints)")
    fault.add_argument("--fault-status", type=int, help="answer with this HTTP status")
    fault.add_argument("--fault-rate-limits", help="X-Sentry-Rate-Limits value to send")
    fault.add_argument("--fault-retry-after", type=float, help="Retry-After seconds to send")
    fault.add_argument("--fault-delay", type=float, default=0.0, help="seconds before answering")
    fault.add_argument("--fault-refuse", action="store_true", help="close without answering")
    fault.add_argument("--fault-count", type=int, help="fault only this many requests")
    fault.add_argument(
        "--fault-close-after",
        type=int,
        metavar="N",
        help="close each connection after N answers (HTTP/1.1 Connection: close, HTTP/2 GOAWAY)",
    )
    fault.add_argument(
        "--fault-refuse-encoding",
        metavar="CODING",
        help="answer bodies in this Content-Encoding with 400, as an older ingest (e.g. zstd)",
    )
    return parser


def _fault(args: argparse.Namespace) -> Fault | None:
    wanted = (
        args.fault_status is not None
        or args.fault_rate_limits is not None
        or args.fault_retry_after is not None
        or args.fault_delay > 0
        or args.fault_refuse
        or args.fault_close_after is not None
        or args.fault_refuse_encoding is not None
    )
    if not wanted:
        return None
    return Fault(
        status=args.fault_status if args.fault_status is not None else 200,
        rate_limits=args.fault_rate_limits,
        retry_after=args.fault_retry_after,
        delay=args.fault_delay,
        remaining=args.fault_count,
        refuse=args.fault_refuse,
        close_after=args.fault_close_after,
        refuse_encoding=args.fault_refuse_encoding,
    )


# What the plain inbox does without, by the module of the inbox extra it needs.
_WITHOUT_EXTRA = (
    ("opentelemetry.proto", "OTLP (answered 501)"),
    ("brotli", "br bodies"),
    ("zstandard", "zstd bodies"),
)


def _missing_extra() -> list[str]:
    missing = []
    for module, feature in _WITHOUT_EXTRA:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # the parent package is missing too
            found = False
        if not found:
            missing.append(feature)
    return missing


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT or SIGTERM; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.no_http2 and not args.tls:
        parser.error("--no-http2 applies to --tls only: HTTP/2 is served over TLS alone")
    try:
        fault = _fault(args)
    except ValueError as exc:
        parser.error(str(exc))
    inbox = Inbox(
        host=args.host,
        port=args.port,
        public_key=args.public_key,
        db_path=args.db,
        keep_payloads=not args.counts_only,
        echo=None if args.quiet else sys.stdout,
        validate=False if args.no_validate else None,
        tls=args.tls,
        http2=not args.no_http2,
    )
    try:
        inbox.start()
    except TLSUnavailableError as exc:
        print(f"otel-sentry inbox --tls: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"otel-sentry inbox: cannot listen on {args.host}:{args.port} ({exc.strerror}); "
            "pass --port with a free port (or 0 for any)",
            file=sys.stderr,
        )
        return 2
    if fault is not None:
        inbox.set_fault(fault)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
    print(f"SENTRY_DSN={inbox.dsn(args.project_id)}")
    print(f"OTEL_EXPORTER_OTLP_ENDPOINT={inbox.url}")
    if inbox.ca_file is not None:
        # The variables sentry_sdk (ca_certs falls back to SSL_CERT_FILE) and OTLP exporters read.
        print(f"OTEL_EXPORTER_OTLP_CERTIFICATE={inbox.ca_file}")
        print(f"SSL_CERT_FILE={inbox.ca_file}")
        protocols = "HTTP/1.1" if args.no_http2 else "HTTP/2 and HTTP/1.1"
        print(f"# TLS ({protocols}); trust the CA in {inbox.ca_file}, removed on exit")
    print(f"# inbox listening on {inbox.url}; JSON API at {inbox.url}/api/_inbox (its index)")
    if missing := _missing_extra():
        print(
            f"# without the inbox extra: no {', no '.join(missing)}; to add them:"
            " pip install 'otel-sentry[inbox]'"
        )
    if args.db:
        print(f"# {len(inbox.envelopes)} envelope(s) restored from {args.db}")
    if fault is not None:
        print(f"# fault active: {fault}")
    sys.stdout.flush()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        inbox.stop()
    print(f"# inbox stopped: {inbox.counts.summary()}")
    return 0
