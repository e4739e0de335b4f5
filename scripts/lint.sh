#!/usr/bin/env bash
# `make lint`: ruff (lint and format) and mypy with the settings in pyproject.toml; `make test` runs it too.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
rc=0
.venv/bin/ruff check . || rc=1
.venv/bin/ruff format --check . || rc=1
.venv/bin/mypy || rc=1
exit "$rc"
