#!/usr/bin/env bash
# `make test`: set up (idempotent), lint (ruff, mypy), then run the whole pytest suite. Extra arguments go
# to pytest. A lint failure fails the command after the tests have run, so both reports are there.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
. scripts/env.sh
set +e
bash scripts/lint.sh
lint=$?
python -m pytest "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then echo "no tests were collected: that is a failure here" >&2; exit 1; fi
if [ "$rc" = 0 ] && [ "$lint" != 0 ]; then echo "lint failed (see above): run \`make lint\`" >&2; exit 1; fi
exit "$rc"
