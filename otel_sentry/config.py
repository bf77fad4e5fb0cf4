"""Settings: every option, read from keyword arguments, then the environment, then defaults.

Real deployments spell the same setting several ways (``SENTRY_ENV``, ``SENTRY_DSN_BACKEND``,
``OTEL_TRACES_SAMPLER_ARG``...), so each option lists every name it answers to, most specific
first. A bad value is a :class:`ConfigError` that names the setting, the value and the fix;
nothing falls back to a default silently.

    >>> s = resolve({"traces_sample_rate": 0.2}, {"SENTRY_ENV": "staging"})
    >>> (s.traces_sample_rate, s.environment, s.sources["environment"])
    (0.2, 'staging', 'env:SENTRY_ENV')
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from otel_sentry.dsn import DsnParts, parse_dsn, redact_url
from otel_sentry.release import detect_release
from otel_sentry.values import (
    EXPORT_MODES,
    parse_bool,
    parse_dsn_text,
    parse_export,
    parse_genai_capture,
    parse_instrument,
    parse_llm_content_mode,
    parse_megabytes,
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

__all__ = [
    "EXPORT_MODES",
    "OPTIONS",
    "ConfigError",
    "DsnParts",
    "Option",
    "Settings",
    "parse_dsn",
    "redact_url",
    "resolve",
]


class ConfigError(ValueError):
    """A setting has a value we cannot use. The message names the setting and the fix."""


def _otel_sampler(environ: Mapping[str, str]) -> float | None:
    """Map ``OTEL_TRACES_SAMPLER``/``_ARG`` onto a rate: Sentry sampling is always parent-based."""
    name = environ.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    if not name or name == "sentry":
        return None
    arg = environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    if name in ("always_on", "parentbased_always_on"):
        return 1.0
    if name in ("always_off", "parentbased_always_off"):
        return 0.0
    if name in ("traceidratio", "parentbased_traceidratio"):
        try:
            return parse_rate(arg or "1.0")
        except ValueError as exc:
            raise ConfigError(
                f"OTEL_TRACES_SAMPLER_ARG={arg!r} is not usable: {exc}. "
                "Fix: set OTEL_TRACES_SAMPLER_ARG to a rate in [0, 1]."
            ) from exc
    raise ConfigError(
        f"OTEL_TRACES_SAMPLER={name!r} is not a sampler otel-sentry can honour. Fix: use "
        "sentry, traceidratio or parentbased_traceidratio (with OTEL_TRACES_SAMPLER_ARG), "
        "always_on or always_off, or set SENTRY_TRACES_SAMPLE_RATE instead."
    )


_EXPECT: dict[Callable[[Any], Any], str] = {
    parse_bool: "true or false",
    parse_rate: "a number between 0 and 1, like 0.1",
    parse_optional_rate: "a number between 0 and 1, like 0.1",
    parse_optional_ms: "a non-negative number of milliseconds, like 250",
    parse_export: "one of " + ", ".join(EXPORT_MODES),
    parse_genai_capture: "true, false, SPAN_ONLY or NO_CONTENT",
    parse_llm_content_mode: "full or hash",
    parse_url: "an http(s) URL like http://127.0.0.1:4318",
    parse_patterns: "comma-separated regular expressions, like 'acct-[0-9]{6}'",
    parse_noise_filters: "all, none, or names out of health, preflight, not_found, host_header",
    parse_rules: "comma-separated <pattern>=<rate> pairs, like /health=0,/api/*=0.5",
}


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: its keyword name, the variables that set it (most specific first)."""

    name: str
    env: tuple[str, ...]
    parse: Callable[[Any], Any]
    default: Any
    help: str
    secret: bool = False


