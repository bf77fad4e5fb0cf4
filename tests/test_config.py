"""Option precedence and validation: kwargs, then the most specific variable, then defaults."""

from __future__ import annotations

from typing import Any

import pytest

from otel_sentry._internal.config import ConfigError, parse_dsn, resolve

DSN = "https://abc123@o42.ingest.sentry.io/7"
DSN_B = "https://def456@o42.ingest.sentry.io/8"

# (name, kwargs, environ, attribute, expected value, expected source)
PRECEDENCE: list[tuple[str, dict[str, Any], dict[str, str], str, Any, str]] = [
    ("dsn default", {}, {}, "dsn", None, "default"),
    ("dsn env", {}, {"SENTRY_DSN": DSN}, "dsn", DSN, "env:SENTRY_DSN"),
    (
        "dsn backend beats plain",
        {},
        {"SENTRY_DSN": DSN, "SENTRY_DSN_BACKEND": DSN_B},
        "dsn",
        DSN_B,
        "env:SENTRY_DSN_BACKEND",
    ),
    ("dsn kwarg beats env", {"dsn": DSN}, {"SENTRY_DSN_BACKEND": DSN_B}, "dsn", DSN, "kwarg"),
    (
        "blank env ignored",
        {},
        {"SENTRY_DSN_BACKEND": "  ", "SENTRY_DSN": DSN},
        "dsn",
        DSN,
        "env:SENTRY_DSN",
    ),
    ("env default", {}, {}, "environment", "production", "default"),
    (
        "SENTRY_ENVIRONMENT",
        {},
        {"SENTRY_ENVIRONMENT": "staging", "SENTRY_ENV": "x", "ENVIRONMENT": "y"},
        "environment",
        "staging",
        "env:SENTRY_ENVIRONMENT",
    ),
    (
        "SENTRY_ENV",
        {},
        {"SENTRY_ENV": "staging", "ENVIRONMENT": "y"},
        "environment",
        "staging",
        "env:SENTRY_ENV",
    ),
    ("ENVIRONMENT", {}, {"ENVIRONMENT": "dev"}, "environment", "dev", "env:ENVIRONMENT"),
    (
        "resource attrs env",
        {},
        {"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=qa"},
        "environment",
        "qa",
        "env:OTEL_RESOURCE_ATTRIBUTES",
    ),
    (
        "SENTRY_ENV beats resource attrs",
        {},
        {"SENTRY_ENV": "s", "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=qa"},
        "environment",
        "s",
        "env:SENTRY_ENV",
    ),
    ("env kwarg", {"environment": "k"}, {"SENTRY_ENVIRONMENT": "e"}, "environment", "k", "kwarg"),
    ("rate default", {}, {}, "traces_sample_rate", 1.0, "default"),
    (
        "rate env",
        {},
        {"SENTRY_TRACES_SAMPLE_RATE": "0.25"},
        "traces_sample_rate",
        0.25,
        "env:SENTRY_TRACES_SAMPLE_RATE",
    ),
    (
        "rate backend",
        {},
        {"SENTRY_TRACES_SAMPLE_RATE": "0.25", "SENTRY_TRACES_SAMPLE_RATE_BACKEND": "0.5"},
        "traces_sample_rate",
        0.5,
        "env:SENTRY_TRACES_SAMPLE_RATE_BACKEND",
    ),
    (
        "rate kwarg zero",
        {"traces_sample_rate": 0},
        {"SENTRY_TRACES_SAMPLE_RATE": "1"},
        "traces_sample_rate",
        0.0,
        "kwarg",
    ),
    (
        "otel sampler ratio",
        {},
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
        "traces_sample_rate",
        0.1,
        "env:OTEL_TRACES_SAMPLER",
    ),
    (
        "otel sampler off",
        {},
        {"OTEL_TRACES_SAMPLER": "always_off"},
        "traces_sample_rate",
        0.0,
        "env:OTEL_TRACES_SAMPLER",
    ),
    (
        "sentry rate beats otel sampler",
        {},
        {"OTEL_TRACES_SAMPLER": "always_off", "SENTRY_TRACES_SAMPLE_RATE": "0.3"},
        "traces_sample_rate",
        0.3,
        "env:SENTRY_TRACES_SAMPLE_RATE",
    ),
    ("pii default off", {}, {}, "send_default_pii", False, "default"),
    (
        "pii env on",
        {},
        {"SENTRY_SEND_DEFAULT_PII": "True"},
        "send_default_pii",
        True,
        "env:SENTRY_SEND_DEFAULT_PII",
    ),
    ("enabled env off", {}, {"SENTRY_ENABLED": "false"}, "enabled", False, "env:SENTRY_ENABLED"),
    (
        "enabled kwarg beats env",
        {"enabled": True},
        {"SENTRY_ENABLED": "0"},
        "enabled",
        True,
        "kwarg",
    ),
    (
        "service name",
        {},
        {"OTEL_SERVICE_NAME": "api"},
        "service_name",
        "api",
        "env:OTEL_SERVICE_NAME",
    ),
    (
        "service name from resource",
        {},
        {"OTEL_RESOURCE_ATTRIBUTES": "service.name=w%20x,a=b"},
        "service_name",
        "w x",
        "env:OTEL_RESOURCE_ATTRIBUTES",
    ),
    (
        "release explicit",
        {},
        {"SENTRY_RELEASE": "api@1.2.3"},
        "release",
        "api@1.2.3",
        "env:SENTRY_RELEASE",
    ),
    (
        "release auto vercel",
        {},
        {"SENTRY_RELEASE": "auto", "VERCEL_GIT_COMMIT_SHA": "abc"},
        "release",
        "abc",
        "auto:env:VERCEL_GIT_COMMIT_SHA",
    ),
    (
        "otlp traces endpoint beats generic",
        {},
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:4318/v1/traces",
        },
        "otlp_endpoint",
        "http://b:4318/v1/traces",
        "env:OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ),
    (
        "rules env",
        {},
        {"OTEL_SENTRY_SAMPLING_RULES": "/health=0, /api/v1/projects/*=1"},
        "sampling_rules",
        (("/health", 0.0), ("/api/v1/projects/*", 1.0)),
        "env:OTEL_SENTRY_SAMPLING_RULES",
    ),
    (
        "rules kwarg mapping",
        {"sampling_rules": {"/x": 0.5}},
        {},
        "sampling_rules",
        (("/x", 0.5),),
        "kwarg",
    ),
    (
        "instrument names",
        {},
        {"OTEL_SENTRY_INSTRUMENT": "fastapi, httpx"},
        "instrument",
        ("fastapi", "httpx"),
        "env:OTEL_SENTRY_INSTRUMENT",
    ),
    ("instrument off", {"instrument": False}, {}, "instrument", False, "kwarg"),
    (
        "export env",
        {},
        {"OTEL_SENTRY_EXPORT": "BOTH", "SENTRY_DSN": DSN},
        "export",
        "both",
        "env:OTEL_SENTRY_EXPORT",
    ),
]


