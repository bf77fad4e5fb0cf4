"""Job workers: initialize otel-sentry in the process that runs the tasks, flush when it ends.

A Celery worker with the prefork pool runs tasks in child processes. Threads (our export
senders) do not survive a fork, so each child initializes after it was forked, on
``worker_process_init``, and flushes on ``worker_process_shutdown``: billiard ends its children
with ``os._exit``, which skips ``atexit``. With the solo or thread pools the tasks run in the
worker's main process, so there it initializes on ``worker_init`` and flushes on
``worker_shutdown``.

Beat needs no initialization: it only stamps the messages of the entries Sentry monitors
(``sentry/celery_beat.py``), and reads whether to from the options given here. Its hook is
installed by this call, in the process that imports the app module (``celery beat``, or the
worker whose ``-B`` beat is forked from it).

    # tasks.py (the module given to ``celery -A``)
    from otel_sentry._internal.celery_worker import init_celery_worker
    init_celery_worker()             # same keyword arguments as otel_sentry.init()
"""

from __future__ import annotations

from typing import Any

__all__ = ["init_celery_worker", "worker_options"]

_options: dict[str, Any] | None = None


def init_celery_worker(**options: Any) -> None:
    """Connect Celery's worker signals so every process that runs tasks calls ``init(**options)``.

    Call it at import time of the Celery app module; the last call's options win. Nothing is
    initialized in the calling process itself: a producer (web app) calls ``otel_sentry.init()``.
    """
    global _options
    from celery import signals  # type: ignore[import-untyped]

    from otel_sentry._internal.sentry.celery_beat import patch_beat

    first = _options is None
    _options = dict(options)
    patch_beat()
    if not first:
        return
    signals.worker_process_init.connect(_init_child, weak=False)
    signals.worker_process_shutdown.connect(_shutdown, weak=False)
    signals.worker_init.connect(_init_main, weak=False)
    signals.worker_shutdown.connect(_shutdown, weak=False)


def worker_options() -> dict[str, Any] | None:
    """The options of the last :func:`init_celery_worker` call; None when it was not called."""
    return dict(_options) if _options is not None else None


def _forks(worker: Any) -> bool:
    pool = getattr(worker, "pool_cls", None)
    name = pool if isinstance(pool, str) else getattr(pool, "__module__", "")
    return "prefork" in str(name) or "processes" in str(name)


def _init_child(**_: Any) -> None:
    _init()


def _init_main(sender: Any = None, **_: Any) -> None:
    # In a prefork worker the main process only dispatches; its children do the work (and
    # initialize themselves after the fork).
    if sender is not None and _forks(sender):
        return
    _init()


def _init() -> None:
    import otel_sentry

    otel_sentry.init(**(_options or {}))


def _shutdown(**_: Any) -> None:
    import otel_sentry

    otel_sentry.shutdown()
