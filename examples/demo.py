"""``make demo``: run the example service against the local inbox and show what Sentry would show.

1. starts the inbox (a local Sentry-compatible ingest) on a free port;
2. starts ``examples/fastapi_app`` under uvicorn with ``SENTRY_DSN`` pointing at it;
3. starts ``redis-server`` and a Celery worker (``examples/worker.py``, prefork) when Redis is
   installed (``make system-deps``), so ``POST /orders/{item_id}`` can store an order in SQLite,
   read it through the Redis cache and enqueue the receipt job;
4. sends a few requests, one of which raises, and waits for the job;
5. prints every envelope that arrived, as the inbox renders it, then the trace that runs from
   the order request into the job;
6. when Node.js and the Next.js example are installed (``bash scripts/nextjs-deps.sh``), starts
   ``examples/nextjs`` (``next start``) in front of the same API, calls its ``/api/checkout``
   route and prints the one trace that spans both: the Next.js server spans (sent by
   ``@sentry/nextjs``) and the Python transaction, whose parent is the Next.js ``fetch`` span.
   Without Node.js, or before the install, that part is skipped with one line saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import httpx

from otel_sentry.inbox import Inbox
from otel_sentry.inbox.view import render

try:  # run as a script (make demo): examples/ is on sys.path; as a module: the repository is
    from demo_extras import PROFILE_ENV, print_checkins, print_profile, run_cron_job
    from local_llm import LocalLLM
except ImportError:
    from examples.demo_extras import PROFILE_ENV, print_checkins, print_profile, run_cron_job
    from examples.local_llm import LocalLLM

ROOT = Path(__file__).resolve().parent.parent
NEXTJS = ROOT / "examples" / "nextjs"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the example app exited early with code {proc.returncode}")
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"the example app did not answer at {url} within {timeout:.0f}s")


def _api_env(inbox: Inbox) -> dict[str, str]:
    return {
        **os.environ,
        "SENTRY_DSN": inbox.dsn(),
        "SENTRY_ENVIRONMENT": "demo",
        "SENTRY_RELEASE": os.environ.get("SENTRY_RELEASE", "demo@1.0.0"),
        "OTEL_SERVICE_NAME": "example-api",
        "PYTHONPATH": str(ROOT),
    }


def _log_file(name: str) -> IO[str]:
    # The apps' own logs (uvicorn prints the traceback of the 500) go to files, so the terminal
    # shows what Sentry would show.
    return tempfile.NamedTemporaryFile(
        "w", prefix=f"otel-sentry-demo-{name}-", suffix=".log", delete=False
    )


def _start_api(env: dict[str, str], port: int, log: IO[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "examples.fastapi_app.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def main() -> int:
    with Inbox() as inbox, _Jobs(inbox) as jobs, LocalLLM() as llm:
        port = _free_port()
        log = _log_file("api")
        # The app's OpenAI client talks to the local model endpoint, never to the internet.
        llm_env = {"OPENAI_BASE_URL": llm.openai_base_url, "OPENAI_API_KEY": "sk-local-demo"}
        app = _start_api({**_api_env(inbox), **jobs.env, **llm_env, **PROFILE_ENV}, port, log)
        base = f"http://127.0.0.1:{port}"
        requests = [
            ("GET", "/items/1"),
            ("GET", "/items/404"),
            ("POST", "/checkout/1"),
            ("POST", "/ask"),  # one LLM call: a gen_ai.chat span
            ("POST", "/checkout/2"),  # raises CheckoutError: one issue in Sentry
        ]
        if jobs.running:
            requests.append(("POST", "/orders/1"))  # SQL, Redis cache, and a job
        try:
            _wait_until_up(f"{base}/health", app)
            print(f"inbox at {inbox.url}; example app at {base} (its log: {log.name})")
            print(jobs.describe() + "\n")
            # Generous: the first order imports the job code and opens the database.
            with httpx.Client(base_url=base, timeout=30) as client:
                for method, path in requests:
                    # One connection per request: uvicorn closes the connection of a request
                    # whose app raised after answering 500, resetting the next request on it.
                    response = client.request(method, path, headers={"connection": "close"})
                    print(f"  {method:<4} {path:<14} -> {response.status_code}")
            inbox.wait_for_items("event", count=1, timeout=10)
            jobs.wait_for_job()
            run_cron_job(inbox)  # examples/nightly_report.py, once, as cron would run it
        finally:
            app.terminate()  # SIGTERM: otel-sentry flushes what is pending, then the app exits
            app.wait(timeout=15)
            log.close()
            jobs.stop()
        # At most one transaction per request once the app has flushed, plus the job's; the
        # noise filters drop /health and the 404, so this waits for what may still come.
        inbox.wait_for(lambda i: len(i.transactions()) >= len(requests) + 1, timeout=5)
        print("\nWhat Sentry would show:\n")
        for received in inbox.envelopes:
            print(render(received))
        if jobs.running:
            _print_job_trace(inbox)
        _print_llm_call(inbox)
        print_profile(inbox)
        print_checkins(inbox)
    return _nextjs()


def _print_llm_call(inbox: Inbox) -> None:
    txn = next((t for t in inbox.transactions() if t["transaction"] == "POST /ask"), None)
    if txn is None:
        print("the POST /ask transaction did not arrive; see the app's log")
        return
    print("=" * 78)
    print(f"one LLM call: {txn['transaction']} [{txn['contexts']['trace']['op']}]")
    for span in txn["spans"]:
        print(f"    {span['op']:<14} {span['description']}  ({span['status']})")
        data = span["data"]
        if span["op"].startswith("gen_ai"):
            print(
                f"      provider {data.get('gen_ai.provider.name')}, "
                f"model {data.get('gen_ai.response.model')}, "
                f"tokens in {data.get('gen_ai.usage.input_tokens')} "
                f"(cached {data.get('gen_ai.usage.input_tokens.cached')}) / "
                f"out {data.get('gen_ai.usage.output_tokens')}, "
                f"finish {data.get('gen_ai.response.finish_reasons')}; no prompt or reply text"
            )


# -- Redis and the Celery worker (examples/worker.py) -------------------------------------------


class _Jobs:
    """redis-server and one prefork Celery worker, when redis-server is installed."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox
        self.env: dict[str, str] = {}
        self.redis: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.worker_log: IO[str] | None = None
        self.tmp = tempfile.TemporaryDirectory(prefix="otel-sentry-demo-")
        self.skipped = ""

    @property
    def running(self) -> bool:
        return self.worker is not None

    def __enter__(self) -> _Jobs:
        binary = shutil.which("redis-server")
        if binary is None:
            self.skipped = "redis-server is not installed (make system-deps installs it)"
            return self
        port = _free_port()
        self.redis = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.tmp.name,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_for_redis(port)
        self.env = {
            "REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "DEMO_DATABASE_URL": f"sqlite:///{Path(self.tmp.name) / 'demo.db'}",
            "OTEL_SENTRY_CACHE_PREFIXES": "order:,receipt:",
        }
        self.worker_log = _log_file("worker")
        self.worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "examples.worker",
                "worker",
                "-P",
                "prefork",
                "-c",
                "1",
            ],
            cwd=ROOT,
            env={**_api_env(self.inbox), **self.env, "OTEL_SERVICE_NAME": "example-worker"},
            stdout=self.worker_log,
            stderr=subprocess.STDOUT,
        )
        return self

    def _wait_for_redis(self, port: int) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"redis-server did not answer on port {port} within 10s")

    def describe(self) -> str:
        if self.worker is None:
            return f"jobs part skipped: {self.skipped}"
        log = self.worker_log.name if self.worker_log else "-"
        return f"redis at {self.env['REDIS_URL']}; celery worker (prefork) (its log: {log})"

    def wait_for_job(self, timeout: float = 60.0) -> None:
        if self.worker is None:
            return
        # The worker's child initializes otel-sentry when it starts; on a busy machine that
        # and the first task take a few seconds.
        found = self.inbox.wait_for(lambda i: _job_transaction(i) is not None, timeout)
        if not found:
            print(f"  the job's transaction did not arrive within {timeout:.0f}s")

    def stop(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.terminate()  # warm shutdown: the child flushes on worker_process_shutdown
            self.worker.wait(timeout=30)
        if self.worker_log is not None:
            self.worker_log.close()
        if self.redis is not None and self.redis.poll() is None:
            self.redis.terminate()
            self.redis.wait(timeout=10)

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.tmp.cleanup()


def _job_transaction(inbox: Inbox) -> dict[str, Any] | None:
    for tx in inbox.transactions():
        if (tx.get("contexts") or {}).get("trace", {}).get("op") == "queue.process":
            return tx
    return None


def _print_job_trace(inbox: Inbox) -> None:
    job = _job_transaction(inbox)
    if job is None:
        print("the job's transaction did not arrive; see the worker's log")
        return
    trace = job["contexts"]["trace"]
    request = next(
        (
            tx
            for tx in inbox.transactions()
            if tx["contexts"]["trace"]["trace_id"] == trace["trace_id"] and tx is not job
        ),
        None,
    )
    if request is None:
        print(f"trace {trace['trace_id']}: the job's request transaction did not arrive")
        return
    data = trace.get("data") or {}
    print("=" * 78)
    print(f"one trace from the request into the job: {trace['trace_id']}\n")
    print(f"  api     {request['transaction']} [{request['contexts']['trace']['op']}]")

    def show(txn: dict[str, Any], parent: str, depth: int) -> None:
        for span in sorted(txn["spans"], key=lambda s: float(s.get("start_timestamp") or 0)):
            if span.get("parent_span_id") != parent:
                continue
            hit = (span.get("data") or {}).get("cache.hit")
            suffix = "" if hit is None else (" (hit)" if hit else " (miss)")
            lines = str(span.get("description") or "").splitlines() or [""]
            if len(lines) > 1:  # a Redis pipeline: one command per line
                suffix += f" (+{len(lines) - 1} more in the pipeline)"
            print(f"{'  ' * depth}{span['op']:<14} {lines[0]}{suffix}")
            show(txn, span["span_id"], depth + 1)
            if span["span_id"] == trace.get("parent_span_id"):
                print(
                    f"{'  ' * (depth + 1)}worker  {job['transaction']} [{trace['op']}]: "
                    f"queue {data.get('messaging.destination.name')}, receive latency "
                    f"{data.get('messaging.message.receive.latency')} ms, "
                    f"retry {data.get('messaging.message.retry.count')}"
                )
                show(job, trace["span_id"], depth + 2)

    show(request, request["contexts"]["trace"]["span_id"], 2)


# -- the Next.js front end (examples/nextjs) ---------------------------------------------------


def _nextjs_unavailable() -> str | None:
    """Why the Next.js part cannot run here, or None when it can."""
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        return "node and npm are not on PATH (Node.js >= 20.19 runs it)"
    version = subprocess.run(
        [node, "-p", "process.versions.node"], capture_output=True, text=True, check=False
    ).stdout.strip()
    try:
        major, minor = (int(x) for x in version.split(".")[:2])
    except ValueError:
        return f"could not read the Node.js version ({version!r})"
    if (major, minor) < (20, 19):
        return f"Node.js {version} is too old (Next.js 16 with @sentry/nextjs 11 needs >= 20.19)"
    if not (NEXTJS / "node_modules" / "next").is_dir():
        return "examples/nextjs/node_modules is missing (run: bash scripts/nextjs-deps.sh)"
    if not (NEXTJS / ".next" / "BUILD_ID").is_file():
        return "examples/nextjs is not built (run: bash scripts/nextjs-deps.sh)"
    return None


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the Next.js server exited early with code {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the Next.js server did not listen on port {port} within {timeout:.0f}s")


def _attr(span: dict[str, Any], key: str) -> Any:
    value = (span.get("attributes") or {}).get(key)
    return value.get("value") if isinstance(value, dict) else value


def _checkout_segment(inbox: Inbox) -> dict[str, Any] | None:
    for span in inbox.spans():
        if span.get("is_segment") and span.get("name") == "POST /api/checkout":
            return span
    return None


def _api_transaction(inbox: Inbox, trace_id: str) -> dict[str, Any] | None:
    for tx in inbox.transactions():
        trace = (tx.get("contexts") or {}).get("trace") or {}
        if tx.get("transaction") == "GET /items/{item_id}" and trace.get("trace_id") == trace_id:
            return tx
    return None


def _nextjs() -> int:
    reason = _nextjs_unavailable()
    if reason is not None:
        print(f"\nNext.js part skipped: {reason}.")
        return 0
    print("\n" + "=" * 78)
    print("Next.js in front: a trace that starts in @sentry/nextjs and continues in Python\n")
    with Inbox() as inbox:
        api_port, next_port = _free_port(), _free_port()
        api_env = _api_env(inbox)
        api_log, next_log = _log_file("api"), _log_file("nextjs")
        api = _start_api(api_env, api_port, api_log)
        next_env = {
            **api_env,
            "API_URL": f"http://127.0.0.1:{api_port}",
            "NEXT_TELEMETRY_DISABLED": "1",
        }
        next_bin = NEXTJS / "node_modules" / "next" / "dist" / "bin" / "next"
        nextjs = subprocess.Popen(
            ["node", str(next_bin), "start", "-H", "127.0.0.1", "-p", str(next_port)],
            cwd=NEXTJS,
            env=next_env,
            stdout=next_log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_up(f"http://127.0.0.1:{api_port}/health", api)
            _wait_for_port(next_port, nextjs)
            print(f"next.js at http://127.0.0.1:{next_port} (its log: {next_log.name})")
            print(f"  API_URL=http://127.0.0.1:{api_port} (its log: {api_log.name})\n")
            response = httpx.post(f"http://127.0.0.1:{next_port}/api/checkout", timeout=30)
            print(f"  POST /api/checkout -> {response.status_code} {response.text}")
            inbox.wait_for(lambda i: _checkout_segment(i) is not None, timeout=15)
        finally:
            nextjs.terminate()
            api.terminate()  # SIGTERM: otel-sentry flushes the transaction
            nextjs.wait(timeout=15)
            api.wait(timeout=15)
            api_log.close()
            next_log.close()
        segment = _checkout_segment(inbox)
        if segment is None:
            print(f"\nno POST /api/checkout span arrived from Next.js; see {next_log.name}")
            return 1
        trace_id = segment["trace_id"]
        inbox.wait_for(lambda i: _api_transaction(i, trace_id) is not None, timeout=10)
        tx = _api_transaction(inbox, trace_id)
        spans = [s for s in inbox.spans() if s.get("trace_id") == trace_id]
        dsc = next(
            (
                r.envelope.headers.get("trace")
                for r in inbox.envelopes
                if tx is not None and tx in r.envelope.transactions()
            ),
            None,
        )
    if tx is None:
        print(f"\nthe Python transaction did not arrive in trace {trace_id}; see {api_log.name}")
        return 1
    return _print_trace(trace_id, spans, tx, dsc)


def _print_trace(trace_id: str, spans: list[dict[str, Any]], tx: dict[str, Any], dsc: Any) -> int:
    by_id = {s["span_id"]: s for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in sorted(spans, key=lambda s: float(s.get("start_timestamp") or 0)):
        parent = span.get("parent_span_id")
        children.setdefault(parent if parent in by_id else None, []).append(span)
    trace = tx["contexts"]["trace"]
    parent = by_id.get(trace.get("parent_span_id") or "")
    joined = parent is not None and _attr(parent, "sentry.op") == "http.client"

    print("\nWhat Sentry would show:\n")
    if joined:
        print(
            f"one trace: {trace_id}: next.js POST /api/checkout -> fastapi GET /items/{{item_id}}"
        )
    else:
        print(f"trace {trace_id}: the Python transaction's parent is not the Next.js fetch span")

    def show(span: dict[str, Any], depth: int) -> None:
        op = _attr(span, "sentry.op")
        url = _attr(span, "url.full")
        line = f"{'  ' * depth}next.js  {span['name']}{f' [{op}]' if op else ''}"
        line += f" span {span['span_id']}"
        print(line + (f" {url}" if url else ""))
        for child in children.get(span["span_id"], []):
            show(child, depth + 1)
        if span["span_id"] == trace.get("parent_span_id"):
            print(
                f"{'  ' * (depth + 1)}fastapi  {tx['transaction']} [{trace.get('op')}] "
                f"transaction, span {trace['span_id']}, parent {trace['parent_span_id']}"
            )

    for root in children.get(None, []):
        show(root, 1)
    if isinstance(dsc, dict):
        # The dynamic sampling context the Next.js head put in baggage, passed on unchanged.
        print(f"\n  sampling context of the Python transaction: {json.dumps(dsc, sort_keys=True)}")
    return 0 if joined else 1


if __name__ == "__main__":
    sys.exit(main())