OPTIONS: tuple[Option, ...] = (
    Option(
        "dsn",
        ("SENTRY_DSN_BACKEND", "SENTRY_DSN"),
        parse_dsn_text,
        None,
        "Where Sentry data goes. No DSN: instrumentation works, nothing is sent to Sentry.",
        secret=True,
    ),
    Option(
        "enabled",
        ("SENTRY_ENABLED",),
        parse_bool,
        True,
        "false: nothing leaves the process (tests, local runs).",
    ),
    Option(
        "environment",
        ("SENTRY_ENVIRONMENT", "SENTRY_ENV", "ENVIRONMENT"),
        parse_text,
        "production",
        "Sentry environment; also the deployment.environment.name resource.",
    ),
    Option(
        "release",
        ("SENTRY_RELEASE",),
        parse_text,
        "auto",
        "Release name; 'auto' = the platform's commit variable, then git.",
    ),
    Option(
        "traces_sample_rate",
        ("SENTRY_TRACES_SAMPLE_RATE_BACKEND", "SENTRY_TRACES_SAMPLE_RATE"),
        parse_rate,
        1.0,
        "Share of traces started here that are kept, in [0, 1].",
    ),
    Option(
        "profiles_sample_rate",
        ("SENTRY_PROFILES_SAMPLE_RATE_BACKEND", "SENTRY_PROFILES_SAMPLE_RATE"),
        parse_optional_rate,
        None,
        "Share of sampled transactions profiled by sentry_sdk.",
    ),
    Option(
        "send_default_pii",
        ("SENTRY_SEND_DEFAULT_PII",),
        parse_bool,
        False,
        "Send IPs, emails, cookies and request bodies. Off unless you opt in.",
    ),
    Option(
        "debug",
        ("SENTRY_DEBUG",),
        parse_bool,
        False,
        "Verbose sentry_sdk and otel-sentry logs.",
    ),
    Option(
        "service_name",
        ("OTEL_SERVICE_NAME",),
        parse_text,
        None,
        "service.name resource attribute (else from OTEL_RESOURCE_ATTRIBUTES).",
    ),
    Option(
        "export",
        ("OTEL_SENTRY_EXPORT",),
        parse_export,
        "auto",
        "Where spans go: sentry, otlp, both, none; auto = sentry with a DSN, else otlp "
        "when an OTLP endpoint is set.",
    ),
    Option(
        "otlp_endpoint",
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        parse_url,
        None,
        "OTLP/HTTP endpoint for the otlp export mode (else Sentry's, from the DSN).",
    ),
    Option(
        "sampling_rules",
        ("OTEL_SENTRY_SAMPLING_RULES",),
        parse_rules,
        (),
        "Per-route rates for root spans, e.g. '/health=0,/api/v1/projects/*=1'.",
    ),
    Option(
        "instrument",
        ("OTEL_SENTRY_INSTRUMENT",),
        parse_instrument,
        True,
        "Enable the installed OpenTelemetry instrumentations: true, false, or names.",
    ),
    Option(
        "spotlight",
        ("SENTRY_SPOTLIGHT",),
        parse_text,
        None,
        "Mirror every envelope to a local Spotlight or `otel-sentry inbox` (URL or true).",
    ),
    Option(
        "org_id",
        ("SENTRY_ORG_ID",),
        parse_text,
        None,
        "Sentry org id for strict trace continuation (else read from the DSN host).",
    ),
    Option(
        "trace_propagation_targets",
        ("SENTRY_TRACE_PROPAGATION_TARGETS",),
        parse_names,
        None,
        "Where outgoing requests carry trace headers: substrings or regexes of the URL; "
        "default: everywhere but well-known third-party APIs (LLM providers, Stripe, AWS).",
    ),
    Option(
        "strict_trace_continuation",
        ("SENTRY_STRICT_TRACE_CONTINUATION",),
        parse_bool,
        False,
        "Only continue incoming traces whose org id is known to match.",
    ),
    Option(
        "cache_prefixes",
        ("OTEL_SENTRY_CACHE_PREFIXES",),
        parse_names,
        (),
        "Redis keys starting with these prefixes get cache.get/put/remove spans; none: off.",
    ),
    Option(
        "db_slow_query_ms",
        ("OTEL_SENTRY_DB_SLOW_QUERY_MS",),
        parse_optional_ms,
        None,
        "Statements at least this slow get db.query.slow=true; unset: never.",
    ),
    Option(
        "capture_llm_content",
        ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",),
        parse_genai_capture,
        False,
        "Record LLM prompts and completions on GenAI spans (always through the scrubber).",
    ),
    Option(
        "llm_content_mode",
        ("OTEL_SENTRY_LLM_CONTENT_MODE",),
        parse_llm_content_mode,
        "full",
        "Captured LLM content as full (scrubbed, truncated) text or hash (sha256 + snippet).",
    ),
    Option(
        "llm_http_spans",
        ("OTEL_SENTRY_LLM_HTTP_SPANS",),
        parse_bool,
        True,
        "Keep the HTTP client span beneath each LLM call span (false: suppress it).",
    ),
    Option(
        "scrub_keys",
        ("OTEL_SENTRY_SCRUB_KEYS",),
        parse_names,
        (),
        "More key names whose values are replaced by [Filtered] (beside the built-in list).",
    ),
    Option(
        "scrub_patterns",
        ("OTEL_SENTRY_SCRUB_PATTERNS",),
        parse_patterns,
        (),
        "Regular expressions whose matches are replaced by [Filtered] in every string.",
    ),
    Option(
        "scrub_allow_keys",
        ("OTEL_SENTRY_SCRUB_ALLOW_KEYS",),
        parse_names,
        (),
        "Keys whose values are sent as they are, even when a scrubbing rule matches them.",
    ),
    Option(
        "noise_filters",
        ("OTEL_SENTRY_NOISE_FILTERS",),
        parse_noise_filters,
        ("health", "preflight", "not_found", "host_header"),
        "Noise dropped before it is sent: all, none, or health,preflight,not_found,host_header.",
    ),
    Option(
        "enable_logs",
        ("SENTRY_ENABLE_LOGS",),
        parse_bool,
        False,
        "Send log lines as Sentry Logs (log items) too; routed by configure_logging().",
    ),
    Option(
        "spool_dir",
        ("OTEL_SENTRY_SPOOL_DIR",),
        parse_text,
        None,
        "Keep envelopes Sentry could not take yet on disk here (survives restarts and crashes); "
        "unset: in memory.",
    ),
    Option(
        "spool_max_mb",
        ("OTEL_SENTRY_SPOOL_MAX_MB",),
        parse_megabytes,
        16.0,
        "Bound of what waits for Sentry (memory or disk); beyond it the oldest is dropped "
        "and counted.",
    ),
    Option(
        "spool_at_exit",
        ("OTEL_SENTRY_SPOOL_AT_EXIT",),
        parse_bool,
        True,
        "At exit, write envelopes not yet delivered under ~/.cache/otel-sentry/spool (or "
        "spool_dir) for the next start; false: count them in a client report instead.",
    ),
    Option(
        "load_shedding",
        ("OTEL_SENTRY_LOAD_SHEDDING",),
        parse_bool,
        True,
        "Keep fewer new traces while the process falls behind (event-loop lag, export backlog); "
        "dropped ones are reported as backpressure.",
    ),
    Option(
        "gc_freeze",
        ("OTEL_SENTRY_GC_FREEZE",),
        parse_bool,
        True,
        "At the first init(), move the objects alive then out of the cyclic garbage collector's "
        "full passes (gc.freeze()).",
    ),
)
_BY_NAME = {o.name: o for o in OPTIONS}
_CALLBACKS = frozenset(
    {
        "traces_sampler",
        "before_send",
        "before_send_transaction",
        "before_breadcrumb",
        "before_send_log",
        "scrub_callback",
    }
)

