"""sentry_sdk's own ``init()`` options, as ``otel_sentry.init()`` takes them.

A service moving over keeps its ``sentry_sdk.init(...)`` keywords. Each option of sentry_sdk that
is not also one of ours (``settings.py``) is declared here once, with what becomes of it:

- ``passed``: handed to ``sentry_sdk.init`` as it is, for the error client (``sample_rate``,
  ``ignore_errors``, ``max_breadcrumbs``...) and our transport, which reads the connection ones
  (``ca_certs``, ``http_proxy``, ``cert_file``...);
- ``mapped``: turned into our options, which do the same job here (``enable_tracing`` into
  ``traces_sample_rate``, ``event_scrubber``'s denylist into ``scrub_keys``...); our own keyword,
  when given too, wins;
- ``inert``: accepted, and has no effect here; a value other than sentry_sdk's default gets one
  warning at ``init()`` that says why (``ignore_spans`` only acts in sentry_sdk's span
  streaming...);
- ``refused``: only values that contradict how this package works (``instrumenter="sentry"``,
  ``trace_lifecycle="stream"``), with a message that names what replaces them.

``docs/sentry-sdk-options.md`` is generated from :data:`SDK_OPTIONS` (:func:`markdown_table`),
and a test walks ``sentry_sdk.consts.DEFAULT_OPTIONS`` so that an option a new sentry_sdk adds
cannot go unhandled.

    >>> split({"sample_rate": 0.5, "enable_tracing": False}).mapped
    {'traces_sample_rate': 0.0}
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

__all__ = ["SDK_OPTIONS", "SdkOption", "SentrySdkOptions", "Split", "markdown_table", "split"]

PASSED, MAPPED, INERT, REFUSED = "passed", "mapped", "inert", "refused"


@dataclass(frozen=True)
class SdkOption:
    name: str
    handling: str
    note: str
    # sentry_sdk's default: an inert option set to anything else gets a warning.
    default: Any = None
    # mapped: the value -> our options it stands for.
    to: Callable[[Any, Mapping[str, Any]], dict[str, Any]] | None = None
    # the value -> why it is refused, or None when this value is fine.
    refuse: Callable[[Any], str | None] | None = None


@dataclass
class Split:
    """sentry_sdk keywords, sorted by what becomes of them."""

    passed: dict[str, Any] = field(default_factory=dict)
    mapped: dict[str, Any] = field(default_factory=dict)
    inert: dict[str, str] = field(default_factory=dict)  # name -> why it does nothing here
    refused: list[str] = field(default_factory=list)  # messages


def _passed(name: str, note: str) -> SdkOption:
    return SdkOption(name, PASSED, note)


def _inert(name: str, note: str, default: Any = None) -> SdkOption:
    return SdkOption(name, INERT, note, default)


def _enable_tracing(value: Any, given: Mapping[str, Any]) -> dict[str, Any]:
    # sentry_sdk: False switches tracing off whatever the rates say; True means a rate of 1.0
    # when none is given, which is already our default.
    return {"traces_sample_rate": 0.0} if value is False else {}


def _experiments(value: Any, given: Mapping[str, Any]) -> dict[str, Any]:
    # Logs started as experiments in sentry_sdk 2.x; the released options are ours.
    out: dict[str, Any] = {}
    if isinstance(value, Mapping):
        if value.get("enable_logs") is not None:
            out["enable_logs"] = value["enable_logs"]
        if value.get("before_send_log") is not None:
            out["before_send_log"] = value["before_send_log"]
    return out


def _event_scrubber(value: Any, given: Mapping[str, Any]) -> dict[str, Any]:
    # One scrubber runs here, on errors, transactions and logs alike (``scrub.py``); an
    # EventScrubber's key lists join its keys. Its pii_denylist counts only without PII.
    keys = list(getattr(value, "denylist", None) or ())
    if not given.get("send_default_pii"):
        keys += list(getattr(value, "pii_denylist", None) or ())
    own = given.get("scrub_keys") or ()
    own = [own] if isinstance(own, str) else list(own)
    return {"scrub_keys": tuple(dict.fromkeys([*own, *(str(k) for k in keys)]))} if keys else {}


def _backpressure(value: Any, given: Mapping[str, Any]) -> dict[str, Any]:
    return {"load_shedding": bool(value)}


def _instrumenter(value: Any) -> str | None:
    if value in (None, "otel"):
        return None
    return (
        f"instrumenter={value!r}: spans here are OpenTelemetry's, and sentry_sdk's span API "
        "(start_transaction, start_span, @sentry_sdk.trace) makes OpenTelemetry spans. "
        "Fix: remove instrumenter."
    )


def _trace_lifecycle(value: Any) -> str | None:
    if value in (None, "static"):
        return None
    return (
        f"trace_lifecycle={value!r}: traces reach Sentry here as transactions built from "
        "OpenTelemetry spans. Fix: remove trace_lifecycle (or export spans elsewhere with "
        "export='both' and otlp_endpoint)."
    )


_STREAM_ONLY = "acts only in sentry_sdk's span streaming (trace_lifecycle='stream'), as there"

SDK_OPTIONS: dict[str, SdkOption] = {
    o.name: o
    for o in (
        # -- the error client and its events -------------------------------------------------
        _passed("sample_rate", "share of errors sent"),
        _passed("error_sampler", "per-error sampling function"),
        _passed("ignore_errors", "exception types never sent"),
        _passed("max_breadcrumbs", "breadcrumbs kept per scope"),
        _passed("attach_stacktrace", "stack traces on messages"),
        _passed("server_name", "events' server_name"),
        _passed("dist", "events' distribution"),
        _passed("in_app_include", "in-app frames"),
        _passed("in_app_exclude", "frames not in-app"),
        _passed("project_root", "in-app frames"),
        _passed("include_local_variables", "frame variables on errors"),
        _passed("include_source_context", "source lines on errors (added off the request thread)"),
        _passed("add_full_stack", "whole stack on errors"),
        _passed("max_stack_frames", "frames per stack"),
        _passed("max_value_length", "string trimming in events (ours: 8192 unless given)"),
        _passed("custom_repr", "frame variable repr"),
        _passed("max_request_body_size", "request bodies on errors (with send_default_pii)"),
        _passed("data_collection", "what sentry_sdk's integrations collect on errors"),
        _passed("default_integrations", "sentry_sdk's default integrations"),
        _passed("auto_enabling_integrations", "sentry_sdk's auto-enabled integrations"),
        _passed(
            "disabled_integrations",
            "added to the integrations OpenTelemetry replaces here, which stay off",
        ),
        _passed("send_client_reports", "client reports of what was dropped"),
        _passed("enable_metrics", "sentry_sdk's metrics"),
        _passed("before_send_metric", "sentry_sdk's metrics"),
        _passed("functions_to_trace", "functions wrapped in spans (OpenTelemetry spans here)"),
        # -- profiling: sentry_sdk's profilers, started and stopped by root spans ------------
        _passed(
            "profiles_sampler",
            "rate of profiling per sampled local root, as sentry_sdk's; it gets the context a "
            "`traces_sampler` gets",
        ),
        _passed("profiler_mode", "sentry_sdk's sampler thread (`thread`) or `gevent`"),
        _passed(
            "profile_session_sample_rate",
            "continuous profiling: share of processes whose profiler sends `profile_chunk`s; "
            "transactions name it in `contexts.profile`, spans carry `thread.id`/`thread.name`",
        ),
        _passed(
            "profile_lifecycle",
            "`trace`: the profiler runs while a sampled local root span is open; `manual`: "
            "between `sentry_sdk.profiler.start_profiler()` and `stop_profiler()`",
        ),
        # -- the connection: our transport reads these from sentry_sdk's options -------------
        _passed("http_proxy", "proxy for http:// DSNs"),
        _passed("https_proxy", "proxy for https:// DSNs"),
        _passed("proxy_headers", "headers to the proxy"),
        _passed("ca_certs", "CA bundle to verify Sentry's certificate"),
        _passed("cert_file", "client certificate"),
        _passed("key_file", "client certificate's key"),
        _passed("socket_options", "socket options (sent through urllib3 then)"),
        _passed("shutdown_timeout", "seconds the exit flush may take (ours too)"),
        # -- what the bridge does with options of its own ------------------------------------
        SdkOption(
            "enable_tracing",
            MAPPED,
            "`False`: `traces_sample_rate=0` (no traces kept, as in sentry_sdk); `True`: the "
            "default rate, 1.0",
            to=_enable_tracing,
        ),
        SdkOption(
            "enable_backpressure_handling",
            MAPPED,
            "`load_shedding`: fewer new traces while the process falls behind",
            default=True,
            to=_backpressure,
        ),
        SdkOption(
            "event_scrubber",
            MAPPED,
            "its `denylist` (and `pii_denylist` without `send_default_pii`) joins `scrub_keys`; "
            "one scrubber covers errors, transactions and logs",
            to=_event_scrubber,
        ),
        SdkOption(
            "_experiments",
            MAPPED,
            "passed; `enable_logs` and `before_send_log` in it become those options; "
            "`transport_compression_algo` and `_level` choose the bodies' compression (by "
            "default zstd level 1, brotli or gzip for an ingest without zstd)",
            to=_experiments,
        ),
        SdkOption(
            "auto_session_tracking",
            MAPPED,
            "release health: one request-mode session per server request (sampled or not; "
            "health checks and preflights excepted), counted from OpenTelemetry server spans "
            "for every framework; sent only with a `release`, as in sentry_sdk. `False` counts "
            "none",
            default=True,
        ),
        SdkOption(
            "trace_ignore_status_codes",
            MAPPED,
            "server transactions answered with these HTTP codes are dropped, reported as "
            "`event_processor`",
        ),
        # -- no effect here -----------------------------------------------------------------
        _inert("ignore_spans", _STREAM_ONLY),
        _inert("before_send_span", _STREAM_ONLY),
        _inert("stream_gen_ai_spans", "GenAI spans arrive in their transactions", True),
        _inert(
            "transport_queue_size",
            "what waits for Sentry is bounded by spool_max_mb, and what overflows is reported",
            100,
        ),
        _inert("keep_alive", "connections are always kept alive"),
        _inert(
            "propagate_traces",
            "OpenTelemetry's Celery instrumentation propagates; trace_propagation_targets "
            "decides outgoing HTTP",
            True,
        ),
        _inert("enable_db_query_source", "not bridged yet; db_slow_query_ms flags slow ones", True),
        _inert("db_query_source_threshold_ms", "not bridged yet; see db_slow_query_ms", 100),
        _inert("enable_http_request_source", "not bridged yet", True),
        _inert("http_request_source_threshold_ms", "not bridged yet", 100),
        # -- contradictions -----------------------------------------------------------------
        SdkOption(
            "instrumenter",
            REFUSED,
            "`'otel'` accepted; `'sentry'` refused: spans are OpenTelemetry's here",
            refuse=_instrumenter,
        ),
        SdkOption(
            "trace_lifecycle",
            REFUSED,
            "`'static'` accepted; `'stream'` refused: traces arrive as transactions",
            refuse=_trace_lifecycle,
        ),
    )
}


# Mapped, and kept in ``sentry_sdk_options`` too: ``_experiments`` is passed on as well; the
# other two are read by the code doing their job here (the noise filter, sentry/sessions.py),
# and client.py keeps them from sentry_sdk.
_READ_HERE = ("_experiments", "trace_ignore_status_codes", "auto_session_tracking")


def split(options: Mapping[str, Any]) -> Split:
    """The sentry_sdk keywords among ``options`` (ours are skipped), sorted out."""
    out = Split()
    for name, value in options.items():
        spec = SDK_OPTIONS.get(name)
        if spec is None:
            continue
        if spec.refuse is not None:
            reason = spec.refuse(value)
            if reason is not None:
                out.refused.append(reason)
            continue
        if spec.handling == INERT:
            if value is not None and value != spec.default:
                out.inert[name] = spec.note
            continue
        if spec.to is not None:
            for key, mapped in spec.to(value, options).items():
                if options.get(key) is None:  # our own keyword wins
                    out.mapped[key] = mapped
        if spec.handling == PASSED or name in _READ_HERE:
            out.passed[name] = value
    return out


def markdown_table() -> str:
    """``docs/sentry-sdk-options.md``'s table: every sentry_sdk option, those that are options
    here too first (with their help line from ``settings.py``), in sentry_sdk's order."""
    from sentry_sdk.consts import DEFAULT_OPTIONS

    from otel_sentry._internal.settings import CODE_OPTIONS, OPTIONS

    helps = {o.name: o.help for o in OPTIONS} | {c.name: c.help for c in CODE_OPTIONS}
    lines = ["| sentry_sdk option | here | what it does here |", "|---|---|---|"]
    for name in DEFAULT_OPTIONS:
        if name in helps:
            lines.append(f"| `{name}` | ours | {helps[name]} |")
    for name in DEFAULT_OPTIONS:
        spec = SDK_OPTIONS.get(name)
        if spec is not None:
            lines.append(f"| `{name}` | {spec.handling} | {spec.note} |")
    return "\n".join(lines) + "\n"


