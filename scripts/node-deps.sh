#!/usr/bin/env bash
# Installs the npm packages of the cross-language interop tests (tests/interop) from
# package-lock.json, if node_modules is missing or older than the lock file.
# Safe to run repeatedly: it only calls npm when the lock file changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/../tests/interop"

# npm ci writes node_modules/.package-lock.json: its age is the age of the install.
if [ -f node_modules/.package-lock.json ] && [ ! package-lock.json -nt node_modules/.package-lock.json ]; then
  exit 0
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "node and npm are needed for tests/interop (Node.js >= 20.19); install them and retry" >&2
  exit 1
fi
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
  echo "tests/interop needs Node.js >= 20.19 (@sentry/node 11); this is $(node --version)" >&2
  exit 1
fi

echo "installing npm packages in tests/interop"
npm ci --no-audit --no-fund
