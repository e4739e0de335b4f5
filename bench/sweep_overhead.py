"""Sweep wall time: `pulumi up` of a fresh stack vs the seed's parallel script, on the same local backend.

    python bench/sweep_overhead.py            # N = 4 (2x2) and 16 (4x4) cells, S = 5 s, 2 repeats
    python bench/sweep_overhead.py --quick    # N = 4 only, 1 repeat
    python bench/sweep_overhead.py --cells 1000 --sleep 0 --repeats 1   # 1,000 cells (20x50): see "At scale"

What is compared, in one run and alternating which goes first:
  (a) ours: `pulumi up --yes` (preview + update, as `make demo` runs it) of a fresh stack of a throw-away
      project whose steps are trivial (see bench/_harness.py), train sleeping S seconds;
  (b) the seed: a faithful re-implementation of its parallel script against a fresh backend project:
      POST every training pipeline, GET them all every 30 s until all are complete, collect the train
      executions, POST predict-models and wait for it. The seed had its data already; to do the same work
      as (a), it first uploads the same code package and runs generate-harbors, polled every 1 s (kinder
      than the seed's 30 s). The prediction is also polled every 1 s. Both choices favour the seed.
Also measured: Pulumi's no-op `up` on the same stack right after (a) (refresh + diff, nothing to do), and
the critical path of (a) from the backend's own execution times: generation + preprocess + train (S) +
predict, which no orchestrator can beat.

Targets (design.md section 6): our overhead over the critical path <= no-op `up` time + 3 s, and our wall
time <= half the seed's at S = 5.

At scale (N >= `SCALE`, issue 17): the seed is not run (its 30 s rounds over 1,000 GETs measure nothing
new); instead Pulumi's floor is measured in the same run: `pulumi up` creating as many `ToolchainProbe`
resources (dynamic, no HTTP) on a fresh stack. Targets: the `up` succeeds (0 errors), no duplicate remote
objects (as many pipelines as cells, one execution per node), `up` start -> first execution <= no-op `up`
+ 1 s, and wall time beyond the critical path <= 1.2x the floor's `up`. The backend runs at most
`MAX_WORKERS` executions at once (a worker per cell would be 1,000 subprocesses on 2 cores), so its queue is
in the wall time; the backend's own span (first execution start -> last end) is printed beside it. The
dynamic-provider process's peak RSS is printed too (`_harness.ProviderPeakRss`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h

from providers.api.statuses import DONE, FAILED
from providers.resources.code_package import build_package
from providers.sweep import payloads
from providers.sweep.config import parse_sweep

SEED_POLL_SECONDS = 30.0
FAST_POLL_SECONDS = 1.0
DEADLINE_SECONDS = 600.0

SHAPES = {4: (2, 2), 16: (4, 4), 1000: (20, 50)}  # cells -> (harbors, epoch values)
SCALE = 1000  # from this size on: the floor instead of the seed
MAX_WORKERS = 24  # backend executions at once


# --- (b) the seed ---------------------------------------------------------------------------------


def wait_executions(api, ids: list[str], poll: float, deadline: float) -> list[dict]:
    while True:
        found = [api.get_execution(i, exclude="outputs,events") for i in ids]
        bad = [e for e in found if e["status"] in FAILED]
        if bad:
            raise RuntimeError(f"seed: execution #{bad[0]['counter']} ended {bad[0]['status']}")
        if all(e["status"] == DONE for e in found):
            return found
        if time.monotonic() > deadline:
            raise RuntimeError("seed: executions did not finish before the deadline")
        time.sleep(poll)


def run_seed(server, root: Path, project_name: str, sweep_raw: dict) -> dict[str, float]:
    """The seed's parallel script (plus the data it took for granted). Returns phase wall times."""
    api = h.api(server)
    sweep = parse_sweep(sweep_raw)
    started = time.perf_counter()
    deadline = time.monotonic() + DEADLINE_SECONDS
    project = api.create_project(project_name, "seed benchmark")
    commit = api.import_package(project["id"], build_package(root))["identifier"]
    generation = [
        api.create_execution(
            payloads.generation_execution(
                commit=commit, project_id=project["id"], harbor=harbor, data=sweep.data, tags=[]
            )
        )
        for harbor in sweep.harbors
    ]
    wait_executions(api, [e["id"] for e in generation], FAST_POLL_SECONDS, deadline)
    data_by_harbor = {}
    for harbor, execution in zip(sweep.harbors, generation, strict=True):
        outputs = {d["name"]: f"datum://{d['id']}" for d in api.execution_outputs(execution["id"])}
        data_by_harbor[harbor] = {
            "images": outputs["images.zip"],
            "labels": outputs[f"train_{harbor}.csv"],
            "test_labels": outputs[f"test_labels_{harbor}.csv"],
        }
    setup_done = time.perf_counter()

    # The seed proper: one POST per cell ...
    config = payloads.load_config((root / "valohai.yaml").read_text())
    pipelines = [
        api.create_pipeline(
            payloads.training_pipeline(
                config,
                commit=commit,
                project_id=project["id"],
                cell=cell,
                sweep=sweep,
                data=data_by_harbor[cell.harbor],
                tags=[],
            )
        )
        for cell in sweep.cells
    ]
    # ... then GET all of them, sleeping 30 s between rounds, until every one is complete ...
    while True:
        current = [api.get_pipeline(p["id"]) for p in pipelines]
        bad = [p for p in current if p["status"] in FAILED]
        if bad:  # the seed would loop forever here
            raise RuntimeError(f"seed: pipeline {bad[0]['title']} ended {bad[0]['status']}")
        if all(p["status"] == DONE for p in current):
            break
        if time.monotonic() > deadline:
            raise RuntimeError("seed: pipelines did not finish before the deadline")
        time.sleep(SEED_POLL_SECONDS)
    # ... then the train node's execution per pipeline (the seed took node 0 by mistake) ...
    train_ids = {}
    for cell, pipeline in zip(sweep.cells, current, strict=True):
        node = next(n for n in pipeline["nodes"] if n["name"] == payloads.TRAIN_NODE)
        train_ids[cell.name] = node["execution"]["id"]
    # ... and the prediction with exec_ids and harbours.
    prediction = api.create_execution(
        payloads.prediction_execution(
            commit=commit,
            project_id=project["id"],
            training_execution_ids=train_ids,
            models=[],
            harbors=list(sweep.harbors),
            data_by_harbor=data_by_harbor,
            tags=[],
        )
    )
    wait_executions(api, [prediction["id"]], FAST_POLL_SECONDS, deadline)
    ended = time.perf_counter()
    return {"total": ended - started, "setup": setup_done - started, "seed_proper": ended - setup_done}