class SentrySdkOptions(TypedDict, total=False):
    """The keywords of :data:`SDK_OPTIONS`, for type checkers (``InitOptions`` extends it); the
    types are sentry_sdk's, loosened where it takes several."""

    sample_rate: float
    error_sampler: Callable[[dict[str, Any], dict[str, Any]], float | bool] | None
    ignore_errors: Sequence[type[BaseException] | str]
    max_breadcrumbs: int
    attach_stacktrace: bool
    server_name: str | None
    dist: str | None
    in_app_include: Sequence[str]
    in_app_exclude: Sequence[str]
    project_root: str | None
    include_local_variables: bool | None
    include_source_context: bool | None
    add_full_stack: bool
    max_stack_frames: int | None
    max_value_length: int | None
    custom_repr: Callable[[object], str | None] | None
    max_request_body_size: str
    data_collection: Mapping[str, Any] | None
    default_integrations: bool
    auto_enabling_integrations: bool
    disabled_integrations: Sequence[Any] | None
    auto_session_tracking: bool
    send_client_reports: bool
    enable_metrics: bool
    before_send_metric: Callable[[Any, Any], Any] | None
    functions_to_trace: Sequence[dict[str, str]]
    http_proxy: str | None
    https_proxy: str | None
    proxy_headers: Mapping[str, str] | None
    ca_certs: str | None
    cert_file: str | None
    key_file: str | None
    socket_options: Sequence[tuple[int, int, int | bytes]] | None
    shutdown_timeout: float
    enable_tracing: bool | None
    enable_backpressure_handling: bool
    event_scrubber: Any
    _experiments: Mapping[str, Any]
    trace_ignore_status_codes: Collection[int]
    profiles_sampler: Callable[[dict[str, Any]], float | bool | None] | None
    profiler_mode: str | None
    profile_lifecycle: str
    profile_session_sample_rate: float | None
    ignore_spans: Sequence[Any] | None
    before_send_span: Callable[[Any, Any], Any] | None
    stream_gen_ai_spans: bool
    transport_queue_size: int
    keep_alive: bool | None
    propagate_traces: bool
    enable_db_query_source: bool
    db_query_source_threshold_ms: int
    enable_http_request_source: bool
    http_request_source_threshold_ms: int
    instrumenter: str | None
    trace_lifecycle: str | None


if __name__ == "__main__":  # python -m otel_sentry._internal.sdk_options: print the table
    print(markdown_table(), end="")
