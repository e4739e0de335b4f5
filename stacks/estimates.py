"""Cost and time in the plan: before anything is declared, print the expected duration of every cell
that will run (of the longest, for large sweeps: `estimate_lines`) and their total in execution-minutes,
and refuse when `budget_execution_minutes` is exceeded (`providers.sweep.estimates` does the arithmetic).

A cell "will run" unless the project holds a pipeline with its content tag that did not fail (what
`TrainingPipeline.create` would adopt, or what the state already has). History is every pipeline of
the project, deleted ones included (`?deleted=true` on the local backend; on Valohai unverified), so
the pipelines replaced by earlier runs still count.
"""

from __future__ import annotations

from collections.abc import Callable

import pulumi

from providers.api.client import ValohaiClient
from providers.api.errors import ValohaiError
from providers.api.statuses import is_failed
from providers.sweep import payloads
from providers.sweep.config import Sweep
from providers.sweep.estimates import Estimate, estimate_cell, history, over_budget
from providers.sweep.identity import content_tag, resource_key


def cells_to_run(pipelines: list[dict], sweep: Sweep, cell_keys: dict[str, str], sweep_key: str) -> list[str]:
    live = {tag for p in pipelines if not is_failed(p.get("status")) for tag in p.get("tags") or []}
    if sweep.mode == "single":
        return [] if content_tag(sweep_key) in live else [c.name for c in sweep.cells]
    return [c.name for c in sweep.cells if content_tag(cell_keys[c.name]) not in live]


NODE_STEPS = {payloads.PREPROCESS_NODE: "preprocess-dataset", payloads.TRAIN_NODE: "train"}
PER_CELL_LINES = 25  # up to this many cells to run, one line each; beyond, the longest and the rest counted
LONGEST_SHOWN = 10


def estimate_lines(estimates: dict[str, Estimate]) -> list[str]:
    """The plan's lines before the total: one per cell to run, `estimate: <cell>: <n> min (<basis>)`; for more
    than `PER_CELL_LINES` cells, the `LONGEST_SHOWN` longest, one line for the other estimated cells and one
    per reason the rest are unknown. Why: a 1,000-cell sweep printed 1,000 lines (each a message the program
    sends the engine before it declares anything) that nobody reads; the total and the biggest cells are the
    decision."""

    def line(name: str, estimate: Estimate) -> str:
        if estimate.minutes is None:
            return f"estimate: {name}: unknown ({estimate.basis})"
        return f"estimate: {name}: {estimate.minutes:.2f} min ({estimate.basis})"

    if len(estimates) <= PER_CELL_LINES:
        return [line(name, e) for name, e in estimates.items()]
    known = sorted(
        ((n, e) for n, e in estimates.items() if e.minutes is not None), key=lambda ne: -(ne[1].minutes or 0)
    )
    lines = [line(name, e) for name, e in known[:LONGEST_SHOWN]]
    rest = known[LONGEST_SHOWN:]
    if rest:
        minutes = sum(e.minutes or 0.0 for _, e in rest)
        lines.append(f"estimate: {len(rest)} other cell(s): {minutes:.2f} min in all")
    unknown: dict[str, int] = {}
    for e in estimates.values():
        if e.minutes is None:
            unknown[e.basis] = unknown.get(e.basis, 0) + 1
    lines += [f"estimate: {count} cell(s): unknown ({basis})" for basis, count in sorted(unknown.items())]
    return lines


def check(
    api: ValohaiClient,
    project: str,
    stack: str,
    sweep: Sweep,
    cells_identity: dict,
    sweep_identity: dict,
    cell_keys: dict[str, str],
    listed: Callable[[], list[dict]] | None = None,
) -> dict[str, Estimate]:
    """Print the estimates; raise `pulumi.RunError` over budget (call it before any resource is declared).

    `cells_identity` and `sweep_identity` are `stacks.program.StackKeys.cells` and `.sweep`, `cell_keys` the
    cells' resource keys (`StackContext.cell_keys`); `listed`, when given, lists the project's current
    pipelines (shared with reuse). The deleted pipelines are listed only
    when some cell will run: a run that creates nothing has nothing to estimate."""
    sweep_key = resource_key("sweep", stack, sweep_identity)
    try:
        project_id = api.resolve_project(project)["id"]
        current = listed() if listed is not None else api.list_pipelines(project_id)
        to_run = set(cells_to_run(current, sweep, cell_keys, sweep_key))
        past = current + api.list_pipelines(project_id, deleted="true") if to_run else current
    except ValohaiError as exc:
        if sweep.budget_execution_minutes is not None:
            raise pulumi.RunError(
                f"cannot check budget_execution_minutes: the pipeline history is unavailable ({exc})"
            ) from None
        pulumi.log.warn(f"estimate: unavailable ({exc})")
        return {}
    runs = history(past)
    estimates: dict[str, Estimate] = {}
    for cell in sweep.cells:
        if cell.name not in to_run:
            continue
        parameters = payloads.cell_parameters(cell, sweep)
        nodes = {node: (step, cells_identity[cell.name][node], parameters[node]) for node, step in NODE_STEPS.items()}
        estimates[cell.name] = estimate_cell(runs, nodes)
    for line in estimate_lines(estimates):
        pulumi.log.info(line)
    total = sum(e.minutes or 0.0 for e in estimates.values())
    unknown = sum(1 for e in estimates.values() if e.minutes is None)
    pulumi.log.info(
        f"estimate: {len(estimates)} cell(s) to run, {total:.1f} execution-minutes"
        + (f" ({unknown} unknown, not counted)" if unknown else "")
    )
    if sweep.budget_execution_minutes is not None:
        refusal = over_budget(estimates, sweep.budget_execution_minutes)
        if refusal:
            raise pulumi.RunError(refusal)
    return estimates
