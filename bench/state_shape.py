"""What a cell's state shape costs the engine: `pulumi up` of N resources shaped like cells, two shapes side by side.

    python bench/state_shape.py                    # N = 600, 2 repeats, alternating which shape goes first
    python bench/state_shape.py --cells 1000 --repeats 3
    python bench/state_shape.py --deps 0           # what the two dependencies cost: the same, depending on nothing

Why: the file backend rewrites the whole state at each checkpoint of an `up` (two per created resource), and the
engine encodes it value by value, so a fresh 1,000-cell `up` is bound by the size *and the number of values* of a
cell's state entry (bench/README.md, "At scale"). This isolates that cost from everything else a real sweep does
(HTTP, the backend, the steps): each resource is a dynamic resource whose create returns at once, with inputs and
outputs of the lengths a real cell stores (measured on a 500-cell stand-in sweep), and, like a cell, a payload
that depends on two upstream resources (the code package and its harbor's dataset; `--deps` 0 or 1 for fewer).

Shapes:
  before: as the previous version stored a cell: inputs host, identity, key, label, payload, stack (7 with the
          provider) and outputs host, key, label, counter, live, pipeline_id, project_id, status (9): 23 values.
  spec:   this version (providers/resources/pipelines.py): inputs payload and one packed spec (3) and outputs
          spec, counter, live, status (5): 11 values, as many bytes give or take 3%.
Both run the program with the SDK's per-resource diagnostics off, as the real program does (stacks/sdk_overhead.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import string
import sys
import time
from pathlib import Path
from typing import Any

from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider

SHAPE_ENV, CELLS_ENV, DEPS_ENV = "VPAC_BENCH_SHAPE", "VPAC_BENCH_CELLS", "VPAC_BENCH_DEPS"  # program, provider

SHAPES = ("before", "spec")
# Lengths of the stored strings, medians over a 500-cell stand-in sweep's state (2026-11-27).
BEFORE_INPUTS = {"host": 22, "identity": 200, "key": 64, "label": 18, "payload": 364, "stack": 1}
BEFORE_OUTPUTS = {"live": 176, "pipeline_id": 36, "project_id": 36}
SPEC_INPUTS = {"payload": 364, "spec": 320}
SPEC_OUTPUTS = {"spec": 156, "live": 256}

PROGRAM = """\
import os
from stacks.sdk_overhead import quiet_sdk, wait_for_root

quiet_sdk()
wait_for_root()
import pulumi
from bench.state_shape import Shaped, cell_inputs

shape, count = os.environ["VPAC_BENCH_SHAPE"], int(os.environ["VPAC_BENCH_CELLS"])  # SHAPE_ENV, CELLS_ENV
upstream = [Shaped(name, cell_inputs(shape, -1 - k)) for k, name in enumerate(("code", "data-harbor_A"))]
upstream = upstream[: int(os.environ["VPAC_BENCH_DEPS"])]  # DEPS_ENV
for i in range(count):
    inputs = cell_inputs(shape, i)
    inputs["payload"] = pulumi.Output.all(*[u.id for u in upstream]).apply(lambda _ids, p=inputs["payload"]: p)
    Shaped(f"cell-{i}", inputs)
"""


def text(length: int, seed: int) -> str:
    """Base64-like filler of one length: what packed values look like to the engine."""
    rng = random.Random(seed)
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(length))


def cell_inputs(shape: str, i: int) -> dict[str, Any]:
    lengths = BEFORE_INPUTS if shape == "before" else SPEC_INPUTS
    return {name: text(n, i * 31 + k) for k, (name, n) in enumerate(lengths.items())}


class ShapedProvider(ResourceProvider):
    serialize_as_secret_always = False

    def create(self, props: dict) -> CreateResult:
        seed = sum(props["payload"].encode()) & 0xFFFF
        if os.environ[SHAPE_ENV] == "before":
            outs = {k: props[k] for k in ("host", "key", "label")}
            outs.update({name: text(n, seed + k) for k, (name, n) in enumerate(BEFORE_OUTPUTS.items())})
        else:
            outs = {name: text(n, seed + k) for k, (name, n) in enumerate(SPEC_OUTPUTS.items())}
        return CreateResult(text(36, seed), {**outs, "counter": seed, "status": "started"})

    def diff(self, _id: str, _olds: dict, _news: dict) -> DiffResult:
        return DiffResult(changes=False)


class Shaped(Resource, module="valohai", name="TrainingPipeline"):
    def __init__(self, name: str, inputs: dict[str, Any]) -> None:
        super().__init__(ShapedProvider(), name, {**inputs, "counter": None, "status": None})


def run(work: Path, shape: str, cells: int, tag: str, deps: int = 2) -> tuple[float, int]:
    """A fresh `up --skip-preview` of `cells` resources of one shape; (seconds, state bytes)."""
    import _harness as h

    root = work / f"{shape}-{tag}"
    (root / "program").mkdir(parents=True)
    (root / "Pulumi.yaml").write_text("name: vpac-bench-shape\nruntime: python\nmain: program/\n")
    (root / "program" / "__main__.py").write_text(PROGRAM)
    env = {**h.pulumi_env(work / f"home-{tag}", None), SHAPE_ENV: shape, CELLS_ENV: str(cells), DEPS_ENV: str(deps)}
    stack = f"s{tag}"
    h.init_stack(root, env, stack)
    seconds, _ = h.pulumi(["up", "--yes", "--skip-preview", "-s", stack], root, env, timeout=3600)
    state = next((work / f"home-{tag}").rglob(f"{stack}.json"))
    resources = json.loads(state.read_text())["checkpoint"]["latest"]["resources"]
    if sum(r["type"].endswith(":TrainingPipeline") for r in resources) != cells + 2:
        raise RuntimeError(f"{shape}: the state holds the wrong resources")
    return seconds, state.stat().st_size


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _harness as h

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=600, help="resources shaped like cells (default 600)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per shape (default 2)")
    parser.add_argument("--deps", type=int, choices=(0, 1, 2), default=2, help="upstream resources (default 2)")
    args = parser.parse_args()
    print(
        f"state_shape: N = {args.cells}, {args.deps} dependencies, {args.repeats} repeat(s)\nmachine: {h.machine()}\n"
    )
    work = h.temp_dir("vpac-bench-shape-")
    times: dict[str, list[float]] = {s: [] for s in SHAPES}
    for r in range(args.repeats):
        for shape in SHAPES if r % 2 == 0 else tuple(reversed(SHAPES)):
            seconds, size = run(work, shape, args.cells, f"{r}{shape}", args.deps)
            times[shape].append(seconds)
            print(f"  run {r + 1}: {shape:6s} up {seconds:6.2f} s, state {size / 1e6:.2f} MB", flush=True)
    before, spec = h.median(times["before"]), h.median(times["spec"])
    print(f"\nmedians: before {before:.2f} s, spec {spec:.2f} s (spec/before {spec / before:.2f})")
    print(f"work dir: {work}  ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
