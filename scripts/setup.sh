#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: the venv with every pinned package, and the Pulumi toolchain.
# A second run (or a second checkout) reuses what is there: a few seconds.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "[setup] installing Python packages into .venv (first time: a few minutes)"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  rm -f .venv/.installed-* && touch "$stamp"
fi
V="$(sed -n 's/.*"pulumi==\([0-9.]*\)".*/\1/p' pyproject.toml)"
mkdir -p .pulumi/home .pulumi/state
bash scripts/install-pulumi.sh "$V" > .pulumi/toolchain-dir
. scripts/env.sh
echo "[setup] pulumi $(pulumi version) at $(command -v pulumi); python $(.venv/bin/python -c 'import sys; print(sys.version.split()[0])')"
