"""How each kind of option value is parsed from a raw value (a keyword argument or a variable).

Each parser returns the typed value or raises ``ValueError`` saying what was expected; the
config module turns that into a ``ConfigError`` naming the setting and the fix.

    >>> parse_rate("0.25"), parse_bool("off")
    (0.25, False)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from otel_sentry._internal.dsn import parse_dsn

__all__ = [
    "EXPORT_MODES",
    "FASTAPI_TELEMETRY_MODES",
    "LLM_CONTENT_MODES",
    "NOISE_FILTERS",
    "parse_bool",
    "parse_dsn_text",
    "parse_export",
    "parse_fastapi_telemetry",
    "parse_genai_capture",
    "parse_instrument",
    "parse_llm_content_mode",
    "parse_megabytes",
    "parse_name",
    "parse_names",
    "parse_noise_filters",
    "parse_optional_ms",
    "parse_optional_rate",
    "parse_patterns",
    "parse_rate",
    "parse_rules",
    "parse_text",
    "parse_url",
]

EXPORT_MODES: tuple[str, ...] = ("auto", "sentry", "otlp", "both", "none")
# What a captured prompt or completion becomes: the scrubbed, truncated text, or its sha256
# plus a short scrubbed snippet.
LLM_CONTENT_MODES: tuple[str, ...] = ("full", "hash")
FASTAPI_TELEMETRY_MODES: tuple[str, ...] = ("auto", "native", "contrib")


_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}


def parse_bool(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("expected true or false")


def parse_rate(raw: object) -> float:
    if isinstance(raw, bool):
        raise ValueError("expected a number between 0 and 1, not a boolean")
    try:
        rate = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ValueError("expected a number between 0 and 1 (e.g. 0.1)") from exc
    if not 0.0 <= rate <= 1.0:  # also rejects NaN
        raise ValueError("a sample rate must be between 0 and 1 (e.g. 0.1)")
    return rate


def parse_optional_rate(raw: object) -> float | None:
    return None if raw is None or raw == "" else parse_rate(raw)


def parse_text(raw: object) -> str | None:
    if raw is None:
        return None
    text = str(raw).strip()
    return text or None


def parse_name(raw: object) -> str:
    """Text that must not be empty (an environment name)."""
    text = parse_text(raw)
    if text is None:
        raise ValueError("expected a name, not an empty value")
    return text


def _unquoted(text: str) -> str:
    # docker's --env-file, compose's env_file and systemd's EnvironmentFile= keep quotes that a
    # shell would strip: the value then starts with a quote, and nothing else explains why.
    if len(text) >= 2 and text[0] in "\"'" and text[-1] == text[0]:
        raise ValueError(
            "it is wrapped in quotes, which are part of the value here (an env file passed by "
            "docker or compose keeps them): remove the quotes"
        )
    return text


def parse_dsn_text(raw: object) -> str | None:
    text = parse_text(raw)
    if text is None:
        return None
    parse_dsn(_unquoted(text))
    return text


def parse_export(raw: object) -> str:
    text = str(raw).strip().lower()
    if text not in EXPORT_MODES:
        raise ValueError(f"expected one of {', '.join(EXPORT_MODES)}")
    return text


def parse_url(raw: object) -> str | None:
    text = parse_text(raw)
    if text is None:
        return None
    parts = urlsplit(_unquoted(text))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http(s) URL such as http://127.0.0.1:4318")
    return text


def parse_optional_ms(raw: object) -> float | None:
    """A duration in milliseconds (``250``, ``0.5``); empty or None means off."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, bool):
        raise ValueError("expected a number of milliseconds, not a boolean")
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ValueError("expected a number of milliseconds (e.g. 250)") from exc
    if not 0.0 <= value < float("inf"):  # also rejects NaN
        raise ValueError("expected a non-negative number of milliseconds (e.g. 250)")
    return value