# --- (a) ours -------------------------------------------------------------------------------------


def critical_path(api, project_id: str, up_started: float, up_ended: float) -> dict[str, float]:
    """The longest chain of step run times, from the backend's start/end times, and where the rest went."""
    executions = api.list_executions(project_id)
    t = h.parse_time
    runtime = {e["id"]: (h.parse_time(e["end_time"]) or 0) - (h.parse_time(e["start_time"]) or 0) for e in executions}
    by_step: dict[str, list[dict]] = {}
    for e in executions:
        by_step.setdefault(e["step"], []).append(e)
    generation = max(runtime[e["id"]] for e in by_step["generate-harbors"])
    cells: dict[str, float] = {}
    for e in by_step["preprocess-dataset"] + by_step["train"]:
        cells[e["pipeline"]] = cells.get(e["pipeline"], 0.0) + runtime[e["id"]]
    predict = max(runtime[e["id"]] for e in by_step["predict-models"])
    cell = max(cells.values())
    first_start = min(h.parse_time(e["start_time"]) for e in executions)
    last_end = max(h.parse_time(e["end_time"]) for e in executions)
    gen_created = min(t(e["ctime"]) for e in by_step["generate-harbors"])
    gen_end = max(t(e["end_time"]) for e in by_step["generate-harbors"])
    cells_created = min(t(e["ctime"]) for e in by_step["preprocess-dataset"])
    train_end = max(t(e["end_time"]) for e in by_step["train"])
    predict_e = by_step["predict-models"][0]
    return {
        "critical": generation + cell + predict,
        "generation": generation,
        "cell": cell,
        "predict": predict,
        "backend_span": last_end - first_start,
        # where the wall time outside the steps went:
        "to_first_step": gen_created - up_started,  # CLI, program, preview (+refresh), code upload
        "gen_to_cells": cells_created - gen_end,  # generation wait poll, outputs, 4-at-a-time creates
        "cells_to_predict": t(predict_e["ctime"]) - train_end,  # sweep wait poll + result collection
        "after_predict": up_ended - t(predict_e["end_time"]),  # prediction poll, report download, CLI exit
    }


