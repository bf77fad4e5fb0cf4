"""How an option is declared, and what ``init()`` accepts.

Options are declared once, as the fields of :class:`otel_sentry._internal.settings.Settings`:
:func:`option` for those a variable can set (their variables, parser, default, help and README
cells), :func:`code_option` for the Python objects only code passes (hooks, integrations, a
transport). :class:`InitOptions` is the same set of names for type checkers (``init()``'s
``**options``), written out because a ``TypedDict`` cannot be derived from a dataclass; a test
keeps the two equal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from otel_sentry._internal.sdk_options import SentrySdkOptions

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = [
    "CodeOption",
    "EventHook",
    "InitOptions",
    "Option",
    "ScrubCallback",
    "TracesSampler",
    "code_option",
    "option",
    "options_table",
]

T = TypeVar("T")

# A hook gets (event or breadcrumb or log, hint) and returns it, changed or not, or None to drop.
EventHook = Callable[[dict[str, Any], dict[str, Any]], "dict[str, Any] | None"]
# sentry_sdk's traces_sampler: the sampling context -> a rate, or a bool.
TracesSampler = Callable[[dict[str, Any]], "float | bool | None"]
# The scrubber's callback: (key or None, value after the built-in rules) -> the value to send.
ScrubCallback = Callable[["str | None", Any], Any]


@dataclass(frozen=True, slots=True)
class Option:
    """One option a variable can set. ``name`` is its keyword (the field of :class:`Settings`)."""

    name: str
    env: tuple[str, ...]
    parse: Callable[[Any], Any]
    default: Any
    help: str
    expect: str  # what a valid value looks like, for the error message's fix
    doc_env: str  # the README's "variables" cell, when more than the variables' names
    doc_default: str  # the README's "default" cell
    secret: bool = False


@dataclass(frozen=True, slots=True)
class CodeOption:
    """An option only code passes (a hook, a list of objects); no variable sets it."""

    name: str
    help: str
    is_callable: bool


def option(
    default: Any,
    *,
    env: Sequence[str],
    parse: Callable[[Any], T],
    help: str,
    expect: str,
    doc_default: str,
    doc_env: str = "",
    secret: bool = False,
) -> T:
    """A field that a variable can set; its type is what ``parse`` returns (``default`` is used
    as it is, unparsed)."""
    spec = Option("", tuple(env), parse, default, help, expect, doc_env, doc_default, secret)
    declared: T = field(default=default, metadata={"option": spec})
    return declared


def code_option(help: str, *, is_callable: bool = True) -> Any:
    """A field only code sets: a hook (``is_callable``, checked at init) or an object."""
    return field(default=None, metadata={"code_option": CodeOption("", help, is_callable)})


class InitOptions(SentrySdkOptions, total=False):
    """What ``init()`` accepts, for type checkers: the same names as :class:`Settings`, each with
    the values its parser takes (text as in a variable, or the typed value), and sentry_sdk's
    other keywords (:class:`~otel_sentry._internal.sdk_options.SentrySdkOptions`)."""

    dsn: str | None
    enabled: bool | str
    environment: str
    release: str | None
    traces_sample_rate: float | str
    traces_sampler: TracesSampler | None
    sampling_rules: str | Mapping[str, float] | Sequence[tuple[str, float]]
    profiles_sample_rate: float | str | None
    send_default_pii: bool | str
    debug: bool | str
    service_name: str | None
    export: str
    otlp_endpoint: str | None
    instrument: bool | str | Sequence[str]
    spotlight: bool | str | None
    enable_logs: bool | str
    trace_propagation_targets: str | Sequence[str] | None
    org_id: str | int | None
    strict_trace_continuation: bool | str
    cache_prefixes: str | Sequence[str]
    db_slow_query_ms: float | str | None
    monitor_beat_tasks: bool | str
    exclude_beat_tasks: str | Sequence[str]
    capture_llm_content: bool | str
    llm_content_mode: str
    fastapi_telemetry: str
    fastapi_operation_spans: bool | str
    llm_http_spans: bool | str
    spool_dir: str | None
    spool_max_mb: float | str
    spool_at_exit: bool | str
    load_shedding: bool | str
    keep_error_traces: bool | str
    keep_error_traces_max_mb: float | str
    gc_freeze: bool | str
    scrub_keys: str | Sequence[str]
    scrub_patterns: str | Sequence[str]
    scrub_allow_keys: str | Sequence[str]
    noise_filters: bool | str | Sequence[str]
    before_send: EventHook | None
    before_send_transaction: EventHook | None
    before_breadcrumb: EventHook | None
    before_send_log: EventHook | None
    scrub_callback: ScrubCallback | None
    integrations: Sequence[Any] | None
    transport: Any
    span_exporters: Sequence[SpanExporter] | None
    resource_attributes: Mapping[str, Any] | None


def options_table(options: Sequence[Option], code: Sequence[CodeOption]) -> str:
    """README's configuration table: one row per option, then the code-only ones."""
    lines = ["| option | variables (most specific first) | default |", "|---|---|---|"]
    for o in options:
        variables = o.doc_env or ", ".join(f"`{name}`" for name in o.env)
        lines.append(f"| `{o.name}` | {variables} | {o.doc_default} |")
    lines += [f"| `{c.name}` | code only: {c.help} | none |" for c in code]
    return "\n".join(lines) + "\n"