# Options that only make sense as Python objects: never read from the environment.
CODE_ONLY: tuple[str, ...] = (
    "traces_sampler",
    "before_send",
    "before_send_transaction",
    "integrations",
    "transport",
    "span_exporters",
    "resource_attributes",
    "before_breadcrumb",
    "before_send_log",
    "scrub_callback",
)


@dataclass(frozen=True)
class Settings:
    """The resolved configuration. ``sources`` says where each value came from."""

    dsn: str | None
    enabled: bool
    environment: str
    release: str | None
    traces_sample_rate: float
    profiles_sample_rate: float | None
    send_default_pii: bool
    debug: bool
    service_name: str | None
    export: str
    otlp_endpoint: str | None
    sampling_rules: tuple[tuple[str, float], ...]
    instrument: bool | tuple[str, ...]
    spotlight: str | None
    org_id: str | None
    trace_propagation_targets: tuple[str, ...] | None
    strict_trace_continuation: bool
    enable_logs: bool = False
    spool_dir: str | None = None
    spool_max_mb: float = 16.0
    spool_at_exit: bool = True
    load_shedding: bool = True
    gc_freeze: bool = True
    cache_prefixes: tuple[str, ...] = ()
    db_slow_query_ms: float | None = None
    capture_llm_content: bool = False
    llm_content_mode: str = "full"
    llm_http_spans: bool = True
    scrub_keys: tuple[str, ...] = ()
    scrub_patterns: tuple[str, ...] = ()
    scrub_allow_keys: tuple[str, ...] = ()
    noise_filters: tuple[str, ...] = ("health", "preflight", "not_found", "host_header")
    code: tuple[tuple[str, Any], ...] = ()
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
            if self.dsn or self.option("transport") is not None:
                return ("sentry",)
            return ("otlp",) if self.otlp_endpoint else ()
        return {"sentry": ("sentry",), "otlp": ("otlp",), "both": ("sentry", "otlp")}.get(
            self.export, ()
        )

    def option(self, name: str) -> Any:
        return dict(self.code).get(name)

    def as_options(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments that make ``init()`` resolve to these settings (plus overrides)."""
        values: dict[str, Any] = {o.name: getattr(self, o.name) for o in OPTIONS}
        values["release"] = self.release or ""
        values.update(self.code)
        values.update(overrides)
        return values


def _describe(option: Option, origin: str, raw: object) -> str:
    shown = repr(redact_url(str(raw))) if option.secret else repr(raw)
    if origin == "kwarg":
        return f"{option.name}={shown} (argument to otel_sentry.init)"
    return f"{origin.removeprefix('env:')}={shown}"


def _fix(option: Option, origin: str) -> str:
    where = option.name if origin == "kwarg" else origin.removeprefix("env:")
    if option.name == "dsn":
        return (
            f"set {where} to the DSN from Sentry's Project Settings > Client Keys, "
            "like https://<key>@o123.ingest.sentry.io/456, or unset it to send nothing"
        )
    expect = _EXPECT.get(option.parse, "a valid value")
    return f"set {where} to {expect}, or unset it ({option.help})"


def resolve(options: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Keyword arguments win, then the most specific variable, then the default."""
    env = os.environ if environ is None else environ
    unknown = [k for k in options if k not in _BY_NAME and k not in CODE_ONLY]
    if unknown:
        known = [*_BY_NAME, *CODE_ONLY]
        hints = [
            f"{k!r}"
            + (
                f" (did you mean {m[0]!r}?)"
                if (m := difflib.get_close_matches(k, known, 1))
                else ""
            )
            for k in unknown
        ]
        raise ConfigError(
            f"otel_sentry.init() got unknown option(s) {', '.join(hints)}. "
            f"Fix: use one of {', '.join(known)}."
        )

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for option in OPTIONS:
        origin, raw = "default", option.default
        if option.name in options and options[option.name] is not None:
            origin, raw = "kwarg", options[option.name]
        else:
            for name in option.env:
                if env.get(name, "").strip():
                    origin, raw = f"env:{name}", env[name]
                    break
        if origin == "default":
            values[option.name], sources[option.name] = option.default, "default"
            continue
        try:
            values[option.name] = option.parse(raw)
        except ValueError as exc:
            raise ConfigError(
                f"{_describe(option, origin, raw)} is not usable: {exc}. "
                f"Fix: {_fix(option, origin)}."
            ) from exc
        sources[option.name] = origin

    if sources["traces_sample_rate"] == "default":
        rate = _otel_sampler(env)
        if rate is not None:
            values["traces_sample_rate"], sources["traces_sample_rate"] = (
                rate,
                "env:OTEL_TRACES_SAMPLER",
            )

    resource_attrs = _resource_attributes(env.get("OTEL_RESOURCE_ATTRIBUTES", ""))
    if sources["service_name"] == "default" and "service.name" in resource_attrs:
        values["service_name"] = resource_attrs["service.name"]
        sources["service_name"] = "env:OTEL_RESOURCE_ATTRIBUTES"
    if sources["environment"] == "default":
        for key in ("deployment.environment.name", "deployment.environment"):
            if key in resource_attrs:
                values["environment"] = resource_attrs[key]
                sources["environment"] = "env:OTEL_RESOURCE_ATTRIBUTES"
                break

    if values["release"] is not None and values["release"].lower() == "auto":
        detected = detect_release(env)
        values["release"] = detected.release
        sources["release"] = f"auto:{detected.source}"

    if values["export"] in ("otlp", "both") and not (values["otlp_endpoint"] or values["dsn"]):
        raise ConfigError(
            f"{_describe(_BY_NAME['export'], sources['export'], values['export'])} needs somewhere "
            "to send spans. Fix: set OTEL_EXPORTER_OTLP_ENDPOINT (e.g. http://127.0.0.1:4318) "
            "or SENTRY_DSN (Sentry's OTLP endpoint is derived from it)."
        )

    code = tuple(sorted((k, options[k]) for k in CODE_ONLY if options.get(k) is not None))
    for name, value in code:
        if name in _CALLBACKS and not callable(value):
            raise ConfigError(f"{name}={value!r} must be a callable. Fix: pass a function.")
    return Settings(**values, code=code, sources=sources)


def _resource_attributes(raw: str) -> dict[str, str]:
    """Parse ``OTEL_RESOURCE_ATTRIBUTES`` (``k=v,k2=v2``, percent-encoded) leniently."""
    out: dict[str, str] = {}
    for pair in raw.split(","):
        key, sep, value = pair.partition("=")
        if sep and key.strip():
            out[unquote(key.strip())] = unquote(value.strip())
    return out
