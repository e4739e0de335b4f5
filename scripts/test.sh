#!/usr/bin/env bash
# `make test`: set up (idempotent), then run the whole pytest suite. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
. scripts/env.sh
set +e
python -m pytest "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then echo "no tests were collected: that is a failure here" >&2; exit 1; fi
exit "$rc"
