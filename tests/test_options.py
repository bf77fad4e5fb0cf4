"""Each option is declared once (``_internal/settings.py``); these keep its other faces equal.

The README's configuration table is generated from the declarations, ``init()``'s keyword type
(``InitOptions``) has the same names, and a type checker rejects an option ``init()`` does not
have or a value of the wrong type.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mypy import api

from otel_sentry._internal import config
from otel_sentry._internal.options import InitOptions
from otel_sentry._internal.sdk_options import SDK_OPTIONS
from otel_sentry._internal.settings import CODE_ONLY, OPTIONS, Settings, markdown_table

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- options:start -->\n", "<!-- options:end -->\n"


def test_the_readme_table_is_the_declarations() -> None:
    text = README.read_text()
    assert START in text and END in text, "README.md lost its options markers"
    table = text[text.index(START) + len(START) : text.index(END)]
    assert table == markdown_table(), (
        "README.md's configuration table differs from otel_sentry/_internal/settings.py. Fix: "
        "replace the lines between the options markers with the output of "
        "`python -m otel_sentry._internal.settings`."
    )


def test_init_accepts_exactly_the_declared_options() -> None:
    declared = {o.name for o in OPTIONS} | set(CODE_ONLY)
    # and sentry_sdk's other keywords (tests/test_sentry_sdk_options.py)
    assert set(InitOptions.__annotations__) == declared | set(SDK_OPTIONS)
    resolved = {"sources", "sentry_sdk_options", "inert_options"}
    settings_fields = set(Settings.__dataclass_fields__) - resolved
    assert settings_fields == declared


def test_every_variable_sets_one_option_and_every_option_is_documented() -> None:
    variables = [name for o in OPTIONS for name in o.env]
    assert len(variables) == len(set(variables))
    for o in OPTIONS:
        assert o.env and o.help and o.expect and o.doc_default, o.name
        assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", name) for name in o.env), o.name


def test_a_bad_value_names_what_the_declaration_expects() -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.resolve({}, {"OTEL_SENTRY_SPOOL_MAX_MB": "lots"})
    message = str(caught.value)
    assert "OTEL_SENTRY_SPOOL_MAX_MB='lots'" in message
    assert "a positive size in MiB, like 64" in message


def test_an_empty_environment_name_is_refused() -> None:
    with pytest.raises(config.ConfigError, match="environment=''"):
        config.resolve({"environment": ""}, {})


def test_a_type_checker_refuses_unknown_options_and_wrong_types(tmp_path: Path) -> None:
    program = tmp_path / "uses_init.py"
    program.write_text(
        "import otel_sentry\n"
        "otel_sentry.init(dsn='https://k@o1.ingest.sentry.io/2', traces_sample_rate=0.5)\n"
        "otel_sentry.init(trace_sample_rate=0.5)\n"
        "otel_sentry.init(before_send=42)\n"
    )
    out, _, status = api.run(["--strict", "--no-error-summary", str(program)])
    # The user's program only: optional libraries (arq, genai-prices) may be missing here, and
    # mypy follows the import into this package's own source.
    errors = [
        line
        for line in out.splitlines()
        if ": error:" in line and program.name in line.split(":")[0]
    ]
    assert status == 1
    assert [e.split(":")[1] for e in errors] == ["3", "4"], out
    assert "trace_sample_rate" in errors[0]
