#!/usr/bin/env bash
# The unit-level tests (no servers, no Collector, no Node) on every Python the package claims
# besides the one .venv runs, each in a venv of its own under .venv/matrix/, with the package and
# the dev group installed from this working tree. The whole suite runs on .venv's Python (3.11,
# `make test`); together they are the versions pyproject.toml's classifiers list
# (tests/test_packaging.py holds the two together).
#
#   bash scripts/py-matrix.sh              # 3.10, 3.12 and 3.13
#   bash scripts/py-matrix.sh 3.12         # any subset, or another version found here
#
# An interpreter is looked for as pythonX.Y on PATH, then under pyenv's versions. A missing one
# fails the run (after the others have run): a version the classifiers claim but nobody tested
# must not pass as tested. A venv is rebuilt only when pyproject.toml changes (its .installed
# stamp). Prints each version's pytest summary and its wall time.
set -euo pipefail
cd "$(dirname "$0")/.."

versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(3.10 3.12 3.13)
# Servers (integration), the built Collector (collector), Node (interop) and the packaging
# build are the 3.11 run's; what is left takes about three minutes per version.
selection=(-m "not integration and not packaging" --ignore=tests/integration
    --ignore=tests/collector --ignore=tests/interop -p no:cacheprovider -q)

find_python() {
    local version=$1 candidate root found=()
    # pyenv's shim answers for every version it knows but runs only the active ones: ask it.
    if candidate=$(command -v "python$version" 2>/dev/null) &&
        [ "$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$version" ]; then
        echo "$candidate"
        return 0
    fi
    root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
    for candidate in "$root"/versions/"$version".*/bin/python; do
        if [ -x "$candidate" ]; then found+=("$candidate"); fi
    done
    [ ${#found[@]} -gt 0 ] || return 1
    # The newest patch release (sort -V: 3.10.13 after 3.10.9).
    printf '%s\n' "${found[@]}" | sort -V | tail -n1
}

failed=()
missing=()
for version in "${versions[@]}"; do
    if ! python=$(find_python "$version"); then
        echo "== py-matrix $version: FAILED: no interpreter (no python$version on PATH nor under" \
            "$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")/versions)." \
            "Fix: install Python $version (pyenv install $version), or drop it from" \
            "pyproject.toml's classifiers and this script's default versions." >&2
        missing+=("$version")
        continue
    fi
    venv=.venv/matrix/py$version
    stamp=$venv/.installed
    start=$SECONDS
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        echo "== py-matrix $version: installing into $venv ($python)"
        rm -rf "$venv"
        "$python" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --upgrade 'pip>=25.1'
        "$venv/bin/python" -m pip install --quiet -e '.[all]' --group dev
        touch "$stamp"
    fi
    echo "== py-matrix $version: $("$venv/bin/python" --version), unit-level tests"
    if "$venv/bin/python" -m pytest "${selection[@]}"; then
        echo "== py-matrix $version: passed in $((SECONDS - start)) s"
    else
        echo "== py-matrix $version: FAILED in $((SECONDS - start)) s" >&2
        failed+=("$version")
    fi
done

status=0
if [ ${#missing[@]} -gt 0 ]; then
    echo "py-matrix: FAILED: not tested, no interpreter: ${missing[*]}" >&2
    status=1
fi
if [ ${#failed[@]} -gt 0 ]; then
    echo "py-matrix: FAILED: tests failed on ${failed[*]}" >&2
    status=1
fi
[ $status -ne 0 ] || echo "py-matrix: passed on ${versions[*]}"
exit $status
