"""Resolving settings: each option from keyword arguments, then the environment, then defaults.

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
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from otel_sentry._internal.dsn import DsnParts, parse_dsn, redact_url
from otel_sentry._internal.options import Option
from otel_sentry._internal.parsers import EXPORT_MODES, parse_rate
from otel_sentry._internal.release import detect_release
from otel_sentry._internal.sdk_options import SDK_OPTIONS, split
from otel_sentry._internal.settings import CODE_ONLY, CODE_OPTIONS, OPTIONS, Settings

__all__ = [
    "CODE_ONLY",
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


_BY_NAME = {o.name: o for o in OPTIONS}
_CALLBACKS = frozenset(o.name for o in CODE_OPTIONS if o.is_callable)


def _describe(option: Option, origin: str, raw: object) -> str:
    shown = repr(redact_url(str(raw))) if option.secret else repr(raw)
    if origin == "kwarg":
        return f"{option.name}={shown} (argument to otel_sentry.init)"
    return f"{origin.removeprefix('env:')}={shown}"


def _fix(option: Option, origin: str) -> str:
    where = option.name if origin == "kwarg" else origin.removeprefix("env:")
    return f"set {where} to {option.expect}, or unset it ({option.help})"


def resolve(options: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Keyword arguments win, then the most specific variable, then the default."""
    env = os.environ if environ is None else environ
    unknown = [k for k in options if k not in _BY_NAME and k not in CODE_ONLY]
    unknown = [k for k in unknown if k not in SDK_OPTIONS]
    if unknown:
        known = [*_BY_NAME, *CODE_ONLY, *SDK_OPTIONS]
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
            f"otel_sentry.init() got unknown option(s) {', '.join(hints)}. Fix: use an option "
            "from README.md's configuration table or a sentry_sdk.init() option "
            "(docs/sentry-sdk-options.md)."
        )
    # sentry_sdk's own keywords: passed to its client, or standing for ours (sdk_options.py).
    sdk = split(options)
    if sdk.refused:
        raise ConfigError(" ".join(sdk.refused))
    options = {**options, **sdk.mapped}

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

    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        # OpenTelemetry's own off switch: its SDK records nothing, so nothing is instrumented
        # or exported either (errors and logs still go to Sentry).
        for name, off in (("instrument", False), ("export", "none")):
            if sources[name] == "default":
                values[name], sources[name] = off, "env:OTEL_SDK_DISABLED"

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

    code = {k: options[k] for k in CODE_ONLY if options.get(k) is not None}
    for name, value in code.items():
        if name in _CALLBACKS and not callable(value):
            raise ConfigError(f"{name}={value!r} must be a callable. Fix: pass a function.")
    return Settings(
        **values,
        **code,
        sentry_sdk_options=sdk.passed,
        inert_options=sdk.inert,
        sources=sources,
    )


def _resource_attributes(raw: str) -> dict[str, str]:
    """Parse ``OTEL_RESOURCE_ATTRIBUTES`` (``k=v,k2=v2``, percent-encoded) leniently."""
    out: dict[str, str] = {}
    for pair in raw.split(","):
        key, sep, value = pair.partition("=")
        if sep and key.strip():
            out[unquote(key.strip())] = unquote(value.strip())
    return out
