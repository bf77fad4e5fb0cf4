#!/usr/bin/env bash
# Installs and builds the Next.js example (examples/nextjs) that `make demo` puts in front of the
# FastAPI example: `npm ci` when node_modules is missing or older than package-lock.json, then
# `next build` when .next is missing or older than the sources. Safe to run repeatedly.
# Without Node.js (>= 20.19) it says so and exits 0: the demo then skips its Next.js part.
# The first build takes about 40 s; later runs do nothing unless something changed.
set -euo pipefail
cd "$(dirname "$0")/../examples/nextjs"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "node and npm are not on PATH: the demo will skip its Next.js part" >&2
  exit 0
fi
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
  echo "examples/nextjs needs Node.js >= 20.19 (@sentry/nextjs 11); this is $(node --version): the demo will skip its Next.js part" >&2
  exit 0
fi

export NEXT_TELEMETRY_DISABLED=1

# npm ci writes node_modules/.package-lock.json: its age is the age of the install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "installing npm packages in examples/nextjs"
  npm ci --no-audit --no-fund
  rm -rf .next
fi

# Rebuild when any source file is newer than the last build.
if [ ! -f .next/BUILD_ID ] || [ -n "$(find app instrumentation.js instrumentation-client.js \
    sentry.server.config.js next.config.js package-lock.json -newer .next/BUILD_ID -print -quit)" ]; then
  echo "building examples/nextjs (next build)"
  node node_modules/next/dist/bin/next build
fi
