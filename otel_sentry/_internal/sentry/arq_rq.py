"""arq and RQ job failures -> Sentry issues, linked to the attempt's ``queue.process`` span.

The spans are ``instrument/arq_jobs.py``'s and ``instrument/rq_jobs.py``'s; this observer
(``instrument/job_runs.py``) does what sentry_sdk's ``ArqIntegration`` and ``RqIntegration`` did
beyond tracing. Those are switched off (``sentry/client.py``): they start transactions of
their own, and RQ's writes its own ``sentry-trace``/``baggage`` into ``job.meta`` from
sentry_sdk's scope rather than the OpenTelemetry span.

- each attempt runs in its own sentry_sdk isolation scope, its breadcrumbs cleared (as both
  integrations do), named after the job's function, tagged ``<system>_task_name`` and
  ``<system>_task_id``, so nothing leaks between jobs of one worker;
- the exception that fails a job for good is captured with ``mechanism.handled`` false; the one
  that made RQ retry the job (or that an arq ``Retry`` was raised from) with ``handled`` true,
  as for Celery (``celery_tasks.py``); arq's ``Retry`` itself and an RQ job returning ``Retry``
  are not errors;
- the workers' own loggers (``arq.worker``, ``rq.worker``) are ignored by the logging
  integration once a job ran here: they log the same failure again (RQ as a plain message
  with the traceback in its text, which would be a second, differently grouped issue);
- string arguments the scrubber calls secret by their parameter's name (``api_key``...) go
  with the event as known secret values, as for Celery: passed positionally they are bare
  items of ``args`` where no key rule sees them;
- before RQ's work horse ends with ``os._exit``, everything pending is sent.

The capture runs while the consumer span is current, so ``sentry/events.py`` links the issue to
it.

    install()   # once, from sentry/client.py
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import sentry_sdk
from sentry_sdk.integrations.logging import ignore_logger
from sentry_sdk.utils import event_from_exception

from otel_sentry._internal.instrument import job_runs
from otel_sentry._internal.instrument.job_runs import JobRun
from otel_sentry._internal.scrub import FILTERED, scrub_value
from otel_sentry._internal.sentry.celery_tasks import _leaves
from otel_sentry._internal.sentry.hooks import SECRET_VALUES_HINT
from otel_sentry._internal.sentry.transport import EnvelopeTransport

__all__ = ["install", "uninstall"]

# What a work horse may spend sending before it exits (otel_sentry.flush()'s default).
_EXIT_FLUSH_SECONDS = 2.0


class _SentryJobs:
    """The job observer: scope per attempt, error capture, flush before a horse exits."""

    def __init__(self) -> None:
        self.quieted: set[str] = set()

    def running(self, run: JobRun) -> AbstractContextManager[object]:
        if run.system not in self.quieted:
            ignore_logger(f"{run.system}.worker")
            self.quieted.add(run.system)
        return _job_scope(run)

    def failed(self, run: JobRun, exc: BaseException, *, handled: bool) -> None:
        client = sentry_sdk.get_client()
        if not client.is_active():
            return
        event, hint = event_from_exception(
            (type(exc), exc, exc.__traceback__),
            client_options=client.options,
            mechanism={"type": run.system, "handled": handled},
        )
        secrets = _secret_arguments(run)
        if secrets:
            hint[SECRET_VALUES_HINT] = secrets
        sentry_sdk.capture_event(event, hint=hint)

    def process_exiting(self) -> None:
        # The spans were handed over already (job_runs.process_exiting flushed the tracer
        # provider first); what remains is sentry_sdk's queue, as in otel_sentry.flush().
        client = sentry_sdk.get_client()
        if not client.is_active():
            return
        client.flush(timeout=_EXIT_FLUSH_SECONDS)
        transport = client.transport
        if isinstance(transport, EnvelopeTransport):
            transport.drain(_EXIT_FLUSH_SECONDS)


_observer = _SentryJobs()


def install() -> None:
    """Observe arq and RQ job runs (idempotent)."""
    job_runs.add_observer(_observer)


def uninstall() -> None:
    job_runs.remove_observer(_observer)


@contextlib.contextmanager
def _job_scope(run: JobRun) -> Iterator[object]:
    with sentry_sdk.isolation_scope() as scope:
        scope.clear_breadcrumbs()
        scope.set_transaction_name(run.function, source="task")
        scope.set_tag(f"{run.system}_task_name", run.function)
        scope.set_tag(f"{run.system}_task_id", run.job_id)
        yield scope


def _secret_arguments(run: JobRun) -> list[str]:
    """The string values among the job's arguments that the scrubber filters by their name."""
    bound: dict[str, Any] = dict(run.kwargs)
    if run.target is not None:
        # Without a usable signature, positional arguments stay unnamed.
        with contextlib.suppress(TypeError, ValueError):
            signature = inspect.signature(run.target)
            bound = dict(signature.bind_partial(*run.args, **run.kwargs).arguments)
    return [original for original, kept in _leaves(bound, scrub_value(bound)) if kept == FILTERED]
