"""init(): idempotent, conflicts are errors, disabled means silent, errors and spans flow."""

from __future__ import annotations

import logging

import pytest
import sentry_sdk
from opentelemetry import trace

import otel_sentry
from otel_sentry.inbox import Inbox

pytestmark = pytest.mark.usefixtures("fresh")


def _one_traced_error(name: str = "work") -> None:
    with trace.get_tracer("tests").start_as_current_span(name):
        try:
            raise ValueError("boom")
        except ValueError as exc:
            sentry_sdk.capture_exception(exc)


def test_errors_and_transactions_reach_the_inbox(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), instrument=False, environment="test", release="r1")
    _one_traced_error()
    assert otel_sentry.flush(5)
    [error] = [i.json for i in inbox.wait_for_items("event")]
    [txn] = [i.json for i in inbox.wait_for_items("transaction")]
    assert error["exception"]["values"][-1]["type"] == "ValueError"
    assert txn["transaction"] == "work"
    assert error["contexts"]["trace"]["trace_id"] == txn["contexts"]["trace"]["trace_id"]
    assert error["contexts"]["trace"]["span_id"] == txn["contexts"]["trace"]["span_id"]
    assert txn["release"] == "r1" and txn["environment"] == "test"
    assert inbox.problems == []


def test_second_identical_init_is_a_noop_and_never_exports_twice(inbox: Inbox) -> None:
    first = otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    second = otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    bare = otel_sentry.init()  # a library's bare init() joins the existing setup
    assert first is second is bare
    with trace.get_tracer("tests").start_as_current_span("once"):
        pass
    otel_sentry.flush(5)
    inbox.wait_for_items("transaction")
    otel_sentry.flush(5)
    assert [t["transaction"] for t in inbox.transactions()] == ["once"]


def test_conflicting_init_is_a_clear_error(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), instrument=False, traces_sample_rate=1.0)
    with pytest.raises(otel_sentry.ConfigError) as info:
        otel_sentry.init(dsn=inbox.dsn(), traces_sample_rate=0.5)
    assert "traces_sample_rate" in str(info.value)
    assert "shutdown()" in str(info.value)


def test_shutdown_then_init_with_other_settings_works(inbox: Inbox) -> None:
    otel_sentry.init(dsn=inbox.dsn(), instrument=False, environment="one")
    otel_sentry.shutdown()
    otel_sentry.init(dsn=inbox.dsn(), instrument=False, environment="two")
    with trace.get_tracer("tests").start_as_current_span("after-reinit"):
        pass
    otel_sentry.flush(5)
    [item] = inbox.wait_for_items("transaction")
    assert item.json["environment"] == "two"


@pytest.mark.parametrize("how", ["kwarg", "env"])
def test_disabled_sends_nothing(inbox: Inbox, how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if how == "env":
        monkeypatch.setenv("SENTRY_ENABLED", "false")
        otel_sentry.init(dsn=inbox.dsn(), instrument=False)
    else:
        otel_sentry.init(dsn=inbox.dsn(), instrument=False, enabled=False)
    _one_traced_error()
    otel_sentry.flush(2)
    assert inbox.counts.requests == 0


def test_no_dsn_instruments_but_sends_nothing_and_says_so(
    inbox: Inbox, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SENTRY_DSN", "SENTRY_DSN_BACKEND", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    with caplog.at_level(logging.INFO, logger="otel_sentry"):
        otel_sentry.init(instrument=False)
    lines = [r.getMessage() for r in caplog.records if "nothing is sent" in r.getMessage()]
    assert len(lines) == 1
    with trace.get_tracer("tests").start_as_current_span("local") as span:
        assert span.is_recording()  # propagation and logs still get real ids
    otel_sentry.flush(1)
    assert inbox.counts.requests == 0


def test_bad_setting_leaves_the_process_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTRY_TRACES_SAMPLE_RATE", "1.5")
    with pytest.raises(otel_sentry.ConfigError, match="SENTRY_TRACES_SAMPLE_RATE"):
        otel_sentry.init()
    assert otel_sentry.current_settings() is None
    assert not sentry_sdk.get_client().is_active()


def test_profiles_rate_is_taken_without_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="otel_sentry"):
        otel_sentry.init(instrument=False, profiles_sample_rate=0.5, enabled=False)
    assert not [r for r in caplog.records if "profil" in r.getMessage()]  # tests/integration


def test_otel_sdk_disabled_sends_errors_and_no_transaction(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    otel_sentry.init(dsn=inbox.dsn())
    _one_traced_error("not traced")
    assert otel_sentry.flush(5)
    [error] = inbox.wait_for_items("event")
    assert error.json["exception"]["values"][-1]["type"] == "ValueError"
    assert inbox.transactions() == []