def run_ours(server, root: Path, work: Path, stack: str, project_name: str, sweep_raw: dict) -> dict[str, float]:
    api = h.api(server)
    project = api.create_project(project_name, "pulumi benchmark")
    h.write_sweep_stack(
        root,
        stack,
        host=server.url,
        project=project_name,
        harbors=list(sweep_raw["harbors"]),
        epochs=list(sweep_raw["epochs"]),
    )
    env = h.pulumi_env(work, server.token)
    h.init_stack(root, env, stack)
    up_started = time.time()
    with h.ProviderPeakRss() as memory:
        up, _ = h.pulumi(["up", "--yes", "-s", stack], root, env, timeout=3600)
    up_ended = time.time()
    noop, result = h.pulumi(["up", "--yes", "-s", stack], root, env, timeout=3600)
    if "unchanged" not in result.stdout or any(w in result.stdout for w in (" created", " replaced", " updated")):
        raise RuntimeError(f"the second `up` was not a no-op:\n{result.stdout[-3000:]}")
    return {
        "up": up,
        "noop_up": noop,
        "rss": memory.peak_mb,
        "duplicates": duplicates(api, project["id"], sweep_raw),
        **critical_path(api, project["id"], up_started, up_ended),
    }


def duplicates(api, project_id: str, sweep_raw: dict) -> int:
    """Remote objects beyond one per cell (pipelines) and one per node (executions): 0 when nothing doubled."""
    harbors, cells = len(sweep_raw["harbors"]), len(sweep_raw["harbors"]) * len(sweep_raw["epochs"])
    expected = {"generate-harbors": harbors, "preprocess-dataset": cells, "train": cells, "predict-models": 1}
    steps: dict[str, int] = {}
    for execution in api.list_executions(project_id):
        steps[execution["step"]] = steps.get(execution["step"], 0) + 1
    extra = sum(max(steps.get(step, 0) - n, 0) for step, n in expected.items())
    return extra + max(len(api.list_pipelines(project_id)) - cells, 0)


def run_floor(work: Path, n_resources: int, stack: str) -> float:
    """Pulumi's own cost of creating as many trivial dynamic resources: `up` of a fresh probe stack."""
    root = h.write_probe_project(work / f"floor-{stack}", stack, n_resources)
    env = h.pulumi_env(work / "floor-home", None)
    h.init_stack(root, env, stack)
    seconds, _ = h.pulumi(["up", "--yes", "-s", stack], root, env, timeout=3600)
    return seconds


# --- at scale: ours against Pulumi's floor ----------------------------------------------------------


