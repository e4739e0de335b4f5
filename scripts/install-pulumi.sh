#!/usr/bin/env bash
# Build the Pulumi CLI and the Python language host from the Go module proxy, offline-friendly.
#
# Why: the official installers download release binaries, which are unreachable here; the CLI and the
# language host are Go modules, so we build them at the version that matches the pinned PyPI SDK.
# The result is cached outside the checkout, keyed by version, so every clone reuses it.
#
# Usage: scripts/install-pulumi.sh VERSION   -> prints the directory to put first on PATH
set -euo pipefail

V="${1:?usage: install-pulumi.sh VERSION (e.g. 3.260.0)}"
CACHE_ROOT="${VPAC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/valohai-pac}"
OUT="$CACHE_ROOT/pulumi-v$V/bin"
log() { echo "[install-pulumi] $*" >&2; }
# Where the proxy does not serve the Go language host, this shim starts the project's Python one instead.
# Its marker file records why; a cached toolchain gets the current shim on every run (no rebuild).
SHIM_MARKER=LANGUAGE_HOST_FROM_PROXY_FAILED.txt
shim() {
  cat <<'SH'
#!/bin/sh
# Pulumi's Python language host, served by the project's implementation of the same gRPC protocol
# (toolchain/language_host.py), because the Go module proxy does not serve the Go host.
exec "${PULUMI_PYTHON_CMD:-python3}" -u -m toolchain.language_host "$@"
SH
}
write_shim() {  # DIR: (re)write DIR/pulumi-language-python unless it already is the current shim
  if [ "$(cat "$1/pulumi-language-python" 2>/dev/null)" != "$(shim)" ]; then
    shim > "$1/pulumi-language-python.new" && chmod 755 "$1/pulumi-language-python.new"
    mv -f "$1/pulumi-language-python.new" "$1/pulumi-language-python"
    log "wrote the language host shim in $1"
  fi
}

# 1. A pulumi already on PATH at exactly this version wins (a user's own install).
if command -v pulumi >/dev/null 2>&1 && [ "$(command -v pulumi)" != "$OUT/pulumi" ]; then
  have="$(pulumi version 2>/dev/null || true)"
  if [ "$have" = "v$V" ] && command -v pulumi-language-python >/dev/null 2>&1; then
    log "using pulumi $have from PATH"
    dirname "$(command -v pulumi)"
    exit 0
  fi
fi

# 2. The cache, when complete and stamped with the right version.
if [ -x "$OUT/pulumi" ] && [ -x "$OUT/pulumi-language-python" ] \
   && [ -x "$OUT/pulumi-language-python-exec" ] && [ -x "$OUT/pulumi-resource-pulumi-python" ] \
   && [ "$("$OUT/pulumi" version 2>/dev/null)" = "v$V" ]; then
  if [ -f "$OUT/$SHIM_MARKER" ]; then write_shim "$OUT"; fi
  echo "$OUT"
  exit 0
fi

# 3. Build. Needs Go >= the go directive of pulumi's go.mod.
command -v go >/dev/null 2>&1 || { log "ERROR: Go is not installed; install Go >= 1.25 (or put pulumi v$V on PATH)"; exit 1; }
log "building pulumi v$V from the Go module proxy (cold: 10-20 min on 2 cores; cached afterwards in $OUT)"
WORK="$CACHE_ROOT/pulumi-build-v$V"
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local
go mod init local/pulumi-build >/dev/null 2>&1
# pulumi's own go.mod replaces clipboard with a fork; replaces of dependencies are ignored, so repeat it.
go mod edit -replace github.com/atotto/clipboard=github.com/tgummerer/clipboard@v0.0.0-20241001131231-d02d263e614e
go get "github.com/pulumi/pulumi/pkg/v3@v$V" "github.com/pulumi/pulumi/sdk/v3@v$V"
got="$(go list -m -f '{{.Version}}' github.com/pulumi/pulumi/pkg/v3) $(go list -m -f '{{.Version}}' github.com/pulumi/pulumi/sdk/v3)"
[ "$got" = "v$V v$V" ] || { log "ERROR: module versions drifted to '$got', expected v$V"; exit 1; }
LD="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$V"
mkdir -p out
cat > tools.go <<GO
//go:build tools
package tools
import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
GO
CGO_ENABLED=0 go build -trimpath -tags osusergo,grpcnotrace -ldflags "$LD" -o out/pulumi github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
S="$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)"
install -m755 "$S/python/cmd/pulumi-language-python-exec" "$S/python/dist/pulumi-resource-pulumi-python" out/

# The Python language host is its own, never-tagged module: it can only be had at a pseudo-version of the
# release commit. Try it; where the proxy refuses it, use the project's Python host (same gRPC protocol).
SHA="$(go mod download -json "github.com/pulumi/pulumi/sdk/v3@v$V" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("Origin",{}).get("Hash",""))')"
HOST=github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3
if [ -n "$SHA" ] && go get "$HOST@$SHA" 2>host-error.txt \
   && CGO_ENABLED=0 go build -trimpath -ldflags "$LD" -o out/pulumi-language-python "$HOST" 2>>host-error.txt; then
  log "built the Go language host at $SHA"
else
  [ -n "$SHA" ] || echo "go mod download -json github.com/pulumi/pulumi/sdk/v3@v$V: no Origin.Hash, so the language host's pseudo-version cannot be derived; the proxy answers 403 for $HOST/@v/list" >> host-error.txt
  log "Go language host unavailable from the proxy ($(tr '\n' ' ' < host-error.txt | cut -c1-300)); using the project's Python language host"
  cp host-error.txt "out/$SHIM_MARKER"
  write_shim out
fi
[ "$(out/pulumi version)" = "v$V" ] || { log "ERROR: built pulumi reports '$(out/pulumi version)'"; exit 1; }
rm -rf "$OUT" && mkdir -p "$(dirname "$OUT")" && mv out "$OUT"
cd / && rm -rf "$WORK"
log "pulumi v$V ready in $OUT"
echo "$OUT"
