"""The LLM spend of a request or task, summed on its root span: calls, tokens, a cost estimate.

Every model call is already a GenAI span with its own usage; what nobody shows is what one
request or job spent in all. ``LlmTotals`` adds each finished model call's tokens to the local
root span (the request's server span, the task's consumer span) while that root still runs, so
the root ends carrying::

    otel_sentry.llm.calls                     model calls that reported usage
    otel_sentry.llm.input_tokens              their input tokens (cached ones included)
    otel_sentry.llm.input_tokens.cached       of which cache reads
    otel_sentry.llm.output_tokens             their output tokens (reasoning ones included)
    otel_sentry.llm.output_tokens.reasoning   of which reasoning
    otel_sentry.llm.total_tokens              input + output
    otel_sentry.llm.cost_estimate_usd         priced calls only, from genai-prices' table
    otel_sentry.llm.calls.unpriced            calls with no price (unknown model), when any

Our own namespace, not ``gen_ai.usage.*``: Sentry's AI views and cost calculation sum
``gen_ai.usage.*`` over every span of a trace; on the root as well, each token would count twice.
Only model calls count (agent and tool spans may carry a run's usage too), and of nested model
calls only the innermost (a ``chat`` span of a framework around the SDK's ``chat`` span).

Plain span attributes, so every backend gets them (OTLP as much as Sentry). The request thread
only adds integers and sets a few attributes; a price is a dot product with per-token prices
read once per model from genai-prices (see ``PriceTable``), never a table walk per call.

    provider.add_span_processor(LlmTotals())   # otel_sentry.init() does this
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_sentry._internal.roots import LocalRootTracker, local_root

__all__ = [
    "CACHED_INPUT_TOKENS",
    "CALLS",
    "COST_ESTIMATE_USD",
    "INPUT_TOKENS",
    "OUTPUT_TOKENS",
    "REASONING_OUTPUT_TOKENS",
    "TOTAL_TOKENS",
    "UNPRICED_CALLS",
    "LlmTotals",
    "PriceTable",
]

CALLS = "otel_sentry.llm.calls"
INPUT_TOKENS = "otel_sentry.llm.input_tokens"
CACHED_INPUT_TOKENS = "otel_sentry.llm.input_tokens.cached"
OUTPUT_TOKENS = "otel_sentry.llm.output_tokens"
REASONING_OUTPUT_TOKENS = "otel_sentry.llm.output_tokens.reasoning"
TOTAL_TOKENS = "otel_sentry.llm.total_tokens"
COST_ESTIMATE_USD = "otel_sentry.llm.cost_estimate_usd"
UNPRICED_CALLS = "otel_sentry.llm.calls.unpriced"

# Spans about model calls but not model calls: their usage, when set, is their calls' again.
_NOT_MODEL_CALLS = frozenset({"invoke_agent", "create_agent", "execute_tool"})
# The OpenTelemetry names, and the Anthropic SDK's for cache writes.
_CACHE_WRITE_KEYS = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_write.input_tokens",
)
# Provider names of the GenAI conventions that genai-prices spells otherwise.
_PROVIDER_IDS = {"x_ai": "x-ai", "aws.bedrock": "aws", "azure.ai.openai": "azure"}


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _Usage:
    """One model call's token counts, as genai-prices names them (None: not reported)."""

    __slots__ = ("cache_read", "cache_write", "input", "output", "reasoning")

    def __init__(self, attrs: Mapping[str, Any]) -> None:
        self.input = _count(attrs.get("gen_ai.usage.input_tokens"))
        self.output = _count(attrs.get("gen_ai.usage.output_tokens"))
        self.cache_read = _count(attrs.get("gen_ai.usage.cache_read.input_tokens"))
        self.cache_write = next(
            (n for key in _CACHE_WRITE_KEYS if (n := _count(attrs.get(key))) is not None), None
        )
        self.reasoning = _count(attrs.get("gen_ai.usage.reasoning.output_tokens"))

    def as_genai_prices(self) -> dict[str, int]:
        values = {
            "input_tokens": self.input,
            "output_tokens": self.output,
            "cache_read_tokens": self.cache_read,
            "cache_write_tokens": self.cache_write,
            "output_reasoning_tokens": self.reasoning,
        }
        return {key: value for key, value in values.items() if value is not None}

    def consistent(self) -> bool:
        """Cached and reasoning tokens are parts of input and output; genai-prices rejects more."""
        parts_in = (self.cache_read or 0) + (self.cache_write or 0)
        return parts_in <= (self.input or 0) and (self.reasoning or 0) <= (self.output or 0)


