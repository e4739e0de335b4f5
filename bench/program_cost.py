"""The stack program's own cost per cell: keys and payloads for N cells, without Pulumi or HTTP.

    python bench/program_cost.py                 # N = 10, 100, 1000 (the trivial project of bench/_harness.py)
    python bench/program_cost.py --cells 1000 --repeats 5

What `stacks/program.py` computes for every cell of a `pulumi preview`/`up`, timed in-process: the content
keys of every node (`compute_keys`: valohai.yaml step definitions, the step files' hashes, parameters), each
cell's resource key, and each cell's pipeline payload (`payloads.training_pipeline` through valohai-yaml's
`PipelineConverter`) with its node tags (`tag_nodes`). Loading valohai.yaml and hashing the code package
happen once per run and are timed apart. Target: linear in N and small next to Pulumi's own
per-resource cost (~14 ms per trivial dynamic resource in bench/README.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h

from providers.resources.code_package import build_package, commit_identifier
from providers.sweep import payloads
from providers.sweep.config import parse_sweep
from providers.sweep.identity import resource_key
from providers.sweep.reuse import tag_nodes
from stacks.program import compute_keys

SHAPES = {10: (2, 5), 100: (10, 10), 1000: (20, 50)}  # cells -> (harbors, epoch values)


def once(root: Path, n: int) -> dict[str, float]:
    harbors, epochs = SHAPES[n]
    sweep = parse_sweep({"harbors": h.harbor_names(harbors), "epochs": list(range(1, epochs + 1))})
    t0 = time.perf_counter()
    config = payloads.load_config((root / "valohai.yaml").read_text())
    commit = commit_identifier(build_package(root))
    t1 = time.perf_counter()
    keys = compute_keys(root, config, sweep)
    cell_keys = {c.name: resource_key("cell", "bench", keys.cells[c.name]) for c in sweep.cells}
    t2 = time.perf_counter()
    data = {"images": "datum://images", "labels": "datum://labels"}
    for cell in sweep.cells:
        payload = payloads.training_pipeline(
            config, commit=commit, project_id="p", cell=cell, sweep=sweep, data=data, tags=["stack:bench"]
        )
        tag_nodes(payload, keys.cells[cell.name])
    t3 = time.perf_counter()
    assert len(cell_keys) == n
    return {"setup": t1 - t0, "keys": t2 - t1, "payloads": t3 - t2, "total": t3 - t0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, nargs="+", choices=sorted(SHAPES), help="sizes (default all)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per size (median shown; default 3)")
    args = parser.parse_args()
    root = h.write_sweep_project(h.temp_dir("vpac-bench-program-") / "project", sleep=0)
    print(f"program_cost: {args.repeats} run(s) per size; machine: {h.machine()}")
    print(f"{'cells':>5} {'setup ms':>9} {'keys ms':>8} {'payloads ms':>11} {'total ms':>9} {'per cell ms':>11}")
    for n in args.cells or sorted(SHAPES):
        runs = [once(root, n) for _ in range(args.repeats)]
        med = {k: h.median([r[k] for r in runs]) * 1000 for k in runs[0]}
        print(
            f"{n:>5} {med['setup']:9.1f} {med['keys']:8.1f} {med['payloads']:11.1f} {med['total']:9.1f} "
            f"{(med['keys'] + med['payloads']) / n:11.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