def run_at_scale(work: Path, n: int, sleep: float, repeats: int) -> bool:
    """A fresh `up` of N cells and Pulumi's floor for as many resources, alternately; True when targets met."""
    harbors, epochs = SHAPES[n]
    sweep_raw = {"harbors": h.harbor_names(harbors), "epochs": list(range(1, epochs + 1)), "mode": "parallel"}
    resources = n + harbors + 3  # code package, datasets, cells, results, prediction
    root = h.write_sweep_project(work / f"project-{n}", sleep=sleep)
    ours_runs, floors = [], []
    with h.backend(work / f"backend-{n}", workers=min(n + harbors + 1, MAX_WORKERS)) as server:
        for r in range(repeats):
            for which in ("ours", "floor") if r % 2 == 0 else ("floor", "ours"):
                if which == "floor":
                    floors.append(run_floor(work, resources, f"floor{n}r{r}"))
                    print(
                        f"  N={n} run {r + 1}: floor `up` of {resources} trivial dynamic resources {floors[-1]:.2f} s"
                    )
                    continue
                res = run_ours(server, root, work / f"pulumi-{n}", f"n{n}r{r}", f"ours-{n}-{r}", sweep_raw)
                ours_runs.append(res)
                print(
                    f"  N={n} run {r + 1}: ours up {res['up']:.2f} s, no-op up {res['noop_up']:.2f} s, critical path "
                    f"{res['critical']:.2f} s, backend span {res['backend_span']:.2f} s, duplicates "
                    f"{res['duplicates']}, provider peak RSS {res['rss']:.0f} MB\n"
                    f"        start->1st step {res['to_first_step']:.2f}, gen->cells {res['gen_to_cells']:.2f}, "
                    f"cells->predict {res['cells_to_predict']:.2f}, predict->exit {res['after_predict']:.2f}",
                    flush=True,
                )
    med = {k: h.median([x[k] for x in ours_runs]) for k in ("up", "noop_up", "critical", "to_first_step")}
    beyond = h.median([x["up"] - x["critical"] for x in ours_runs])
    floor = h.median(floors)
    dup = max(x["duplicates"] for x in ours_runs)
    first_ok = med["to_first_step"] <= med["noop_up"] + 1.0
    beyond_ok = beyond <= 1.2 * floor
    print(
        f"\nat scale, N={n} (medians, seconds): up {med['up']:.2f}, beyond critical path {beyond:.2f}, floor "
        f"{floor:.2f} (ratio {beyond / floor:.2f}), start->1st step {med['to_first_step']:.2f}, no-op up "
        f"{med['noop_up']:.2f}\n"
        f"targets: 0 errors: MET (every `up` exited 0); 0 duplicates: {'MET' if dup == 0 else 'MISSED'} ({dup}); "
        f"1st step <= no-op up + 1 s: {'MET' if first_ok else 'MISSED'}; beyond critical path <= 1.2x floor: "
        f"{'MET' if beyond_ok else 'MISSED'}\n",
        flush=True,
    )
    return dup == 0 and first_ok and beyond_ok


