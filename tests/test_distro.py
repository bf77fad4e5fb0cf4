"""The piecemeal entry points, loaded the way the OpenTelemetry SDK's configurator loads them."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk._configuration import _import_exporters, _import_sampler
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from otel_sentry._internal.config import ConfigError
from otel_sentry._internal.distro import sentry_sampler
from otel_sentry._internal.sentry.sampler import SentrySampler
from otel_sentry.inbox import Inbox


def test_sampler_entry_point_reads_the_rate_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SENTRY_TRACES_SAMPLE_RATE", "0.25")
    monkeypatch.delenv("OTEL_TRACES_SAMPLER_ARG", raising=False)
    sampler = _import_sampler("sentry")
    assert isinstance(sampler, SentrySampler) and sampler.rate == 0.25
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.5")
    sampler = _import_sampler("sentry")
    assert isinstance(sampler, SentrySampler) and sampler.rate == 0.5
    with pytest.raises(ConfigError, match="OTEL_TRACES_SAMPLER_ARG"):
        sentry_sampler("1.5")


def test_exporter_entry_point_sends_transactions_from_someone_elses_provider(
    inbox: Inbox, fresh: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTRY_DSN", inbox.dsn())
    monkeypatch.setenv("SENTRY_RELEASE", "piecemeal@1")
    exporters, _, _ = _import_exporters(["sentry"], [], [])
    provider = TracerProvider(sampler=_import_sampler("sentry"))  # theirs, not the global one
    provider.add_span_processor(BatchSpanProcessor(exporters["sentry"]()))
    tracer = provider.get_tracer("app")
    attrs = {"http.request.method": "GET", "http.route": "/items/{id}", "url.path": "/items/1"}
    root = tracer.start_span("GET /items/{id}", kind=SpanKind.SERVER, attributes=attrs)
    with trace.use_span(root, end_on_exit=True):
        tracer.start_span("SELECT", attributes={"db.system.name": "sqlite"}).end()
    provider.shutdown()
    inbox.wait_for_items("transaction", 1, timeout=10)
    [txn] = inbox.transactions()
    assert txn["transaction"] == "GET /items/{id}"
    assert txn["contexts"]["trace"]["op"] == "http.server"
    assert [s["op"] for s in txn["spans"]] == ["db"]
    assert txn["release"] == "piecemeal@1"
    assert inbox.problems == []


def test_propagator_entry_point_is_ours_and_unambiguous(monkeypatch: pytest.MonkeyPatch) -> None:
    # Loaded the way opentelemetry.propagate builds the global propagator from OTEL_PROPAGATORS.
    from importlib.metadata import entry_points

    from otel_sentry._internal.sentry.propagator import SentryPropagator

    found = list(entry_points(group="opentelemetry_propagator", name="otel_sentry"))
    assert len(found) == 1
    propagator = found[0].load()()
    assert isinstance(propagator, SentryPropagator)
    carrier: dict[str, str] = {}
    assert "sentry-trace" in propagator.fields and "traceparent" in propagator.fields
    propagator.inject(carrier)  # no active span: nothing to say, and no error
    assert carrier == {}
