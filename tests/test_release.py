"""Release detection: each platform's commit variable, then git, then nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from otel_sentry._internal.release import PLATFORM_COMMIT_VARIABLES, detect_release


@pytest.mark.parametrize(("variable", "platform"), PLATFORM_COMMIT_VARIABLES)
def test_each_platform_variable(variable: str, platform: str, tmp_path: Path) -> None:
    detected = detect_release({variable: f"sha-for-{platform}"}, cwd=str(tmp_path))
    assert detected.release == f"sha-for-{platform}"
    assert detected.source == f"env:{variable}"


def test_platform_beats_git_and_order_is_stable(tmp_path: Path) -> None:
    _git_repo(tmp_path)
    env = {"GITHUB_SHA": "gh", "VERCEL_GIT_COMMIT_SHA": "vercel"}
    assert detect_release(env, cwd=str(tmp_path)).release == "vercel"


def test_git_when_no_platform(tmp_path: Path) -> None:
    sha = _git_repo(tmp_path)
    assert detect_release({}, cwd=str(tmp_path)) == (sha, "git")


def test_nothing_outside_git(tmp_path: Path) -> None:
    assert detect_release({}, cwd=str(tmp_path)).release is None


def _git_repo(path: Path) -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
            cwd=path,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    git("init", "-q")
    (path / "f").write_text("x")
    git("add", "f")
    git("commit", "-q", "-m", "x")
    return git("rev-parse", "HEAD")
