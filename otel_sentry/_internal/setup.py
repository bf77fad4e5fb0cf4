"""Builds and installs everything ``init()`` promises, once per process.

Order matters and is fixed here: settings are resolved and validated before anything is
touched, so a bad value leaves the process exactly as it was. Then sentry_sdk (errors, transport),
then the OpenTelemetry ``TracerProvider`` (resource, sampler, span processors), then the
instrumentations. A second identical ``init()`` is a no-op; a different one is an error, because
two configurations in one process would mean double export or silently ignored settings.

What is built lives elsewhere: sentry_sdk's client in ``sentry/client.py``, the OpenTelemetry
provider, sampler, processors and instrumentations in ``pipeline.py``. Here are the process-wide
parts: the lock (held across fork), the one active configuration, flush and shutdown, and the
exit paths (atexit and SIGTERM).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

import sentry_sdk

from otel_sentry._internal import context, pipeline, scrub
from otel_sentry._internal.config import ConfigError, Settings, resolve
from otel_sentry._internal.sentry import celery_beat, propagator, scope_api
from otel_sentry._internal.sentry.client import close_sentry, init_sentry, transaction_defaults
from otel_sentry._internal.sentry.events import link_events, unlink_events
from otel_sentry._internal.sentry.noise import NoiseFilter
from otel_sentry._internal.sentry.propagator import head_from_settings
from otel_sentry._internal.sentry.span_processor import TransactionExporter
from otel_sentry._internal.sentry.transport import EnvelopeTransport
from otel_sentry._internal.settings import NAMES

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from otel_sentry._internal.options import InitOptions

__all__ = ["current_settings", "flush", "init", "shutdown"]

_log = logging.getLogger("otel_sentry")
_OPTION_NAMES = frozenset(NAMES)
_lock = threading.RLock()
_lock_held_for_fork = False


def _before_fork() -> None:
    # A fork while another thread is inside init() or shutdown() would copy a half-built setup
    # and a lock nobody in the child can release: let that call finish first (briefly).
    global _lock_held_for_fork
    _lock_held_for_fork = _lock.acquire(timeout=5)


def _after_fork_in_parent() -> None:
    global _lock_held_for_fork
    if _lock_held_for_fork:
        _lock_held_for_fork = False
        _lock.release()


def _after_fork_in_child() -> None:
    # The exporter, its senders and the transport restart their own threads and sockets in
    # their at-fork hooks; the child only needs a lock of its own.
    global _lock, _lock_held_for_fork
    _lock, _lock_held_for_fork = threading.RLock(), False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )


@dataclass
class _Installed:
    settings: Settings
    instrumented: list[str]
    sentry_client: bool


_installed: _Installed | None = None
_atexit_registered = False


def current_settings() -> Settings | None:
    """The settings of the active ``init()``, or None."""
    installed = _installed
    return installed.settings if installed else None


def init(**options: Unpack[InitOptions]) -> Settings:
    """Resolve settings, then install sentry_sdk, the tracer provider and instrumentations.

    The options are declared in ``otel_sentry/_internal/settings.py`` (README, "Configuration").
    """
    global _installed, _atexit_registered
    settings = resolve(options)
    with _lock:
        if _installed is not None:
            changed = _explicit_changes(_installed.settings, settings, dict(options))
            if not changed:
                return _installed.settings
            raise ConfigError(_conflict_message(changed))
        # Built once, shared by everything below.
        scrub.configure(_scrubber(settings))
        noise = NoiseFilter(
            settings.noise_filters,
            settings.sentry_sdk_options.get("trace_ignore_status_codes") or (),
        )
        defaults = transaction_defaults(settings)
        propagator.configure(head_from_settings(settings))
        context.configure(send_default_pii=settings.send_default_pii)
        client = init_sentry(settings, noise)
        provider = pipeline.install_provider(settings)
        sampler = pipeline.build_sampler(settings, noise)
        pipeline.span_processors(settings, sampler, client, noise, defaults)
        if client:
            link_events(defaults)
        pipeline.install_propagator()
        # sentry_sdk.set_tag(), set_transaction_name(), get_traceparent()...: true of the spans.
        scope_api.install()
        instrumented = pipeline.instrument(provider, settings)
        # After the Celery instrumentation: the check-ins read the span it starts per task.
        celery_beat.install(settings)
        _installed = _Installed(settings, instrumented, client)
        if settings.gc_freeze:
            _freeze_startup_objects()
        if not _atexit_registered:
            # Registered after sentry_sdk's own atexit hook, so it runs first: spans are
            # handed to the transport before the transport drains and closes.
            atexit.register(_at_exit)
            _install_sigterm_flush()
            _atexit_registered = True
    _announce(settings, instrumented)
    return settings


_frozen = False


def _freeze_startup_objects() -> None:
    """Take what exists after the first init() out of the garbage collector's full passes.

    sentry_sdk, the OpenTelemetry SDK and the instrumentations add ~90k objects that live as
    long as the process; every full (generation 2) collection walks them all, a 45 ms pause per
    pass on the soak machine (71 ms with them, 26 ms for the bare app; docs/design.md). Frozen,
    they are skipped: the pause is the app's own again. Objects still alive then are mostly
    modules, classes and configuration; a cycle among them that becomes garbage later is never
    collected, so this runs once per process and collects first. With a pre-fork server it also
    keeps the children from writing to the parent's pages.
    """
    global _frozen
    if _frozen:
        return
    _frozen = True
    gc.collect()
    gc.freeze()


def flush(timeout: float = 2.0) -> bool:
    """Export what is pending, then drain sentry_sdk's transport. True if everything made it."""
    deadline = time.monotonic() + timeout
    ok = pipeline.switchboard.force_flush(int(timeout * 1000))
    client = sentry_sdk.get_client()
    if client.is_active():
        client.flush(timeout=timeout)
        transport = client.transport
        if isinstance(transport, EnvelopeTransport):
            # What waited for Sentry gets the rest of the time; a disk spool keeps the rest.
            ok = transport.drain(max(0.0, deadline - time.monotonic())) and ok
    return ok


