"""How close the plan's per-cell estimates come to the durations the cells then take.

One local backend, one project, the demo sweep (stacks/Pulumi.local.yaml: harbor_A, harbor_B x epochs 2, 5,
the real steps). Stack `history` brings it up once (not timed): that is the project's history. Then two
more stacks in the same project, each with `reuse: false` so that every node really runs:
- `same`: the demo sweep again. Its node keys equal the history's, so each estimate is the median of
  the runs of the same node (basis 1 in providers/sweep/estimates.py).
- `scaled`: epochs 3 and 4. Preprocess nodes match by key; train nodes are estimated from the
  history's epochs 2 and 5 runs with the same other parameters, scaled by epochs (basis 2).
For each, `pulumi preview` prints the estimates, `pulumi up` runs the cells, and this prints per cell
the estimate, the measured execution-minutes (preprocess + train durations from the API, the quantity the
estimate predicts) and their ratio. Goal (issue "Run control"): every ratio within 0.5-1.5.

    .venv/bin/python bench/estimate_accuracy.py           # demo data (a few minutes of training)
    .venv/bin/python bench/estimate_accuracy.py --tiny    # tiny data, for a quick check
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import ROOT, backend, create_project, init_stack, machine, median, pulumi, pulumi_env
from reuse_switch import TINY, write_stack

from providers.api.client import ValohaiClient

ESTIMATE_LINE = re.compile(r"estimate: (?P<cell>harbor_\w+/epochs-\d+): (?P<minutes>[\d.]+) min \((?P<basis>[^)]*)\)")


def estimates(output: str) -> dict[str, tuple[float, str]]:
    """Cell -> (minutes, basis) from the estimate lines the program prints at preview."""
    return {m["cell"]: (float(m["minutes"]), m["basis"]) for m in ESTIMATE_LINE.finditer(output)}


def measured(api: ValohaiClient, project_id: str, stack: str) -> dict[str, float]:
    """Cell -> execution-minutes its pipeline's nodes took (sum of execution durations)."""
    cells = {}
    for pipeline in api.list_pipelines(project_id):
        if f"stack:{stack}" not in (pipeline.get("tags") or []):
            continue
        match = re.fullmatch(r"training-pipeline-(.+)-epochs-(\d+)", pipeline.get("title") or "")
        if not match:
            continue
        seconds = sum(float((n.get("execution") or {}).get("duration") or 0) for n in pipeline.get("nodes") or [])
        cells[f"{match[1]}/epochs-{match[2]}"] = seconds / 60
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny data instead of the demo's")
    args = parser.parse_args()
    data = TINY if args.tiny else None
    project = "bench-estimates"
    rows = []
    with tempfile.TemporaryDirectory(prefix="vpac-estimate-bench-") as tmp:
        work = Path(tmp)
        with backend(work, workers=2) as server:
            env = pulumi_env(work, server.token)
            (work / "Pulumi.yaml").write_text(f"name: valohai-sweep\nruntime: python\nmain: {ROOT / 'stacks'}\n")
            api = ValohaiClient(server.url, server.token)
            project_id = create_project(server, project)["id"]
            init_stack(work, env, "history")
            write_stack(work, "history", server.url, project, data)
            seconds, _ = pulumi(["up", "--yes", "--skip-preview", "--stack", "history"], work, env, timeout=3600)
            print(f"history: demo sweep up in {seconds:.1f} s (not part of the comparison)", flush=True)
            for stack, epochs in (("same", None), ("scaled", [3, 4])):
                init_stack(work, env, stack)
                extra: dict[str, object] = {"reuse": False}
                if epochs:
                    extra["epochs"] = epochs
                write_stack(work, stack, server.url, project, data, **extra)
                _, preview = pulumi(["preview", "--stack", stack], work, env, timeout=1200)
                planned = estimates(preview.stdout)
                pulumi(["up", "--yes", "--skip-preview", "--stack", stack], work, env, timeout=3600)
                took = measured(api, project_id, stack)
                for cell in sorted(took):
                    minutes, basis = planned.get(cell, (float("nan"), "no estimate printed"))
                    rows.append((stack, cell, minutes, took[cell], minutes / took[cell], basis))
    print(f"\nestimates vs measured ({'tiny' if args.tiny else 'demo'} data), {machine()}")
    print(f"{'stack':8}{'cell':22}{'est min':>9}{'took min':>10}{'ratio':>7}  basis")
    for stack, cell, minutes, took, ratio, basis in rows:
        print(f"{stack:8}{cell:22}{minutes:9.2f}{took:10.2f}{ratio:7.2f}  {basis}")
    ratios = [r[4] for r in rows]
    inside = sum(1 for r in ratios if 0.5 <= r <= 1.5)
    print(f"median ratio {median(ratios):.2f}; within 50%: {inside}/{len(ratios)} cells")


if __name__ == "__main__":
    main()
