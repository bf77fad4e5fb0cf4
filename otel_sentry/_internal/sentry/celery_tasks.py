"""Celery task failures -> Sentry issues, linked to the attempt's ``queue.process`` span.

sentry_sdk's own CeleryIntegration is switched off (``sentry/client.py``): it starts its own
transactions and writes its own ``sentry-trace``/``baggage`` into every task
message, from sentry_sdk's scope rather than the OpenTelemetry span, and our propagator prefers
``sentry-trace`` when both disagree, so the worker would continue the wrong trace. What it did
beyond tracing is done here, from Celery's signals:

- each task runs in its own sentry_sdk isolation scope, named after the task, so tags,
  breadcrumbs and users do not leak from one task into the next one of the same process;
- an exception that fails the task is captured (``mechanism.handled`` false), and so is the
  exception that made an attempt retry (``handled`` true: the retry policy dealt with it): a
  task that fails once and then succeeds is still one issue, on the attempt that failed;
  Celery's control-flow exceptions and the task's declared ``throws`` are not errors;
- Celery's own "Task ... raised" log records are ignored by the logging integration, which
  would otherwise report the same failure a second time;
- the task's arguments are bound to its parameter names and those the scrubber calls secret
  (``api_key``, ``password``...) go with the event as known secret values
  (``hooks.SECRET_VALUES_HINT``): a secret passed positionally is a bare item of ``args`` in
  Celery's own frames and of ``argsrepr`` in its request, where no key rule can see it.

The capture runs while the instrumentation's consumer span is current, so
``otel_sentry._internal.sentry.events`` links the issue to that span.

    install()   # once, from setup, when Celery is installed
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import sentry_sdk
from sentry_sdk.integrations.logging import ignore_logger
from sentry_sdk.utils import event_from_exception

from otel_sentry._internal.scrub import FILTERED, scrub_value
from otel_sentry._internal.sentry.hooks import SECRET_VALUES_HINT

__all__ = ["install", "uninstall"]

_installed = False
# Per running task (by id): the isolation scope entered on prerun, exited on postrun.
_scopes: dict[str, AbstractContextManager[Any]] = {}


def install() -> bool:
    """Connect the Celery signals (idempotent). False when Celery is not installed."""
    global _installed
    if _installed:
        return True
    try:
        from celery import signals  # type: ignore[import-untyped]
    except ImportError:
        return False
    for logger in ("celery.worker.job", "celery.app.trace", "celery.redirected"):
        ignore_logger(logger)
    signals.task_prerun.connect(_enter_scope, weak=False)
    signals.task_postrun.connect(_exit_scope, weak=False)
    signals.task_failure.connect(_on_failure, weak=False)
    signals.task_retry.connect(_on_retry, weak=False)
    _installed = True
    return True


def uninstall() -> None:
    """Disconnect the signals (the ignored loggers stay ignored: sentry_sdk cannot undo that)."""
    global _installed
    if not _installed:
        return
    from celery import signals

    signals.task_prerun.disconnect(_enter_scope)
    signals.task_postrun.disconnect(_exit_scope)
    signals.task_failure.disconnect(_on_failure)
    signals.task_retry.disconnect(_on_retry)
    _installed = False


def _enter_scope(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id is None or task is None:
        return
    manager = sentry_sdk.isolation_scope()
    scope = manager.__enter__()
    _scopes[task_id] = manager
    name = getattr(task, "name", None)
    if isinstance(name, str):
        scope.set_transaction_name(name, source="task")
        scope.set_tag("celery_task_name", name)
    scope.set_tag("celery_task_id", task_id)


def _exit_scope(task_id: str | None = None, **_: Any) -> None:
    manager = _scopes.pop(task_id, None) if task_id is not None else None
    if manager is not None:
        manager.__exit__(None, None, None)


def _on_failure(
    sender: Any = None, exception: Any = None, args: Any = None, kwargs: Any = None, **_: Any
) -> None:
    if isinstance(exception, BaseException):
        _capture(sender, exception, handled=False, args=args, kwargs=kwargs)


def _on_retry(sender: Any = None, reason: Any = None, request: Any = None, **_: Any) -> None:
    cause = getattr(reason, "exc", None)  # Celery's Retry carries the failure that caused it
    if isinstance(cause, BaseException):
        _capture(
            sender,
            cause,
            handled=True,
            args=getattr(request, "args", None),
            kwargs=getattr(request, "kwargs", None),
        )


def _secret_arguments(task: Any, args: Any, kwargs: Any) -> list[str]:
    """The string values among the task's arguments that the scrubber filters by their name."""
    positional = list(args) if isinstance(args, Sequence) and not isinstance(args, str) else []
    named = dict(kwargs) if isinstance(kwargs, Mapping) else {}
    bound: dict[str, Any] = {}
    try:
        bound = dict(inspect.signature(task.run).bind_partial(*positional, **named).arguments)
    except (TypeError, ValueError, AttributeError):
        # No usable signature (a C function, a mismatch): positional ones stay unnamed.
        bound = named
    return [original for original, kept in _leaves(bound, scrub_value(bound)) if kept == FILTERED]


def _leaves(original: Any, scrubbed: Any) -> Iterator[tuple[str, Any]]:
    # Walks the original and its scrubbed copy side by side: a string replaced whole was secret.
    if isinstance(original, str):
        yield original, scrubbed
    elif scrubbed == FILTERED:  # a container under a secret key: all of it is secret
        for value in _strings(original):
            yield value, FILTERED
    elif isinstance(original, Mapping) and isinstance(scrubbed, Mapping):
        for key, value in original.items():
            if key in scrubbed:
                yield from _leaves(value, scrubbed[key])
    elif isinstance(original, (list, tuple)) and isinstance(scrubbed, (list, tuple)):
        for value, kept in zip(original, scrubbed, strict=False):
            yield from _leaves(value, kept)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from _strings(item)


def _capture(
    task: Any, exc: BaseException, *, handled: bool, args: Any = None, kwargs: Any = None
) -> None:
    from celery.exceptions import Ignore, Reject, Retry  # type: ignore[import-untyped]

    if isinstance(exc, (Retry, Ignore, Reject)):
        return
    throws = getattr(task, "throws", None)
    if throws and isinstance(exc, throws):
        return
    client = sentry_sdk.get_client()
    if not client.is_active():
        return
    event, hint = event_from_exception(
        (type(exc), exc, exc.__traceback__),
        client_options=client.options,
        mechanism={"type": "celery", "handled": handled},
    )
    secrets = _secret_arguments(task, args, kwargs)
    if secrets:
        hint[SECRET_VALUES_HINT] = secrets
    sentry_sdk.capture_event(event, hint=hint)
