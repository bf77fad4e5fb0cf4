"""A transaction's LLM totals as Sentry measurements, so Discover can filter and sum them.

``instrument/llm_totals.py`` puts the totals on the root span (the transaction's trace context
data); Sentry searches that data in its Trace Explorer, but Discover's numeric filters and
aggregates (``measurements.llm_cost_estimate_usd:>0.05``, ``sum(...)`` by ``user.id``) read
measurements. Tags would not do: they are strings. Five measurements, not eight: Sentry keeps
ten custom measurements per transaction, and the app may want the others. Cached and reasoning
tokens, and the count of unpriced calls, stay in the trace data.

    >>> llm_measurements({"otel_sentry.llm.total_tokens": 42})
    {'llm_total_tokens': {'value': 42, 'unit': 'none'}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otel_sentry._internal.instrument.llm_totals import (
    CALLS,
    COST_ESTIMATE_USD,
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    TOTAL_TOKENS,
)

__all__ = ["MEASUREMENTS", "llm_measurements"]

# Root span attribute -> measurement name. Sentry has no currency unit: the name says USD.
MEASUREMENTS = (
    (CALLS, "llm_calls"),
    (INPUT_TOKENS, "llm_input_tokens"),
    (OUTPUT_TOKENS, "llm_output_tokens"),
    (TOTAL_TOKENS, "llm_total_tokens"),
    (COST_ESTIMATE_USD, "llm_cost_estimate_usd"),
)


def llm_measurements(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The measurements of a root span's LLM totals (none when it made no model call)."""
    if CALLS not in data:
        return {}
    return {
        name: {"value": data[attribute], "unit": "none"}
        for attribute, name in MEASUREMENTS
        if isinstance(data.get(attribute), (int, float))
    }