def parse_names(raw: object) -> tuple[str, ...]:
    items = [str(x) for x in raw] if isinstance(raw, (list, tuple)) else str(raw).split(",")
    return tuple(x.strip() for x in items if x.strip())


def parse_instrument(raw: object) -> bool | tuple[str, ...]:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
        return parse_bool(raw)
    return parse_names(raw)


def parse_rules(raw: object) -> tuple[tuple[str, float], ...]:
    """``"/health=0, /api/v1/projects/*=1"``, a mapping or (pattern, rate) pairs -> pairs."""
    if isinstance(raw, Mapping):
        pairs = list(raw.items())
    elif isinstance(raw, (list, tuple)):
        pairs = [tuple(p) for p in raw]
    else:
        pairs = []
        for chunk in str(raw).split(","):
            if not chunk.strip():
                continue
            pattern, sep, rate = chunk.rpartition("=")
            if not sep or not pattern.strip():
                raise ValueError(f"rule {chunk.strip()!r} is not of the form <pattern>=<rate>")
            pairs.append((pattern.strip(), rate))
    out: list[tuple[str, float]] = []
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"rule {pair!r} is not a (pattern, rate) pair")
        pattern, rate = pair
        try:
            out.append((str(pattern), parse_rate(rate)))
        except ValueError as exc:
            raise ValueError(f"rule {pattern!r}: {exc}") from exc
    return tuple(out)


# OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT takes a boolean in older instrumentations
# and a mode in newer ones; content on spans is what we record, so the span modes mean on.
_GENAI_CAPTURE_MODES = {
    "span_only": True,
    "span_and_event": True,
    "event_only": False,
    "no_content": False,
}


def parse_genai_capture(raw: object) -> bool:
    if isinstance(raw, str) and raw.strip().lower() in _GENAI_CAPTURE_MODES:
        return _GENAI_CAPTURE_MODES[raw.strip().lower()]
    try:
        return parse_bool(raw)
    except ValueError:
        raise ValueError("expected true, false, SPAN_ONLY, SPAN_AND_EVENT or NO_CONTENT") from None


def parse_llm_content_mode(raw: object) -> str:
    text = str(raw).strip().lower()
    if text not in LLM_CONTENT_MODES:
        raise ValueError(f"expected one of {', '.join(LLM_CONTENT_MODES)}")
    return text


def parse_fastapi_telemetry(raw: object) -> str:
    text = str(raw).strip().lower()
    if text not in FASTAPI_TELEMETRY_MODES:
        raise ValueError(f"expected one of {', '.join(FASTAPI_TELEMETRY_MODES)}")
    return text


def parse_patterns(raw: object) -> tuple[str, ...]:
    """Regular expressions: a list, or comma-separated text (write a comma inside one as \\x2c)."""
    patterns = parse_names(raw)
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{pattern!r} is not a regular expression ({exc})") from None
    return patterns


NOISE_FILTERS: tuple[str, ...] = ("health", "preflight", "not_found", "host_header")


def parse_noise_filters(raw: object) -> tuple[str, ...]:
    """``all``, ``none`` or names out of :data:`NOISE_FILTERS`."""
    if isinstance(raw, bool):
        return NOISE_FILTERS if raw else ()
    text = raw.strip().lower() if isinstance(raw, str) else None
    if text in ("all", "true", "default"):
        return NOISE_FILTERS
    if text in ("none", "false", "off", ""):
        return ()
    names = parse_names(raw)
    unknown = [n for n in names if n not in NOISE_FILTERS]
    if unknown:
        raise ValueError(f"unknown noise filter(s) {', '.join(unknown)}")
    return names


def parse_megabytes(raw: object) -> float:
    """A size in MiB (``16``, ``0.5``): positive and finite."""
    if isinstance(raw, bool):
        raise ValueError("expected a size in MiB, not a boolean")
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ValueError("expected a size in MiB (e.g. 64)") from exc
    if not 0.0 < value < float("inf"):
        raise ValueError("expected a positive size in MiB (e.g. 64)")
    return value
