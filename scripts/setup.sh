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
  # compat: the project's folders reach sys.path through a one-line .pth. The default editable mode installs an
  # import finder instead, whose start-up imports (pathlib, importlib.util, urllib.parse) cost every Python
  # process ~27 ms here: each step a 1,000-cell sweep runs on the local backend, each program and provider run.
  # setuptools marks the mode transitional; the build-system pin in pyproject.toml keeps a version that has it.
  .venv/bin/python -m pip install -q -e '.[test]' --config-settings editable_mode=compat
  rm -f .venv/.installed-* && touch "$stamp"
fi
V="$(sed -n 's/.*"pulumi==\([0-9.]*\)".*/\1/p' pyproject.toml)"
mkdir -p .pulumi/home .pulumi/state
bash scripts/install-pulumi.sh "$V" > .pulumi/toolchain-dir
. scripts/env.sh
echo "[setup] pulumi $(pulumi version) at $(command -v pulumi); python $(.venv/bin/python -c 'import sys; print(sys.version.split()[0])')"
