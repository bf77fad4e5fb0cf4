"""A local model endpoint that speaks OpenAI's and Anthropic's wire formats, for the demo and tests.

It answers ``POST /v1/chat/completions`` (OpenAI, JSON or server-sent events with
``stream_options.include_usage``) and ``POST /v1/messages`` (Anthropic, JSON or its event
stream) with a fixed reply and deterministic token counts, so the official ``openai`` and
``anthropic`` clients run unchanged against it. Faults are queued on the server (``fail_next``)
or asked for per request with headers: ``x-local-llm-status`` (an error status, e.g. 429 with
``retry-after``), ``x-local-llm-delay`` (seconds before the answer: a provider timeout).

    python examples/local_llm.py --port 8970
    OPENAI_BASE_URL=http://127.0.0.1:8970/v1 ANTHROPIC_BASE_URL=http://127.0.0.1:8970 ...

Everything listens on 127.0.0.1; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["REPLY", "Fault", "LocalLLM"]

REPLY = "The local model says hello."
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class Fault:
    """One queued misbehaviour: an error status (with ``retry_after`` seconds) and/or a delay."""

    status: int | None = None
    retry_after: float | None = None
    delay: float = 0.0


def _words(value: Any) -> int:
    """A stand-in tokenizer: the number of words in every string of a request's messages."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(_words(v) for v in value)
    if isinstance(value, dict):
        return sum(_words(v) for k, v in value.items() if k in ("content", "text", "system"))
    return 0


class LocalLLM:
    """The server; ``start()`` binds 127.0.0.1 on a free port (or ``port``) in a thread."""

    def __init__(
        self,
        port: int = 0,
        *,
        cached_tokens: int = 3,
        reasoning_tokens: int = 2,
        first_chunk_delay: float = 0.05,
    ) -> None:
        self.cached_tokens = cached_tokens
        self.reasoning_tokens = reasoning_tokens
        self.first_chunk_delay = first_chunk_delay
        self.requests: list[dict[str, Any]] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def openai_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail_next(self, *faults: Fault) -> None:
        """The next requests (one fault each, in order) misbehave; later ones succeed."""
        with self._lock:
            self._faults.extend(faults)

    def take_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def start(self) -> LocalLLM:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="local-llm", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LocalLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler(llm: LocalLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; with Nagle on, the body waits for a delayed ACK.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._error(400, None)
                return
            llm.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
            fault = llm.take_fault() or Fault()
            status = self.headers.get("x-local-llm-status")
            if status:
                fault = Fault(int(status), float(self.headers.get("x-local-llm-retry-after") or 0))
            delay = float(self.headers.get("x-local-llm-delay") or fault.delay)
            if delay:
                time.sleep(delay)
            if fault.status:
                self._error(fault.status, fault.retry_after)
            elif self.path.rstrip("/").endswith("/chat/completions"):
                self._openai(body)
            elif self.path.split("?")[0].rstrip("/").endswith("/messages"):
                self._anthropic(body)
            else:
                self._error(404, None)

        # -- plumbing

        def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, retry_after: float | None) -> None:
            kind = _ERROR_TYPES.get(status, "api_error")
            headers = {"x-should-retry": "true" if status in (429, 500, 529) else "false"}
            if retry_after is not None:
                headers["retry-after"] = f"{retry_after:g}"
            message = f"local model: {kind} ({status})"
            if self.path.endswith("/messages"):
                payload: Any = {"type": "error", "error": {"type": kind, "message": message}}
            else:
                payload = {"error": {"message": message, "type": kind, "code": str(status)}}
            self._json(status, payload, headers)

        def _start_events(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("connection", "close")
            self.end_headers()
            self.close_connection = True
            if llm.first_chunk_delay:
                time.sleep(llm.first_chunk_delay)

        def _event(self, data: Any, event: str | None = None) -> None:
            text = data if isinstance(data, str) else json.dumps(data)
            line = (f"event: {event}\n" if event else "") + f"data: {text}\n\n"
            self.wfile.write(line.encode())
            self.wfile.flush()

        # -- OpenAI chat completions

        def _openai(self, body: dict[str, Any]) -> None:
            model = str(body.get("model") or "gpt-4o-mini")
            served = f"{model}-2024-07-18"
            prompt = _words(body.get("messages"))
            output = len(REPLY.split())
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": output,
                "total_tokens": prompt + output,
                "prompt_tokens_details": {"cached_tokens": min(llm.cached_tokens, prompt)},
                "completion_tokens_details": {
                    "reasoning_tokens": min(llm.reasoning_tokens, output)
                },
            }
            ident, created = f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time())
            if not body.get("stream"):
                message = {"role": "assistant", "content": REPLY, "refusal": None}
                self._json(
                    200,
                    {
                        "id": ident,
                        "object": "chat.completion",
                        "created": created,
                        "model": served,
                        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                        "usage": usage,
                    },
                )
                return
            self._start_events()

            def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
                return {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": served,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }

            self._event(chunk({"role": "assistant", "content": ""}, None))
            for word in REPLY.split(" "):
                self._event(chunk({"content": word + " "}, None))
            self._event(chunk({}, "stop"))
            if (body.get("stream_options") or {}).get("include_usage"):
                self._event({**chunk({}, None), "choices": [], "usage": usage})
            self._event("[DONE]")

        # -- Anthropic messages

        def _anthropic(self, body: dict[str, Any]) -> None:
            model = str(body.get("model") or "claude-sonnet-4-5")
            prompt = _words(body.get("messages")) + _words(body.get("system") or "")
            cached = min(llm.cached_tokens, prompt)
            output = len(REPLY.split())
            ident = f"msg_{uuid.uuid4().hex[:20]}"
            # Anthropic counts cache reads apart from input_tokens.
            usage: dict[str, Any] = {
                "input_tokens": prompt - cached,
                "cache_read_input_tokens": cached,
                "cache_creation_input_tokens": 0,
                "output_tokens": output,
            }
            message: dict[str, Any] = {
                "id": ident,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": REPLY}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": usage,
            }
            if not body.get("stream"):
                self._json(200, message)
                return
            self._start_events()
            start = {**message, "content": [], "stop_reason": None, "usage": {**usage}}
            start["usage"]["output_tokens"] = 1
            self._event({"type": "message_start", "message": start}, "message_start")
            block = {"type": "content_block_start", "index": 0}
            self._event({**block, "content_block": {"type": "text", "text": ""}}, block["type"])
            for word in REPLY.split(" "):
                delta = {"type": "text_delta", "text": word + " "}
                event = {"type": "content_block_delta", "index": 0, "delta": delta}
                self._event(event, "content_block_delta")
            self._event({"type": "content_block_stop", "index": 0}, "content_block_stop")
            self._event(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": output},
                },
                "message_delta",
            )
            self._event({"type": "message_stop"}, "message_stop")

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8970)
    args = parser.parse_args()
    with LocalLLM(args.port) as llm:
        print(f"local model endpoint: OPENAI_BASE_URL={llm.openai_base_url}", flush=True)
        print(f"                      ANTHROPIC_BASE_URL={llm.anthropic_base_url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
