#!/usr/bin/env bash
# Installs the system packages the test suite starts for real (Debian/Ubuntu), if missing.
# Safe to run repeatedly: it only calls apt-get when a command is absent.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# The browser of the cross-language interop tests (driven by playwright-core, never downloaded).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# PostgreSQL for the database tests; Debian keeps initdb off PATH, under /usr/lib/postgresql.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null 2>&1 \
  || need+=(postgresql)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
else
  echo "missing system packages: ${need[*]}; install them (apt-get install ${need[*]}) and retry" >&2
  exit 1
fi

echo "installing system packages: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
