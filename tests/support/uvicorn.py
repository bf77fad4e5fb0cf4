"""An ASGI app served by a real uvicorn on 127.0.0.1, in a thread of the test process.

    with UvicornThread(app) as server:
        assert server.request("GET", "/health") == 200

``log_config=None`` leaves logging alone (what ``configure_logging()`` tests need); the default
is uvicorn's own, quiet at ``error``.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from typing import Any

from tests.support.servers import free_port

__all__ = ["UvicornThread"]

_DEFAULT: Any = object()


class UvicornThread:
    def __init__(self, app: Any, log_config: Any = _DEFAULT) -> None:
        import uvicorn

        self.port = free_port()
        options: dict[str, Any] = {"host": "127.0.0.1", "port": self.port}
        if log_config is _DEFAULT:
            options["log_level"] = "error"
        else:  # a log level would set uvicorn's loggers' levels too: leave logging alone
            options["log_config"] = log_config
        self.server = uvicorn.Server(uvicorn.Config(app, **options))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> UvicornThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start within 10 s")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)

    def request(self, method: str, path: str) -> int:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    def get(self, path: str) -> int:
        return self.request("GET", path)