_PROBE = 1_000_000  # tokens per coefficient probe: prices are per million, so exact in Decimal
# A usage no coefficient was read from, to check that the prices are linear in it.
_CHECK = {
    "input_tokens": 123_457,
    "output_tokens": 54_321,
    "cache_read_tokens": 4_567,
    "cache_write_tokens": 2_345,
    "output_reasoning_tokens": 1_234,
}
_ZERO = dict.fromkeys(_CHECK, 0)


# Libraries whose calls get priced; without any of them genai-prices is not imported ahead.
_LLM_CLIENTS = ("openai", "anthropic", "google.genai", "mistralai", "cohere", "groq", "litellm")
_FORK_WAIT_S = 10.0


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a dotted name whose parent package is missing
        return False


class PriceTable:
    """USD estimates of model calls from genai-prices (its bundled table, or the snapshot its
    ``UpdatePrices`` keeps fresh when the app runs one).

    ``genai_prices.calc_price`` walks its unit registry on every call (~0.3 ms of CPU), too much
    for a request thread. A model's price is linear in the token counts (a fixed fee, plus a price
    per token of each kind), so the first call of each model reads the per-token prices by asking
    genai-prices itself about six usages, checks them against a seventh, and later calls cost a
    dot product. Prices with tiers (a higher rate past N input tokens) or anything else the check
    catches are computed by genai-prices for every call. Without genai-prices nothing is priced.
    """

    def __init__(self) -> None:
        self.available = importlib.util.find_spec("genai_prices") is not None
        self._snapshot: object = None
        self._models: dict[tuple[str, str | None, str], Any] = {}
        self._linear: dict[int, tuple[Any, tuple[float, ...] | None]] = {}
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Import genai-prices (~0.6 s) in a thread of its own, not on the first model call.

        Only where an LLM client library is installed. A fork (gunicorn's workers, Celery's
        prefork pool) waits for the import to end: a child forked in the middle of it would
        inherit module locks that no thread of its own ever releases.
        """
        if not self.available or "genai_prices" in sys.modules:
            return
        if not any(_installed(lib) for lib in _LLM_CLIENTS):
            return
        thread = threading.Thread(target=self._import, name="otel-sentry-prices", daemon=True)
        thread.start()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(before=lambda: thread.join(_FORK_WAIT_S))

    @staticmethod
    def _import() -> None:
        import genai_prices.data_snapshot

        genai_prices.data_snapshot.get_snapshot()

    def cost(
        self,
        provider: str,
        models: tuple[str, ...],
        usage: _Usage,
        start_ns: int,
        server_address: str | None = None,
    ) -> float | None:
        """The call's price in USD; None when genai-prices knows no price for it."""
        if not self.available or not usage.consistent():
            return None
        from genai_prices.data_snapshot import get_snapshot

        snapshot = get_snapshot()
        if snapshot is not self._snapshot:  # UpdatePrices brought a new table
            with self._lock:
                self._snapshot = snapshot
                self._models = {}
                self._linear = {}
        for model_ref in models:
            found = self._model(snapshot, provider, server_address, model_ref)
            if found is None:
                continue
            provider_info, model = found
            when = datetime.fromtimestamp(start_ns / 1e9, tz=timezone.utc)
            model_price = model.get_prices(when)
            coefficients = self._coefficients(model_price)
            if coefficients is None:
                from genai_prices import Usage

                counts = Usage(**usage.as_genai_prices())
                try:
                    price = model.calc_price(counts, provider_info, genai_request_timestamp=when)
                except ValueError:  # a usage this price cannot take
                    return None
                return float(price.total_price)
            fee, per_in, per_out, per_read, per_write, per_reasoning = coefficients
            return (
                fee
                + per_in * (usage.input or 0)
                + per_out * (usage.output or 0)
                + per_read * (usage.cache_read or 0)
                + per_write * (usage.cache_write or 0)
                + per_reasoning * (usage.reasoning or 0)
            )
        return None

    def _model(
        self, snapshot: Any, provider: str, server_address: str | None, model_ref: str
    ) -> Any:
        key = (provider, server_address, model_ref)
        try:
            return self._models[key]
        except KeyError:
            pass
        found = None
        # The host first: an OpenAI client pointed at Groq or OpenRouter says "openai".
        lookups: list[tuple[str | None, str | None]] = []
        if server_address:
            lookups.append((None, f"https://{server_address}"))
        lookups.append((_PROVIDER_IDS.get(provider, provider), None))
        for provider_id, api_url in lookups:
            try:
                found = snapshot.find_provider_model(model_ref, None, provider_id, api_url)
                break
            except LookupError:
                continue
        self._models[key] = found
        return found

    def _coefficients(self, model_price: Any) -> tuple[float, ...] | None:
        cached = self._linear.get(id(model_price))
        if cached is not None and cached[0] is model_price:
            return cached[1]
        coefficients = _linear_prices(model_price)
        # The price object is kept with its id, so the id cannot be reused while cached.
        self._linear[id(model_price)] = (model_price, coefficients)
        return coefficients