def shutdown(timeout: float = 2.0) -> None:
    """Flush, stop exporting and close the Sentry client. ``init()`` may be called again."""
    global _installed
    with _lock:
        if _installed is None:
            return
        # One budget for all of it: a hanging Sentry must not hold a SIGTERM'd process for
        # the sum of every component's own timeout.
        deadline = time.monotonic() + timeout
        flush(timeout)
        for target in pipeline.switchboard.targets:
            if isinstance(target, TransactionExporter):
                target.shutdown_timeout = max(0.1, deadline - time.monotonic())
        pipeline.reset()
        scope_api.uninstall()
        unlink_events()
        propagator.configure(None)
        context.configure(send_default_pii=False)
        if _installed.sentry_client:
            close_sentry(max(0.1, deadline - time.monotonic()))
        _installed = None


def _at_exit() -> None:
    installed = _installed
    budget = installed.settings.sentry_sdk_options.get("shutdown_timeout") if installed else None
    try:
        shutdown(2.0 if budget is None else float(budget))
    except Exception:  # exiting: never turn a clean exit into a traceback
        _log.debug("otel-sentry: shutdown at exit failed", exc_info=True)


def _explicit_changes(old: Settings, new: Settings, options: dict[str, Any]) -> list[str]:
    """Options passed to this call whose value differs from the active one.

    Values that came from the environment or defaults don't count: a library or an app module
    calling a bare ``init()`` after the process was set up (by the launcher, or a test harness)
    joins the existing setup instead of failing. Hooks and other objects compare by identity.
    """
    return [
        name
        for name in options
        if (name in _OPTION_NAMES and _differs(getattr(old, name), getattr(new, name)))
        or (
            name in new.sentry_sdk_options
            and _differs(old.sentry_sdk_options.get(name), new.sentry_sdk_options[name])
        )
    ]


def _differs(old: Any, new: Any) -> bool:
    if callable(old) or callable(new):
        return old is not new
    return bool(old != new)


def _install_sigterm_flush() -> None:
    """Flush on SIGTERM, then let the previous handler (or the default) do what it did.

    atexit alone is not enough: servers such as uvicorn re-raise SIGTERM with the default
    handler after their graceful shutdown, which ends the process without running atexit.
    When they restore the handler they found at startup, that is this one.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)
    if getattr(previous, "_otel_sentry", False):
        return

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        _at_exit()
        if callable(previous):
            previous(signum, frame)
            return
        signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        signal.raise_signal(signum)

    on_sigterm._otel_sentry = True  # type: ignore[attr-defined]
    with contextlib.suppress(ValueError, OSError):  # not the main interpreter's main thread
        signal.signal(signal.SIGTERM, on_sigterm)


def _conflict_message(changed: list[str]) -> str:
    return (
        "otel_sentry.init() was already called with different settings "
        f"(changed: {', '.join(changed)}). Two configurations in one process would export twice "
        "or ignore one of them. Fix: call init() once at startup, or call "
        "otel_sentry.shutdown() before initializing again."
    )


def _scrubber(settings: Settings) -> scrub.Scrubber:
    return scrub.Scrubber(
        extra_keys=settings.scrub_keys,
        patterns=settings.scrub_patterns,
        allow_keys=settings.scrub_allow_keys,
        callback=settings.scrub_callback,
        send_default_pii=settings.send_default_pii,
    )


def _announce(settings: Settings, instrumented: list[str]) -> None:
    for name, why in settings.inert_options.items():
        _log.warning(
            "otel-sentry: sentry_sdk option %s is accepted but has no effect: %s", name, why
        )
    if not settings.enabled:
        _log.info("otel-sentry: disabled (SENTRY_ENABLED=false): nothing is sent")
    elif settings.dsn is None and not settings.span_export and settings.transport is None:
        _log.warning(
            "otel-sentry: no SENTRY_DSN and no OTEL_EXPORTER_OTLP_ENDPOINT: instrumentation is "
            "on (%s) but nothing is sent",
            ", ".join(instrumented) or "no libraries",
        )
    else:
        _log.info(
            "otel-sentry: sending to %s; environment=%s release=%s; instrumented: %s",
            " and ".join(settings.span_export) or "sentry (errors only)",
            settings.environment,
            settings.release,
            ", ".join(instrumented) or "nothing",
        )
