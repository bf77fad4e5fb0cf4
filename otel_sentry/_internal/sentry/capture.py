"""An error's capture, at less cost to the request that raised it.

sentry_sdk builds an error event on the thread that captures it (the request's), and three of
its steps cost far more there than they need to (benchmarks/soak.py; profile in BENCHMARKS.md):

- Source lines. For every frame ``get_lines_from_file`` calls the module loader's
  ``get_source()``, which reads and decodes the whole file again, for every frame of every
  error (no cache): a quarter of the capture's CPU under FastAPI's middleware stack, and file
  I/O on the request path. Here the client is set up with ``include_source_context=False`` and
  our transport adds the same lines off the request thread just before the envelope is serialized
  (:func:`add_source_context`), through :mod:`linecache` (read once per file and kept, as the
  traceback module does). They go through the scrubber's text pass: a hard-coded
  ``password = "..."`` in a line of code is a secret like any other. A user's ``before_send``
  therefore sees frames without ``pre_context`` / ``context_line`` / ``post_context``.
- The installed-packages list (``ModulesIntegration``): built from every distribution's
  metadata the first time an event is prepared, 0.2-0.5 s on the request that raised first.
  :func:`warm_installed_modules` builds it on a thread at init.
- Django's QuerySet repr hook: it runs for every value the serializer meets (every local
  variable of every frame) and starts with an ``import`` statement;
  :func:`speed_up_queryset_repr` swaps it for one that does the same with a dictionary lookup.
"""

from __future__ import annotations

import contextlib
import linecache
import sys
import threading
from collections.abc import Iterator
from typing import Any

from otel_sentry._internal import scrub

__all__ = [
    "CONTEXT_LINES",
    "add_source_context",
    "speed_up_queryset_repr",
    "warm_installed_modules",
]

CONTEXT_LINES = 5  # sentry_sdk's default
_MAX_LINE = 1024  # characters per line: minified code must not fill the 1 MiB item
_MAX_ADDED = 256 * 1024  # characters per event, all frames together


def add_source_context(event: dict[str, Any], lines: int = CONTEXT_LINES) -> None:
    """Fill ``pre_context`` / ``context_line`` / ``post_context`` of every frame, in place."""
    added = 0
    scrubber = scrub.current()
    for frame in _frames(event):
        if "context_line" in frame:
            continue
        path, lineno = frame.get("abs_path"), frame.get("lineno")
        if not isinstance(path, str) or not isinstance(lineno, int) or lineno < 1:
            continue
        source = _source(path, frame.get("module"))
        if lineno > len(source):
            continue
        i = lineno - 1
        pre = [_line(s, scrubber) for s in source[max(0, i - lines) : i]]
        current = _line(source[i], scrubber)
        post = [_line(s, scrubber) for s in source[i + 1 : i + 1 + lines]]
        added += len(current) + sum(map(len, pre)) + sum(map(len, post))
        if added > _MAX_ADDED:
            return
        frame["pre_context"], frame["context_line"], frame["post_context"] = pre, current, post


def _frames(event: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for interface in ("exception", "threads"):
        container = event.get(interface)
        values = container.get("values") if isinstance(container, dict) else None
        for value in values if isinstance(values, list) else ():
            stacktrace = value.get("stacktrace") if isinstance(value, dict) else None
            frames = stacktrace.get("frames") if isinstance(stacktrace, dict) else None
            for frame in frames if isinstance(frames, list) else ():
                if isinstance(frame, dict):
                    yield frame


def _source(path: str, module: Any) -> list[str]:
    # With the module's globals, linecache finds the source through its loader when the file
    # is not on disk (zip imports), as sentry_sdk's loader.get_source() would.
    loaded = sys.modules.get(module) if isinstance(module, str) else None
    module_globals = getattr(loaded, "__dict__", None)
    try:
        return linecache.getlines(path, module_globals)
    except Exception:  # a loader that raises: no context, as sentry_sdk does
        return []


def _line(text: str, scrubber: scrub.Scrubber) -> str:
    text = text.rstrip("\r\n")
    if len(text) > _MAX_LINE:
        text = text[: _MAX_LINE - 3] + "..."
    return scrubber.scrub_text(text)


def speed_up_queryset_repr() -> None:
    """Replace sentry_sdk's Django QuerySet repr hook with an equivalent without the import.

    The hook (sentry_sdk.integrations.django, 2.x) is module state of sentry_sdk's serializer;
    if it is not there (no Django, or sentry_sdk changed) nothing is replaced.
    """
    try:
        from sentry_sdk import serializer
    except ImportError:  # pragma: no cover - sentry_sdk is a dependency
        return
    processors = getattr(serializer, "global_repr_processors", None)
    if not isinstance(processors, list):
        return
    for i, processor in enumerate(processors):
        if getattr(processor, "__name__", "") == "_django_queryset_repr":
            processors[i] = _queryset_repr


def _queryset_repr(value: Any, hint: Any) -> Any:
    query = sys.modules.get("django.db.models.query")
    queryset = getattr(query, "QuerySet", None)
    # An unevaluated QuerySet would run its query in repr(); an evaluated one is shown as is.
    if queryset is None or not isinstance(value, queryset) or value._result_cache:
        return NotImplemented
    return f"<{value.__class__.__name__} from {value.__module__} at 0x{id(value):x}>"


def warm_installed_modules() -> threading.Thread | None:
    """Build sentry_sdk's cached list of installed packages now, on a thread of its own.

    The cache is sentry_sdk's private module state (2.x); without it, nothing is done and the
    first event builds it, as before.
    """
    try:
        from sentry_sdk import utils
    except ImportError:  # pragma: no cover - sentry_sdk is a dependency
        return None
    build = getattr(utils, "_get_installed_modules", None)
    if build is None or getattr(utils, "_installed_modules", None) is not None:
        return None
    thread = threading.Thread(target=_quietly, args=(build,), name="otel-sentry-modules")
    thread.daemon = True
    thread.start()
    return thread


def _quietly(build: Any) -> None:
    # A broken distribution's metadata: the first event finds out, as before.
    with contextlib.suppress(Exception):
        build()
