#!/usr/bin/env bash
# `make demo`: the main job on the embedded default. Sets up, starts the local backend, runs
# `pulumi up` on the `local` stack (data -> training pipelines -> predictions -> report), prints the
# outputs and where to look. Run it again: an unchanged sweep is a no-op.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
. scripts/env.sh
bash scripts/backend.sh start
export VALOHAI_API_TOKEN="$(cat .local-valohai/token)"
python scripts/ensure_project.py --host http://127.0.0.1:8040 --project harbor-sweep
pulumi stack select local --create --non-interactive >/dev/null
pulumi up --yes --non-interactive
echo
echo "== stack outputs"
pulumi stack output --json
echo
echo "Report: $ROOT/reports/local/report/index.html (heatmap: reports/local/report/heatmap.png)"
echo "The local backend keeps running for vh and further runs: http://127.0.0.1:8040 (stop it with 'make backend-stop')"
