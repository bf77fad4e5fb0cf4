"""Every option ``init()`` takes, declared once, as a field of :class:`Settings`.

A field's annotation is the resolved type; :func:`~otel_sentry._internal.options.option` holds the
rest: the variables that set it (most specific first), the parser that turns a raw value into the
type, a help line, what a valid value looks like (for error messages) and the two cells of the
README's configuration table. :func:`~otel_sentry._internal.options.code_option` declares the
options only code passes. Everything else is derived from these fields: :data:`OPTIONS` and
:data:`CODE_ONLY`, what ``config.resolve()`` reads, the names ``init()`` accepts, and the README
table (:func:`markdown_table`, which ``tests/test_options.py`` compares with the README). The model
is Logfire's ``config_params.py``: one table for every parameter.

    >>> [o.env for o in OPTIONS if o.name == "dsn"]
    [('SENTRY_DSN_BACKEND', 'SENTRY_DSN')]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from otel_sentry._internal.dsn import DsnParts, parse_dsn
from otel_sentry._internal.options import (
    CodeOption,
    EventHook,
    Option,
    ScrubCallback,
    TracesSampler,
    code_option,
    option,
    options_table,
)
from otel_sentry._internal.parsers import (
    EXPORT_MODES,
    NOISE_FILTERS,
    parse_bool,
    parse_dsn_text,
    parse_export,
    parse_fastapi_telemetry,
    parse_genai_capture,
    parse_instrument,
    parse_llm_content_mode,
    parse_megabytes,
    parse_name,
    parse_names,
    parse_noise_filters,
    parse_optional_ms,
    parse_optional_rate,
    parse_patterns,
    parse_rate,
    parse_rules,
    parse_text,
    parse_url,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = ["CODE_ONLY", "CODE_OPTIONS", "NAMES", "OPTIONS", "Settings", "markdown_table"]

_RATE = "a number between 0 and 1, like 0.1"
_BOOL = "true or false"


@dataclass(frozen=True)
class Settings:
    """The resolved configuration. ``sources`` says where each value came from."""

    dsn: str | None = option(
        None,
        env=("SENTRY_DSN_BACKEND", "SENTRY_DSN"),
        parse=parse_dsn_text,
        help="Where Sentry data goes. No DSN: instrumentation works, nothing is sent to Sentry.",
        expect="the DSN from Sentry's Project Settings > Client Keys, like "
        "https://<key>@o123.ingest.sentry.io/456",
        doc_default="none: instrumentation works, nothing is sent, one log line says so",
        secret=True,
    )
    enabled: bool = option(
        True,
        env=("SENTRY_ENABLED",),
        parse=parse_bool,
        help="false: nothing leaves the process (tests, local runs).",
        expect=_BOOL,
        doc_default="`true`",
    )
    environment: str = option(
        "production",
        env=("SENTRY_ENVIRONMENT", "SENTRY_ENV", "ENVIRONMENT"),
        parse=parse_name,
        help="Sentry environment; also the deployment.environment.name resource.",
        expect="a name, like staging",
        doc_env="`SENTRY_ENVIRONMENT`, `SENTRY_ENV`, `ENVIRONMENT`, "
        "`deployment.environment[.name]` in `OTEL_RESOURCE_ATTRIBUTES`",
        doc_default="`production`",
    )
    release: str | None = option(
        "auto",
        env=("SENTRY_RELEASE",),
        parse=parse_text,
        help="Release name; 'auto' = the platform's commit variable, then git.",
        expect="a release name, or auto",
        doc_env="`SENTRY_RELEASE` (`auto` = detect)",
        doc_default="`auto`: the platform's commit variable (Vercel, Railway, Render, Heroku, "
        "Coolify, GitHub Actions, GitLab, CodeBuild, CircleCI, Cloud Run), then "
        "`git rev-parse HEAD`",
    )
    traces_sample_rate: float = option(
        1.0,
        env=("SENTRY_TRACES_SAMPLE_RATE_BACKEND", "SENTRY_TRACES_SAMPLE_RATE"),
        parse=parse_rate,
        help="Share of traces started here that are kept, in [0, 1].",
        expect=_RATE,
        doc_env="`SENTRY_TRACES_SAMPLE_RATE_BACKEND`, `SENTRY_TRACES_SAMPLE_RATE`, "
        "`OTEL_TRACES_SAMPLER`(+`_ARG`)",
        doc_default="`1.0`",
    )
    traces_sampler: TracesSampler | None = code_option("`fn(context) -> rate`")
    sampling_rules: tuple[tuple[str, float], ...] = option(
        (),
        env=("OTEL_SENTRY_SAMPLING_RULES",),
        parse=parse_rules,
        help="Per-route rates for root spans, e.g. '/health=0,/api/v1/projects/*=1'.",
        expect="comma-separated <pattern>=<rate> pairs, like /health=0,/api/*=0.5",
        doc_env="`OTEL_SENTRY_SAMPLING_RULES` (`/health=0,/api/v1/projects/*=1`)",
        doc_default="none",
    )
    profiles_sample_rate: float | None = option(
        None,
        env=("SENTRY_PROFILES_SAMPLE_RATE_BACKEND", "SENTRY_PROFILES_SAMPLE_RATE"),
        parse=parse_optional_rate,
        help="Share of sampled transactions profiled (sentry_sdk's profiler, per root span).",
        expect=_RATE,
        doc_default="none (no profiles)",
    )
    send_default_pii: bool = option(
        False,
        env=("SENTRY_SEND_DEFAULT_PII",),
        parse=parse_bool,
        help="Send IPs, emails, cookies and request bodies. Off unless you opt in.",
        expect=_BOOL,
        doc_default="`false`",
    )
    debug: bool = option(
        False,
        env=("SENTRY_DEBUG",),
        parse=parse_bool,
        help="Verbose sentry_sdk and otel-sentry logs.",
        expect=_BOOL,
        doc_default="`false`",
    )
    service_name: str | None = option(
        None,
        env=("OTEL_SERVICE_NAME",),
        parse=parse_text,
        help="service.name resource attribute (else from OTEL_RESOURCE_ATTRIBUTES).",
        expect="a service name, like checkout-api",
        doc_env="`OTEL_SERVICE_NAME`, `service.name` in `OTEL_RESOURCE_ATTRIBUTES`",
        doc_default="OpenTelemetry's default",
    )
    export: str = option(
        "auto",
        env=("OTEL_SENTRY_EXPORT",),
        parse=parse_export,
        help="Where spans go: sentry, otlp, both, none; auto = sentry with a DSN, else otlp "
        "when an OTLP endpoint is set.",
        expect="one of " + ", ".join(EXPORT_MODES),
        doc_env="`OTEL_SENTRY_EXPORT`: `sentry`, `otlp`, `both`, `none`, `auto`",
        doc_default="`auto`: `sentry` with a DSN, else `otlp` when an endpoint is set",
    )
    otlp_endpoint: str | None = option(
        None,
        env=("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        parse=parse_url,
        help="OTLP/HTTP endpoint for the otlp export mode (else Sentry's, from the DSN).",
        expect="an http(s) URL like http://127.0.0.1:4318",
        doc_default="Sentry's OTLP endpoint, derived from the DSN",
    )
    instrument: bool | tuple[str, ...] = option(
        True,
        env=("OTEL_SENTRY_INSTRUMENT",),
        parse=parse_instrument,
        help="Enable the installed OpenTelemetry instrumentations: true, false, or names.",
        expect="true, false, or comma-separated instrumentation names like fastapi,httpx",
        doc_env="`OTEL_SENTRY_INSTRUMENT`: `true`, `false` or names (`fastapi,httpx`); "
        "`OTEL_PYTHON_DISABLED_INSTRUMENTATIONS` also honoured",
        doc_default="every installed instrumentation",
    )
    spotlight: str | None = option(
        None,
        env=("SENTRY_SPOTLIGHT",),
        parse=parse_text,
        help="Mirror every envelope to a local Spotlight or `otel-sentry inbox` (URL or true).",
        expect="true or a URL like http://localhost:8969/stream",
        doc_default="off",
    )
    enable_logs: bool = option(
        False,
        env=("SENTRY_ENABLE_LOGS",),
        parse=parse_bool,
        help="Send log lines as Sentry Logs (log items) too; routed by configure_logging().",
        expect=_BOOL,
        doc_default="`false`: log lines routed by `configure_logging()` also go to Sentry Logs "
        "when on",
    )
    trace_propagation_targets: tuple[str, ...] | None = option(
        None,
        env=("SENTRY_TRACE_PROPAGATION_TARGETS",),
        parse=parse_names,
        help="Where outgoing requests carry trace headers: substrings or regexes of the URL; "
        "default: everywhere but well-known third-party APIs (LLM providers, Stripe, AWS).",
        expect="comma-separated URL substrings or regular expressions",
        doc_env="`SENTRY_TRACE_PROPAGATION_TARGETS` (comma-separated substrings or regexes of "
        "the URL)",
        doc_default="everywhere but well-known third-party APIs",
    )
    org_id: str | None = option(
        None,
        env=("SENTRY_ORG_ID",),
        parse=parse_text,
        help="Sentry org id for strict trace continuation (else read from the DSN host).",
        expect="the organization id, like 123",
        doc_default="from the DSN host",
    )
    strict_trace_continuation: bool = option(
        False,
        env=("SENTRY_STRICT_TRACE_CONTINUATION",),
        parse=parse_bool,
        help="Only continue incoming traces whose org id is known to match.",
        expect=_BOOL,
        doc_default="`false`",
    )
    cache_prefixes: tuple[str, ...] = option(
        (),
        env=("OTEL_SENTRY_CACHE_PREFIXES",),
        parse=parse_names,
        help="Redis keys starting with these prefixes get cache.get/put/remove spans; none: off.",
        expect="comma-separated key prefixes, like cache:,page:",
        doc_env="`OTEL_SENTRY_CACHE_PREFIXES` (comma-separated key prefixes, `cache:,page:`)",
        doc_default="none: no cache spans",
    )
    db_slow_query_ms: float | None = option(
        None,
        env=("OTEL_SENTRY_DB_SLOW_QUERY_MS",),
        parse=parse_optional_ms,
        help="Statements at least this slow get db.query.slow=true; unset: never.",
        expect="a non-negative number of milliseconds, like 250",
        doc_default="none: no statement is flagged slow",
    )
    monitor_beat_tasks: bool = option(
        False,
        env=("OTEL_SENTRY_MONITOR_BEAT_TASKS",),
        parse=parse_bool,
        help="Sentry cron check-ins for Celery beat entries (else CeleryIntegration's "
        "monitor_beat_tasks, when passed in integrations).",
        expect=_BOOL,
        doc_default="`false`, as in sentry_sdk: each entry would become a Sentry monitor "
        "(`docs/integrations.md`, Cron monitors)",
    )
    exclude_beat_tasks: tuple[str, ...] = option(
        (),
        env=("OTEL_SENTRY_EXCLUDE_BEAT_TASKS",),
        parse=parse_patterns,
        help="Beat entries (regexes of the entry name) that send no check-ins.",
        expect="comma-separated regular expressions, like cleanup-.*,heartbeat",
        doc_env="`OTEL_SENTRY_EXCLUDE_BEAT_TASKS` (comma-separated regexes of entry names)",
        doc_default="none (else CeleryIntegration's `exclude_beat_tasks`)",
    )
    capture_llm_content: bool = option(
        False,
        env=("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",),
        parse=parse_genai_capture,
        help="Record LLM prompts and completions on GenAI spans (always through the scrubber).",
        expect="true, false, SPAN_ONLY or NO_CONTENT",
        doc_env="`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` (`true`/`false`, "
        "`SPAN_ONLY`, `SPAN_AND_EVENT`, `NO_CONTENT`)",
        doc_default="`false`: no prompt or completion text on LLM spans",
    )
    llm_content_mode: str = option(
        "full",
        env=("OTEL_SENTRY_LLM_CONTENT_MODE",),
        parse=parse_llm_content_mode,
        help="Captured LLM content as full (scrubbed, truncated) text or hash (sha256 + snippet).",
        expect="full or hash",
        doc_env="`OTEL_SENTRY_LLM_CONTENT_MODE`: `full` or `hash`",
        doc_default="`full`: captured content is the scrubbed text, truncated; `hash`: its "
        "sha256 and a short scrubbed snippet",
    )
    fastapi_telemetry: str = option(
        "auto",
        env=("OTEL_SENTRY_FASTAPI_TELEMETRY",),
        parse=parse_fastapi_telemetry,
        help="FastAPI's server spans from FastAPI's own telemetry (native, FastAPI >= 0.165) or "
        "the contrib FastAPIInstrumentor; auto: native where the installed FastAPI has it.",
        expect="auto, native or contrib",
        doc_env="`OTEL_SENTRY_FASTAPI_TELEMETRY`: `auto`, `native` or `contrib`",
        doc_default="`auto`: FastAPI's own telemetry where the installed FastAPI has it "
        "(>= 0.165), else the contrib instrumentation",
    )
    fastapi_operation_spans: bool = option(
        False,
        env=("OTEL_SENTRY_FASTAPI_OPERATION_SPANS",),
        parse=parse_bool,
        help="With FastAPI's own telemetry, a span per dependency, endpoint, serialization and "
        "background task.",
        expect=_BOOL,
        doc_default="`false`: one server span per request",
    )
    llm_http_spans: bool = option(
        True,
        env=("OTEL_SENTRY_LLM_HTTP_SPANS",),
        parse=parse_bool,
        help="Keep the HTTP client span beneath each LLM call span (false: suppress it).",
        expect=_BOOL,
        doc_default="`true`: the HTTP request span stays beneath each OpenAI call span",
    )
    spool_dir: str | None = option(
        None,
        env=("OTEL_SENTRY_SPOOL_DIR",),
        parse=parse_text,
        help="Keep envelopes Sentry could not take yet on disk here (survives restarts and "
        "crashes); unset: in memory.",
        expect="a writable directory",
        doc_default="none: what waits for Sentry is kept in memory",
    )
    spool_max_mb: float = option(
        16.0,
        env=("OTEL_SENTRY_SPOOL_MAX_MB",),
        parse=parse_megabytes,
        help="Bound of what waits for Sentry (memory or disk); beyond it the oldest is dropped "
        "and counted.",
        expect="a positive size in MiB, like 64",
        doc_default="`16`: bound of what waits for Sentry (memory or disk)",
    )
    spool_at_exit: bool = option(
        True,
        env=("OTEL_SENTRY_SPOOL_AT_EXIT",),
        parse=parse_bool,
        help="At exit, write envelopes not yet delivered under ~/.cache/otel-sentry/spool (or "
        "spool_dir) for the next start; false: count them in a client report instead.",
        expect=_BOOL,
        doc_default="`true`: at exit, what was not delivered is written under "
        "`~/.cache/otel-sentry/spool` (or `spool_dir`) for the next start; `false`: counted in "
        "a client report",
    )
    load_shedding: bool = option(
        True,
        env=("OTEL_SENTRY_LOAD_SHEDDING",),
        parse=parse_bool,
        help="Keep fewer new traces while the process falls behind (event-loop lag, export "
        "backlog); dropped ones are reported as backpressure.",
        expect=_BOOL,
        doc_default="`true`: while the process falls behind (for 1 s: its event loop 50 ms "
        "late, or a whole core busy with the loop 20 ms late, or the export queue backing up), "
        "keep fewer new traces; reported as `backpressure`",
    )
    keep_error_traces: bool = option(
        False,
        env=("OTEL_SENTRY_KEEP_ERROR_TRACES",),
        parse=parse_bool,
        help="Also record unsampled traces; send each local transaction that holds an error.",
        expect=_BOOL,
        doc_default="`false`: a trace the sample rate leaves out is not recorded",
    )
    keep_error_traces_max_mb: float = option(
        32.0,
        env=("OTEL_SENTRY_KEEP_ERROR_TRACES_MAX_MB",),
        parse=parse_megabytes,
        help="Bound of the unsampled spans held until their transaction ends (estimated).",
        expect="a positive size in MiB, like 64",
        doc_default="`32`: bound of the unsampled spans `keep_error_traces` holds",
    )
    gc_freeze: bool = option(
        True,
        env=("OTEL_SENTRY_GC_FREEZE",),
        parse=parse_bool,
        help="At the first init(), move the objects alive then out of the cyclic garbage "
        "collector's full passes (gc.freeze()).",
        expect=_BOOL,
        doc_default="`true`: the first `init()` collects once and freezes what is alive "
        "(`gc.freeze()`), so full collections skip the SDKs' objects",
    )
    scrub_keys: tuple[str, ...] = option(
        (),
        env=("OTEL_SENTRY_SCRUB_KEYS",),
        parse=parse_names,
        help="More key names whose values are replaced by [Filtered] (beside the built-in list).",
        expect="comma-separated key names, like acct-no,member_pin",
        doc_env="`OTEL_SENTRY_SCRUB_KEYS` (comma-separated, `acct-no,member_pin`)",
        doc_default="none beyond the built-in list (`docs/privacy.md`)",
    )
    scrub_patterns: tuple[str, ...] = option(
        (),
        env=("OTEL_SENTRY_SCRUB_PATTERNS",),
        parse=parse_patterns,
        help="Regular expressions whose matches are replaced by [Filtered] in every string.",
        expect="comma-separated regular expressions, like 'acct-[0-9]{6}'",
        doc_env="`OTEL_SENTRY_SCRUB_PATTERNS` (comma-separated regexes; a comma inside one is "
        "`\\x2c`)",
        doc_default="none",
    )
    scrub_allow_keys: tuple[str, ...] = option(
        (),
        env=("OTEL_SENTRY_SCRUB_ALLOW_KEYS",),
        parse=parse_names,
        help="Keys whose values are sent as they are, even when a scrubbing rule matches them.",
        expect="comma-separated key names",
        doc_env="`OTEL_SENTRY_SCRUB_ALLOW_KEYS` (comma-separated keys sent as they are)",
        doc_default="none",
    )
    noise_filters: tuple[str, ...] = option(
        NOISE_FILTERS,
        env=("OTEL_SENTRY_NOISE_FILTERS",),
        parse=parse_noise_filters,
        help="Noise dropped before it is sent: all, none, or "
        "health,preflight,not_found,host_header.",
        expect="all, none, or names out of health, preflight, not_found, host_header",
        doc_env="`OTEL_SENTRY_NOISE_FILTERS`: `all`, `none`, or "
        "`health,preflight,not_found,host_header`",
        doc_default="`all`",
    )
    before_send: EventHook | None = code_option("`fn(event, hint) -> event or None`")
    before_send_transaction: EventHook | None = code_option(
        "`fn(transaction, hint) -> transaction or None`"
    )
    before_breadcrumb: EventHook | None = code_option("`fn(crumb, hint) -> crumb or None`")
    before_send_log: EventHook | None = code_option("`fn(log, hint) -> log or None`")
    scrub_callback: ScrubCallback | None = code_option("`fn(key, value) -> value`")
    integrations: Sequence[Any] | None = code_option(
        "sentry_sdk integrations, added to ours", is_callable=False
    )
    transport: Any = code_option("a sentry_sdk transport class or instance", is_callable=False)
    span_exporters: Sequence[SpanExporter] | None = code_option(
        "more OpenTelemetry span exporters (scrubbed first)", is_callable=False
    )
    resource_attributes: Mapping[str, Any] | None = code_option(
        "more OpenTelemetry resource attributes", is_callable=False
    )
    # sentry_sdk.init() keywords that are not options here (sdk_options.py): those passed to
    # its client, and those accepted without effect (name -> why), warned about at init().
    sentry_sdk_options: Mapping[str, Any] = field(default_factory=dict)
    inert_options: Mapping[str, str] = field(default_factory=dict, compare=False)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def dsn_parts(self) -> DsnParts | None:
        return parse_dsn(self.dsn) if self.dsn else None

    @property
    def sends_to_sentry(self) -> bool:
        return self.enabled and self.dsn is not None

    @property
    def span_export(self) -> tuple[str, ...]:
        """The concrete span destinations: a subset of ('sentry', 'otlp')."""
        if not self.enabled:
            return ()
        if self.export == "auto":
            if self.dsn or self.transport is not None:
                return ("sentry",)
            return ("otlp",) if self.otlp_endpoint else ()
        return {"sentry": ("sentry",), "otlp": ("otlp",), "both": ("sentry", "otlp")}.get(
            self.export, ()
        )

    def as_options(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments that make ``init()`` resolve to these settings (plus overrides)."""
        values: dict[str, Any] = {name: getattr(self, name) for name in NAMES}
        values["release"] = self.release or ""
        values.update(self.sentry_sdk_options)
        values.update(overrides)
        return values


def _declared() -> tuple[tuple[Option, ...], tuple[CodeOption, ...]]:
    options: list[Option] = []
    code: list[CodeOption] = []
    for f in dataclasses.fields(Settings):
        if "option" in f.metadata:
            options.append(dataclasses.replace(f.metadata["option"], name=f.name))
        elif "code_option" in f.metadata:
            code.append(dataclasses.replace(f.metadata["code_option"], name=f.name))
    return tuple(options), tuple(code)


OPTIONS, CODE_OPTIONS = _declared()
# Options that only make sense as Python objects: never read from the environment.
CODE_ONLY: tuple[str, ...] = tuple(o.name for o in CODE_OPTIONS)
# Every name init() accepts.
NAMES: tuple[str, ...] = tuple(o.name for o in OPTIONS) + CODE_ONLY


def markdown_table() -> str:
    """The README's configuration table, from the declarations (``tests/test_options.py``)."""
    return options_table(OPTIONS, CODE_OPTIONS)


if __name__ == "__main__":  # python -m otel_sentry._internal.settings: print the table
    print(markdown_table(), end="")