# --- main -----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 4 only, 1 repeat (a smoke run)")
    parser.add_argument("--cells", type=int, nargs="+", choices=sorted(SHAPES), help="sweep sizes (default 4 16)")
    parser.add_argument("--repeats", type=int, help="runs per size (default 2, quick 1)")
    parser.add_argument("--sleep", type=float, default=5.0, help="seconds the train step sleeps (S, default 5)")
    args = parser.parse_args()
    sizes = args.cells or ([4] if args.quick else [4, 16])
    repeats = args.repeats or (1 if args.quick else 2)

    print(f"sweep_overhead: S = {args.sleep:g} s, sizes {sizes}, {repeats} repeat(s)")
    print(f"machine: {h.machine()}\n")
    work = h.temp_dir("vpac-bench-sweep-")
    summary = []
    all_met = True
    for n in [n for n in sizes if n >= SCALE]:
        all_met &= run_at_scale(work, n, args.sleep, repeats)
    for n in [n for n in sizes if n < SCALE]:
        harbors, epochs = SHAPES[n]
        sweep_raw = {
            "harbors": h.harbor_names(harbors),
            "epochs": list(range(1, epochs + 1)),
            "mode": "parallel",
            "data": {"image_size": 16, "images_per_class": 4, "test_images_per_harbor": 1, "seed": 42},
        }
        workers = n + harbors + 1  # every cell, generation and the prediction can run at once
        root = h.write_sweep_project(work / f"project-{n}", sleep=args.sleep)
        ours_runs, seed_runs = [], []
        with h.backend(work / f"backend-{n}", workers=workers) as server:
            for r in range(repeats):
                order = ("ours", "seed") if r % 2 == 0 else ("seed", "ours")
                for which in order:
                    if which == "ours":
                        res = run_ours(server, root, work / f"pulumi-{n}", f"n{n}r{r}", f"ours-{n}-{r}", sweep_raw)
                        ours_runs.append(res)
                        print(
                            f"  N={n:>2} run {r + 1}: ours  up {res['up']:6.2f} s   no-op up {res['noop_up']:5.2f} s   "
                            f"critical path {res['critical']:5.2f} s (gen {res['generation']:.2f} + cell "
                            f"{res['cell']:.2f} + predict {res['predict']:.2f})\n"
                            f"                    outside the steps: start->1st step {res['to_first_step']:.2f}, "
                            f"gen->cells {res['gen_to_cells']:.2f}, cells->predict {res['cells_to_predict']:.2f}, "
                            f"predict->exit {res['after_predict']:.2f}",
                            flush=True,
                        )
                    else:
                        res = run_seed(server, root, f"seed-{n}-{r}", sweep_raw)
                        seed_runs.append(res)
                        print(
                            f"  N={n:>2} run {r + 1}: seed  total {res['total']:6.2f} s   (setup+generation "
                            f"{res['setup']:.2f} s, the seed's own script {res['seed_proper']:.2f} s)",
                            flush=True,
                        )
        up = h.median([x["up"] for x in ours_runs])
        noop = h.median([x["noop_up"] for x in ours_runs])
        crit = h.median([x["critical"] for x in ours_runs])
        overhead = h.median([x["up"] - x["critical"] for x in ours_runs])
        excess = h.median([x["up"] - x["critical"] - x["noop_up"] for x in ours_runs])
        seed_total = h.median([x["total"] for x in seed_runs])
        seed_proper = h.median([x["seed_proper"] for x in seed_runs])
        ratio = h.median([o["up"] / s["total"] for o, s in zip(ours_runs, seed_runs, strict=False)])
        summary.append((n, up, noop, crit, overhead, excess, seed_total, seed_proper, ratio))
        print()

    if not summary:
        print(f"work dir (state, backend data, logs): {work}")
        return 0 if all_met else 1
    print("medians (seconds)")
    print(
        f"{'N':>3} {'ours up':>8} {'no-op up':>9} {'crit.path':>9} {'overhead':>9} {'excess':>7} "
        f"{'seed':>7} {'seed own':>8} {'ours/seed':>9}  targets"
    )
    for n, up, noop, crit, overhead, excess, seed_total, seed_proper, ratio in summary:
        overhead_ok = excess <= 3.0
        ratio_ok = ratio <= 0.5
        all_met &= overhead_ok and ratio_ok
        print(
            f"{n:>3} {up:8.2f} {noop:9.2f} {crit:9.2f} {overhead:9.2f} {excess:7.2f} {seed_total:7.2f} "
            f"{seed_proper:8.2f} {ratio:9.2f}  overhead-noop<=3s: {'MET' if overhead_ok else 'MISSED'}; "
            f"ours<=seed/2: {'MET' if ratio_ok else 'MISSED'}"
        )
    print(
        "\noverhead = ours up - critical path; excess = overhead - no-op up (target <= 3 s); "
        "ours/seed = median of per-run ratios (target <= 0.5); seed own = the seed script without setup/generation."
    )
    print(f"work dir (state, backend data, logs): {work}")
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