def _linear_prices(model_price: Any) -> tuple[float, ...] | None:
    """(fee, per input, per output, per cache read, per cache write, per reasoning token) in USD,
    read from genai-prices; None unless its own price of a further usage agrees."""
    from decimal import Decimal

    from genai_prices import Usage
    from genai_prices.types import TieredPrices

    if any(isinstance(value, TieredPrices) for value in vars(model_price).values()):
        return None

    def price(**counts: int) -> Decimal:
        total: Decimal = model_price.calc_price(Usage(**{**_ZERO, **counts}))["total_price"]
        return total

    try:
        fee = price()
        per_in = (price(input_tokens=_PROBE) - fee) / _PROBE
        per_out = (price(output_tokens=_PROBE) - fee) / _PROBE
        # A cache read is an input token too: its price replaces, not adds to, the input price.
        per_read = (price(input_tokens=_PROBE, cache_read_tokens=_PROBE) - fee) / _PROBE - per_in
        per_write = (price(input_tokens=_PROBE, cache_write_tokens=_PROBE) - fee) / _PROBE - per_in
        per_reasoning = (
            price(output_tokens=_PROBE, output_reasoning_tokens=_PROBE) - fee
        ) / _PROBE - per_out
        expected = price(**_CHECK)
    except (ValueError, LookupError):
        return None
    coefficients = (per_in, per_out, per_read, per_write, per_reasoning)
    counts = (
        _CHECK["input_tokens"],
        _CHECK["output_tokens"],
        _CHECK["cache_read_tokens"],
        _CHECK["cache_write_tokens"],
        _CHECK["output_reasoning_tokens"],
    )
    linear = fee + sum((c * n for c, n in zip(coefficients, counts, strict=True)), Decimal(0))
    if abs(linear - expected) > Decimal("1e-12") * max(Decimal(1), expected):
        return None
    return (float(fee), *(float(c) for c in coefficients))


def _attributes(span: ReadableSpan) -> Mapping[str, Any]:
    # The SDK's plain dict inside its read-only proxy: each lookup through the proxy runs
    # Python code, and a model call's end looks up a dozen keys.
    inner = getattr(getattr(span, "_attributes", None), "_dict", None)
    return inner if isinstance(inner, dict) else (span.attributes or {})