@pytest.mark.parametrize(
    ("kwargs", "environ", "attr", "expected", "source"),
    [p[1:] for p in PRECEDENCE],
    ids=[p[0] for p in PRECEDENCE],
)
def test_precedence(
    kwargs: dict[str, Any], environ: dict[str, str], attr: str, expected: Any, source: str
) -> None:
    settings = resolve(kwargs, environ)
    assert getattr(settings, attr) == expected
    assert settings.sources[attr] == source


# (name, kwargs, environ, words the message must contain)
INVALID: list[tuple[str, dict[str, Any], dict[str, str], tuple[str, ...]]] = [
    (
        "rate above 1 env",
        {},
        {"SENTRY_TRACES_SAMPLE_RATE": "1.5"},
        ("SENTRY_TRACES_SAMPLE_RATE", "'1.5'", "between 0 and 1"),
    ),
    (
        "rate negative kwarg",
        {"traces_sample_rate": -0.1},
        {},
        ("traces_sample_rate=-0.1", "otel_sentry.init", "between 0 and 1"),
    ),
    ("rate nan", {}, {"SENTRY_TRACES_SAMPLE_RATE": "nan"}, ("SENTRY_TRACES_SAMPLE_RATE",)),
    (
        "rate text",
        {},
        {"SENTRY_TRACES_SAMPLE_RATE_BACKEND": "ten percent"},
        ("SENTRY_TRACES_SAMPLE_RATE_BACKEND", "number"),
    ),
    ("rate bool", {"traces_sample_rate": True}, {}, ("traces_sample_rate", "boolean")),
    ("profiles rate", {}, {"SENTRY_PROFILES_SAMPLE_RATE": "2"}, ("SENTRY_PROFILES_SAMPLE_RATE",)),
    ("dsn no scheme", {}, {"SENTRY_DSN": "not-a-dsn"}, ("SENTRY_DSN", "https://")),
    (
        "dsn no key",
        {},
        {"SENTRY_DSN": "https://o1.ingest.sentry.io/5"},
        ("SENTRY_DSN", "public key"),
    ),
    (
        "dsn no project",
        {},
        {"SENTRY_DSN_BACKEND": "https://k@o1.ingest.sentry.io/"},
        ("SENTRY_DSN_BACKEND", "project id"),
    ),
    ("dsn kwarg", {"dsn": "ftp://k@h/1"}, {}, ("dsn=", "https://")),
    (
        "bool",
        {},
        {"SENTRY_SEND_DEFAULT_PII": "maybe"},
        ("SENTRY_SEND_DEFAULT_PII", "true or false"),
    ),
    ("export mode", {}, {"OTEL_SENTRY_EXPORT": "kafka"}, ("OTEL_SENTRY_EXPORT", "sentry, otlp")),
    (
        "otlp mode without endpoint",
        {"export": "otlp"},
        {},
        ("export='otlp'", "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ),
    (
        "otlp url",
        {},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318"},
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http"),
    ),
    (
        "rules shape",
        {},
        {"OTEL_SENTRY_SAMPLING_RULES": "/health"},
        ("OTEL_SENTRY_SAMPLING_RULES", "<pattern>=<rate>"),
    ),
    (
        "rules rate",
        {},
        {"OTEL_SENTRY_SAMPLING_RULES": "/health=3"},
        ("OTEL_SENTRY_SAMPLING_RULES", "/health"),
    ),
    (
        "otel sampler unknown",
        {},
        {"OTEL_TRACES_SAMPLER": "jaeger_remote"},
        ("OTEL_TRACES_SAMPLER", "jaeger_remote"),
    ),
    (
        "otel sampler arg",
        {},
        {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "x"},
        ("OTEL_TRACES_SAMPLER_ARG",),
    ),
    ("unknown kwarg", {"traces_sample_rat": 0.1}, {}, ("traces_sample_rat", "traces_sample_rate")),
    ("sampler not callable", {"traces_sampler": 0.5}, {}, ("traces_sampler", "callable")),
]


@pytest.mark.parametrize(
    ("kwargs", "environ", "words"), [p[1:] for p in INVALID], ids=[p[0] for p in INVALID]
)
def test_invalid_values_name_the_setting_and_fix(
    kwargs: dict[str, Any], environ: dict[str, str], words: tuple[str, ...]
) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(kwargs, environ)
    message = str(info.value)
    for word in words:
        assert word in message, message
    assert "Fix:" in message


def test_dsn_key_is_never_printed_in_errors() -> None:
    with pytest.raises(ConfigError) as info:
        resolve({}, {"SENTRY_DSN": "ftp://supersecretkey@o1.ingest.sentry.io/1"})
    assert "supersecretkey" not in str(info.value)


def test_dsn_parts() -> None:
    parts = parse_dsn("https://k3y@o123.ingest.us.sentry.io/4567")
    assert parts.public_key == "k3y"
    assert parts.org_id == "123"
    assert parts.project_id == "4567"
    assert parts.envelope_url == "https://o123.ingest.us.sentry.io/api/4567/envelope/"
    assert parts.otlp_traces_url.endswith("/api/4567/integration/otlp/v1/traces")
    local = parse_dsn("http://key@127.0.0.1:8969/sub/path/1")
    assert local.org_id is None
    assert local.envelope_url == "http://127.0.0.1:8969/sub/path/api/1/envelope/"


# (environ, expected concrete destinations)
EXPORT: list[tuple[dict[str, str], tuple[str, ...]]] = [
    ({}, ()),
    ({"SENTRY_DSN": DSN}, ("sentry",)),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, ("otlp",)),
    ({"SENTRY_DSN": DSN, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, ("sentry",)),
    ({"SENTRY_DSN": DSN, "OTEL_SENTRY_EXPORT": "both"}, ("sentry", "otlp")),
    ({"SENTRY_DSN": DSN, "OTEL_SENTRY_EXPORT": "none"}, ()),
    ({"SENTRY_DSN": DSN, "SENTRY_ENABLED": "false"}, ()),
]


@pytest.mark.parametrize(("environ", "expected"), EXPORT)
def test_export_destinations(environ: dict[str, str], expected: tuple[str, ...]) -> None:
    assert resolve({}, environ).span_export == expected


def test_as_options_round_trips() -> None:
    settings = resolve({"traces_sample_rate": 0.3}, {"SENTRY_DSN": DSN, "SENTRY_ENV": "qa"})
    assert resolve(settings.as_options(), {}) == settings


@pytest.mark.parametrize("quote", ['"', "'"])
def test_a_dsn_pasted_with_its_quotes_says_remove_the_quotes(quote: str) -> None:
    dsn = "https://k@o1.ingest.sentry.io/2"
    with pytest.raises(ConfigError) as caught:
        resolve({}, {"SENTRY_DSN": f"{quote}{dsn}{quote}"})
    assert "remove the quotes" in str(caught.value)
    assert "k@" not in str(caught.value)  # the key is still not printed
    with pytest.raises(ConfigError, match="remove the quotes"):
        resolve({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": f"{quote}http://127.0.0.1:4318{quote}"})
    assert resolve({}, {"SENTRY_DSN": dsn}).dsn == dsn


def test_otel_sdk_disabled_turns_instrumentation_and_span_export_off() -> None:
    settings = resolve({}, {"OTEL_SDK_DISABLED": "true"})
    assert settings.instrument is False and settings.span_export == ()
    assert settings.sources["instrument"] == "env:OTEL_SDK_DISABLED"
    explicit = resolve({"instrument": ("fastapi",)}, {"OTEL_SDK_DISABLED": "true"})
    assert explicit.instrument == ("fastapi",)  # an argument still wins
    assert resolve({}, {"OTEL_SDK_DISABLED": "false"}).instrument is True
