"""send(2) on a plain TCP socket without letting go of the GIL, for the HTTP/1.1 pool.

CPython lets go of the GIL around every socket call. Beside a request thread running Python, the
I/O thread can then wait up to the switch interval (5 ms) to get it back after each send, and
over HTTP/1.1 every envelope is a send of its own: a py-spy profile of the I/O thread at 1000
requests/s found 44% of its samples in the transport's write, the send and the wait after it
(BENCHMARKS.md, "Fewer hand-offs of the GIL"). A non-blocking send into a local socket buffer
takes microseconds, so here it is made through ``ctypes.PyDLL``, which keeps the GIL. Whatever
it could not write (a full socket buffer, an error) goes through the asyncio transport as
before, which buffers it or reports the error.

Linux only (``MSG_DONTWAIT``, ``MSG_NOSIGNAL``); elsewhere, and for TLS, the transport's own
write is used.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import sys
from typing import Any

__all__ = ["write"]

_MSG_DONTWAIT = 0x40
_MSG_NOSIGNAL = 0x4000


def _libc_send() -> Any:
    if sys.platform != "linux":
        return None
    try:
        send = ctypes.PyDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).send
    except (OSError, AttributeError):
        return None
    send.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
    send.restype = ctypes.c_ssize_t
    return send


_send = _libc_send()


def write(transport: asyncio.Transport, data: bytes, plain: bool) -> None:
    """``transport.write(data)``; over a ``plain`` (not TLS) socket whose transport has nothing
    buffered, as much as the socket takes is sent at once first, keeping the GIL."""
    if (
        plain
        and _send is not None
        and not transport.get_write_buffer_size()
        and not transport.is_closing()
    ):
        sock = transport.get_extra_info("socket")
        fd = sock.fileno() if sock is not None else -1
        if fd >= 0 and transport.get_extra_info("sslcontext") is None:
            sent = _send(fd, data, len(data), _MSG_DONTWAIT | _MSG_NOSIGNAL)
            if sent == len(data):
                return
            if sent > 0:
                data = data[sent:]
    transport.write(data)  # the rest, or an error the transport reports as it always does
