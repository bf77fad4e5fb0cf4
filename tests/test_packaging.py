"""What a user downloads: the sdist and the wheel built from this working tree, as PyPI would.

`python -m build` makes the sdist, then the wheel from that sdist (so the sdist is checked to be
complete enough to build), with the build backend pyproject.toml names, in a directory of the
test's own. About 10 s.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tarfile
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path

import httpx
import pytest

from otel_sentry.inbox import encode_envelope

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ("agent.yaml", "builder.yaml", "gateway.yaml")


def _tested_versions() -> set[str]:
    """3.11 runs the whole suite (this interpreter under `make test`); py-matrix.sh the rest."""
    script = (ROOT / "scripts" / "py-matrix.sh").read_text()
    match = re.search(r"versions=\(([\d. ]+)\)", script)
    assert match, "scripts/py-matrix.sh no longer names its default versions as versions=(...)"
    return {*match[1].split(), f"{sys.version_info.major}.{sys.version_info.minor}"}


class Built:
    def __init__(self, out: Path) -> None:
        [wheel] = out.glob("*.whl")
        [sdist] = out.glob("*.tar.gz")
        self.wheel_path = wheel
        with zipfile.ZipFile(wheel) as archive:
            self.wheel = {name: archive.read(name) for name in archive.namelist()}
        with tarfile.open(sdist) as archive:
            top = archive.getnames()[0].split("/")[0]
            self.sdist = {
                member.name.removeprefix(f"{top}/"): member
                for member in archive.getmembers()
                if member.isfile()
            }
        [metadata] = [n for n in self.wheel if n.endswith(".dist-info/METADATA")]
        self.metadata: Message = Parser().parsestr(self.wheel[metadata].decode())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    out = tmp_path_factory.mktemp("dist")
    # Not from ROOT: its ignored build/ folder would shadow the `build` package.
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        cwd=out,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return Built(out)


def test_the_license_is_in_both(built: Built) -> None:
    license_text = (ROOT / "LICENSE").read_bytes()
    assert license_text.startswith(b"MIT License")
    [in_wheel] = [n for n in built.wheel if re.search(r"\.dist-info/licenses/LICENSE$", n)]
    assert built.wheel[in_wheel] == license_text
    assert "LICENSE" in built.sdist
    assert built.metadata["License-Expression"] == "MIT"
    assert built.metadata.get_all("License-File") == ["LICENSE"]


def test_the_collector_configs_are_in_the_wheel(built: Built) -> None:
    for name in CONFIGS:
        shipped = built.wheel[f"otel_sentry/collector/{name}"]
        assert shipped == (ROOT / "otel_sentry" / "collector" / name).read_bytes()


def test_the_wheel_is_typed(built: Built) -> None:
    assert built.wheel["otel_sentry/py.typed"] == b""


def test_metadata_names_authors_tested_pythons_and_published_extras(built: Built) -> None:
    metadata = built.metadata
    assert metadata["Author"] == "the otel-sentry authors"
    repository = "https://github.com/otel-sentry/otel-sentry"
    assert metadata.get_all("Project-URL") == [
        f"Homepage, {repository}",
        f"Source, {repository}",
        f"Issues, {repository}/issues",
        f"Documentation, {repository}#readme",
    ]
    classifiers = metadata.get_all("Classifier") or []
    pythons = {
        c.rsplit(" ", 1)[1]
        for c in classifiers
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    }
    assert pythons == _tested_versions()
    trove = pytest.importorskip("trove_classifiers")
    assert [c for c in classifiers if c not in trove.classifiers] == []
    extras = set(metadata.get_all("Provides-Extra") or [])
    assert "dev" not in extras
    assert {"all", "fastapi", "django", "flask", "starlette", "aiohttp", "inbox"} <= extras
    requires = metadata.get_all("Requires-Dist") or []
    assert not [r for r in requires if re.search(r"\b(pytest|mypy|ruff)\b", r)]
    [bundle] = [r for r in requires if r.startswith("otel-sentry[") and 'extra == "all"' in r]
    assert {"flask", "starlette", "aiohttp"} <= set(bundle.split("[")[1].split("]")[0].split(","))


def test_the_sdist_ships_no_half_of_the_tests(built: Built) -> None:
    names = set(built.sdist)
    left_out = ("tests/", "benchmarks/", "examples/", "scripts/")
    assert [n for n in names if n.startswith(left_out)] == []
    assert {"README.md", "pyproject.toml", "docs/design.md", "collector/README.md"} <= names
    assert {f"otel_sentry/collector/{name}" for name in CONFIGS} <= names
    assert not [n for n in built.wheel if n.startswith(("tests/", "benchmarks/", "examples/"))]


def test_py_matrix_fails_when_an_interpreter_is_missing() -> None:
    version = "3.99"  # no such Python, anywhere
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "py-matrix.sh"), version],
        env={**os.environ, "PATH": "/usr/bin:/bin", "PYENV_ROOT": "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"py-matrix {version}: FAILED: no interpreter" in result.stderr
    assert f"pyenv install {version}" in result.stderr
    assert f"not tested, no interpreter: {version}" in result.stderr


def test_the_inbox_runs_from_the_wheel_without_its_extra(built: Built, tmp_path: Path) -> None:
    """`pip install otel-sentry`, `otel-sentry inbox`: envelopes work, the rest names the fix."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    install = subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "install", "--quiet", str(built.wheel_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    command = [str(venv / "bin" / "otel-sentry"), "inbox", "--port", "0"]
    extra = "pip install 'otel-sentry[inbox]'"

    tls = subprocess.run(
        [*command, "--tls"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert tls.returncode == 2
    [line] = tls.stderr.splitlines()
    assert line.startswith("otel-sentry inbox --tls: the TLS inbox needs ") and extra in line

    process = subprocess.Popen(
        [*command, "--quiet"], env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().strip() for _ in range(4)]
        assert lines[2].startswith("# inbox listening on"), lines
        assert lines[3].startswith("# without the inbox extra: no OTLP") and extra in lines[3]
        url = lines[1].removeprefix("OTEL_EXPORTER_OTLP_ENDPOINT=")
        key = lines[0].split("//")[1].split("@")[0]
        body = encode_envelope({}, [({"type": "event"}, {"message": "from the wheel"})])
        sent = httpx.post(f"{url}/api/1/envelope/?sentry_key={key}", content=body)
        assert sent.status_code == 200, sent.text
        [event] = httpx.get(f"{url}/api/_inbox/items?type=event&count=1&timeout=5").json()
        assert event["payload"]["message"] == "from the wheel"
        otlp = httpx.post(f"{url}/v1/traces", json={"resourceSpans": []})
        assert otlp.status_code == 501 and extra in otlp.json()["detail"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
    assert process.returncode == 0
