"""Release detection: the name Sentry groups errors and deploys under.

sentry_sdk has its own guess (``get_default_release``), but it asks git before the platform and
knows none of Vercel, Railway, Render, Coolify or GitHub Actions; the platform's variable is the
truth of what was deployed, so we ask it first and git second.

    >>> detect_release({"VERCEL_GIT_COMMIT_SHA": "4f2a9c1"})
    Detected(release='4f2a9c1', source='env:VERCEL_GIT_COMMIT_SHA')
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from typing import NamedTuple

__all__ = ["PLATFORM_COMMIT_VARIABLES", "Detected", "detect_release", "git_revision"]

# Ordered: the first one set wins. Each is the variable the platform sets to the deployed commit.
PLATFORM_COMMIT_VARIABLES: tuple[tuple[str, str], ...] = (
    ("VERCEL_GIT_COMMIT_SHA", "Vercel"),
    ("RAILWAY_GIT_COMMIT_SHA", "Railway"),
    ("RENDER_GIT_COMMIT", "Render"),
    ("HEROKU_BUILD_COMMIT", "Heroku"),
    ("HEROKU_SLUG_COMMIT", "Heroku (legacy)"),
    ("SOURCE_COMMIT", "Coolify"),
    ("GITHUB_SHA", "GitHub Actions"),
    ("CI_COMMIT_SHA", "GitLab CI"),
    ("SOURCE_VERSION", "Heroku build / AWS CodeBuild"),
    ("CODEBUILD_RESOLVED_SOURCE_VERSION", "AWS CodeBuild"),
    ("CIRCLE_SHA1", "CircleCI"),
    ("K_REVISION", "Cloud Run"),
)


class Detected(NamedTuple):
    release: str | None
    source: str


def git_revision(cwd: str | None = None, timeout: float = 2.0) -> str | None:
    """The commit of the working tree at ``cwd``, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and sha else None


def detect_release(environ: Mapping[str, str] | None = None, cwd: str | None = None) -> Detected:
    """Platform commit variable first, then ``git rev-parse HEAD``; None when neither answers."""
    env = os.environ if environ is None else environ
    for name, _platform in PLATFORM_COMMIT_VARIABLES:
        value = env.get(name, "").strip()
        if value:
            return Detected(value, f"env:{name}")
    sha = git_revision(cwd)
    if sha:
        return Detected(sha, "git")
    return Detected(None, "none")
