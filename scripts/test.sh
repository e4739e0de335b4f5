#!/usr/bin/env bash
# `make test`: set up (idempotent), lint (ruff, mypy), then run the whole pytest suite. Extra arguments go
# to pytest. A lint failure fails the command after the tests have run, so both reports are there.
# Tests run in PYTEST_WORKERS processes (default 2, one per core; 0 runs them in this process), a test
# file per process at a time (`--dist loadfile`), so a module's shared backend and stack stay in one
# process. Every test keeps its own backend data, Pulumi state and temporary folders, so files never clash.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
. scripts/env.sh
set +e
bash scripts/lint.sh
lint=$?
workers="${PYTEST_WORKERS:-2}"
if [ "$workers" = 0 ]; then python -m pytest "$@"; else python -m pytest -n "$workers" --dist loadfile "$@"; fi
rc=$?
set -e
if [ "$rc" = 5 ]; then echo "no tests were collected: that is a failure here" >&2; exit 1; fi
if [ "$rc" = 0 ] && [ "$lint" != 0 ]; then echo "lint failed (see above): run \`make lint\`" >&2; exit 1; fi
exit "$rc"