class _Totals:
    """What one root's model calls added up to so far."""

    __slots__ = (
        "cached",
        "calls",
        "cost",
        "covered",
        "input",
        "output",
        "priced",
        "reasoning",
        "sent",
        "unpriced",
    )

    def __init__(self) -> None:
        self.calls = self.input = self.output = self.cached = self.reasoning = 0
        self.priced = self.unpriced = 0
        self.cost = 0.0
        # Spans with a counted model call beneath them: a model call among them is not a leaf.
        self.covered: set[int] = set()
        self.sent: dict[str, int | float] = {}

    def changed(self) -> dict[str, int | float]:
        """The attributes whose values differ from those last set on the root (each costs)."""
        now = self.attributes()
        sent = self.sent
        out = {key: value for key, value in now.items() if sent.get(key) != value}
        sent.update(out)
        return out

    def attributes(self) -> dict[str, int | float]:
        out: dict[str, int | float] = {
            CALLS: self.calls,
            INPUT_TOKENS: self.input,
            OUTPUT_TOKENS: self.output,
            CACHED_INPUT_TOKENS: self.cached,
            REASONING_OUTPUT_TOKENS: self.reasoning,
            TOTAL_TOKENS: self.input + self.output,
        }
        if self.priced:
            out[COST_ESTIMATE_USD] = self.cost
        if self.unpriced:
            out[UNPRICED_CALLS] = self.unpriced
        return out


class LlmTotals(SpanProcessor):
    """Sums each local root's model calls onto the root span, as the calls end.

    ``on_end`` runs on the thread that ended the span and does no I/O; pricing a model seen for
    the first time asks genai-prices (a few ms, once per model and process). A call that ends
    after its root is not counted: the root's attributes are frozen by then.

    ``track_roots=False`` when a ``LocalRootTracker`` is already installed (``init()``).
    """

    def __init__(self, prices: PriceTable | None = None, *, track_roots: bool = True) -> None:
        self.prices = prices if prices is not None else PriceTable()
        self.prices.warm()
        self._tracker = LocalRootTracker() if track_roots else None
        self._totals: dict[int, _Totals] = {}  # by root span id, while the root runs
        self._lock = threading.Lock()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self._tracker is not None:
            self._tracker.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        parent = span.parent
        if parent is None or parent.is_remote:
            if self._totals:
                with self._lock:
                    self._totals.pop(span.context.span_id, None)
            return
        attrs = _attributes(span)
        operation = attrs.get("gen_ai.operation.name")
        if operation is None or operation in _NOT_MODEL_CALLS:
            if self._totals:
                self._pass_on_cover(span)
            return
        usage = _Usage(attrs)
        if usage.input is None and usage.output is None:
            self._pass_on_cover(span)
            return
        root = local_root()
        if (
            root is None
            or not root.is_recording()
            or root.context.trace_id != span.context.trace_id
        ):
            return
        totals = self._totals.get(root.context.span_id)
        if totals is not None and span.context.span_id in totals.covered:
            with self._lock:  # not a leaf: the calls beneath it were counted
                totals.covered.add(parent.span_id)
            return
        cost = self._price(attrs, usage, span)
        with self._lock:
            totals = self._totals.get(root.context.span_id)
            if totals is None:
                totals = self._totals[root.context.span_id] = _Totals()
            totals.covered.add(parent.span_id)
            totals.calls += 1
            totals.input += usage.input or 0
            totals.output += usage.output or 0
            totals.cached += usage.cache_read or 0
            totals.reasoning += usage.reasoning or 0
            if cost is None:
                totals.unpriced += 1
            else:
                totals.priced += 1
                totals.cost += cost
            if root.is_recording():
                root.set_attributes(totals.changed())

    def _pass_on_cover(self, span: ReadableSpan) -> None:
        root = local_root()
        if root is None or span.parent is None:
            return
        totals = self._totals.get(root.context.span_id)
        if totals is not None and span.context.span_id in totals.covered:
            with self._lock:
                totals.covered.add(span.parent.span_id)

    def _price(self, attrs: Mapping[str, Any], usage: _Usage, span: ReadableSpan) -> float | None:
        provider = attrs.get("gen_ai.provider.name") or attrs.get("gen_ai.system")
        if not isinstance(provider, str):
            return None
        # The model that answered, else the one asked for (an alias such as "gpt-4o").
        models = tuple(
            model
            for key in ("gen_ai.response.model", "gen_ai.request.model")
            if isinstance(model := attrs.get(key), str) and model
        )
        server = attrs.get("server.address")
        return self.prices.cost(
            provider,
            models,
            usage,
            span.start_time or 0,
            server if isinstance(server, str) else None,
        )

    def shutdown(self) -> None:
        self._totals.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
