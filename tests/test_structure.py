"""The package's layering rules, checked on its source (docs/design.md, "Structure").

- ``sentry/`` reads downward: nothing in it imports ``setup`` (the layer that builds it);
  what it needs from ``init()`` is passed in (``propagator.configure``, ``scrub.configure``).
- ``instrument/`` is vendor-neutral: it never imports ``sentry_sdk`` or the ``sentry`` package.
- No module is over 500 lines.

Imports are read with ``ast``, so one made inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "otel_sentry"
MAX_LINES = 500


def _modules(under: str = "") -> list[Path]:
    return sorted(p for p in (PACKAGE / under).rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path, root: Path = PACKAGE) -> set[str]:
    """Every module ``path`` imports, relative imports resolved, at any depth of the file."""
    package = ".".join(path.relative_to(root.parent).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _offending(
    paths: list[Path], forbidden: tuple[str, ...], root: Path = PACKAGE
) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in paths:
        bad = sorted(
            name
            for name in _imports(path, root)
            if any(name == f or name.startswith(f + ".") for f in forbidden)
        )
        if bad:
            out[str(path.relative_to(root))] = bad
    return out


def test_sentry_reads_downward_only() -> None:
    assert _offending(_modules("_internal/sentry"), ("otel_sentry._internal.setup",)) == {}


def test_instrument_never_imports_sentry() -> None:
    forbidden = ("sentry_sdk", "otel_sentry._internal.sentry")
    assert _offending(_modules("_internal/instrument"), forbidden) == {}


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_over_500_lines(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines: split it by concern"


def test_the_checks_see_late_and_relative_imports(tmp_path: Path) -> None:
    # The positive control: the late import sentry/propagator.py had, and a relative one.
    root = tmp_path / "otel_sentry"
    (root / "_internal" / "sentry").mkdir(parents=True)
    module = root / "_internal" / "sentry" / "probe.py"
    module.write_text(
        "def f():\n"
        "    from otel_sentry._internal.setup import current_settings\n"
        "from .. import setup\n"
    )
    assert _offending([module], ("otel_sentry._internal.setup",), root) == {
        "_internal/sentry/probe.py": [
            "otel_sentry._internal.setup",
            "otel_sentry._internal.setup.current_settings",
        ]
    }
