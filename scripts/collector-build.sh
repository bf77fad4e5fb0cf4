#!/usr/bin/env bash
# Builds the OpenTelemetry Collector described by otel_sentry/collector/builder.yaml with the
# Collector Builder (ocb), at the release the manifest pins, and prints the binary's path.
#
# The binary is cached outside the repository, keyed by a hash of the manifest
# (${XDG_CACHE_HOME:-~/.cache}/otel-sentry/collector/<hash>/), and reused while the manifest is
# unchanged; Go's module and build caches make a rebuild after a manifest change quick. Quiet
# unless it fails. Needs Go (>= 1.25) and the Go module proxy.
set -euo pipefail
cd "$(dirname "$0")/.."

manifest=otel_sentry/collector/builder.yaml
name=otelcol-otel-sentry
hash=$(sha256sum "$manifest" | cut -c1-16)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/otel-sentry/collector"
binary="$cache/$hash/$name"

if [ -x "$binary" ]; then
    echo "$binary"
    exit 0
fi

go=$(command -v go || true)
if [ -z "$go" ] && [ -x /usr/local/go/bin/go ]; then
    go=/usr/local/go/bin/go
fi
if [ -z "$go" ]; then
    echo "collector-build: Go is not installed. Fix: install Go >= 1.25 (https://go.dev/dl/ or apt-get install golang-go) and run again." >&2
    exit 1
fi

# The builder of the same release as the components: ocb checks the versions it resolves.
version=$(sed -n 's/^  version: *//p' "$manifest" | head -n1)
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9  # one build at a time; a second caller waits, then finds the binary
if [ -x "$binary" ]; then
    echo "$binary"
    exit 0
fi

work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
log="$work/build.log"
ocb="$cache/tools/v$version/builder"
if [ ! -x "$ocb" ]; then
    if ! GOBIN="$cache/tools/v$version" "$go" install \
        "go.opentelemetry.io/collector/cmd/builder@v$version" >"$log" 2>&1; then
        cat "$log" >&2
        echo "collector-build: could not install the Collector Builder v$version (above)." >&2
        exit 1
    fi
fi
cp "$manifest" "$work/builder.yaml"
if ! (cd "$work" && PATH="$(dirname "$go"):$PATH" "$ocb" --config builder.yaml \
    --ldflags="-s -w" >"$log" 2>&1); then
    tail -n 60 "$log" >&2
    echo "collector-build: building the Collector from $manifest failed (last lines above)." >&2
    exit 1
fi
mkdir -p "$cache/$hash"
mv "$work/build/$name" "$binary.tmp"
mv "$binary.tmp" "$binary"
echo "$binary"
