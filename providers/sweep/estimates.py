"""How long the cells about to run will take, from the project's own history (no Valohai API has this).

A cell is its preprocess and train nodes. Each node's expected duration is, in order:
1. the median duration of completed executions of the same step and the same node content key
   (the `vpac-node:` tag each node's execution carries, `providers.sweep.identity.node_tag`, so a
   re-run in any stack or mode of the same work is recognised);
2. else, from completed executions of the same step whose parameters equal the node's except
   `epochs`, scaled by epochs: a straight line (fixed start-up cost plus a cost per epoch) fitted
   through them when they cover two or more epochs values, else in proportion;
3. else unknown.
A cell is unknown when one of its nodes is. Durations are execution-minutes (wall time of each
execution; two running side by side count twice). Pure: the history is plain dicts as the API lists
pipelines, with their nodes' executions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from statistics import median
from typing import Any

from providers.sweep.identity import node_key, node_tag, node_tag_of


@dataclass(frozen=True)
class Run:
    """One completed execution: its step, node tag (None when it carries none), parameters, minutes."""

    step: str
    key: str | None
    parameters: Mapping[str, Any]
    minutes: float


def history(pipelines: Iterable[Mapping[str, Any]]) -> list[Run]:
    """Every completed node execution of these pipelines, with the node tag its execution carries."""
    runs = []
    for pipeline in pipelines:
        for node in pipeline.get("nodes") or []:
            execution = node.get("execution") or {}
            duration = execution.get("duration")
            if execution.get("status") != "complete" or not isinstance(duration, (int, float)) or duration <= 0:
                continue
            runs.append(
                Run(
                    step=str(execution.get("step")),
                    key=node_tag_of(execution.get("tags")),
                    parameters=execution.get("parameters") or {},
                    minutes=duration / 60,
                )
            )
    return runs


def _same(a: Any, b: Any) -> bool:
    """Equal as parameter values: 2 and 2.0 and "2" (the API may echo numbers as text) are the same."""
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@dataclass(frozen=True)
class Estimate:
    minutes: float | None
    basis: str  # how it was found, for the plan line


def estimate_node(runs: list[Run], step: str, identity: dict[str, Any], parameters: Mapping[str, Any]) -> Estimate:
    key = node_tag(node_key(identity))
    same_node = [r.minutes for r in runs if r.step == step and r.key == key]
    if same_node:
        return Estimate(median(same_node), f"median of {len(same_node)} runs of this node")
    epochs = parameters.get("epochs")
    others = {k: v for k, v in parameters.items() if k != "epochs"}
    similar = [
        r
        for r in runs
        if r.step == step
        and all(k in r.parameters and _same(r.parameters[k], v) for k, v in others.items())
        and (epochs is None or _epochs(r) is not None)
    ]
    if not similar:
        return Estimate(None, "unknown")
    if epochs is None:
        return Estimate(median(r.minutes for r in similar), f"median of {len(similar)} runs with these parameters")
    points = [(float(_epochs(r) or 0), r.minutes) for r in similar]
    return Estimate(scale_by_epochs(points, float(epochs)), f"{len(similar)} runs scaled by epochs")


def _epochs(run: Run) -> float | None:
    try:
        value = float(run.parameters["epochs"])
    except (KeyError, TypeError, ValueError):
        return None
    return value if value > 0 else None


def scale_by_epochs(points: list[tuple[float, float]], epochs: float) -> float:
    """Minutes at `epochs` from (epochs, minutes) points: a least-squares line `a + b*epochs` (a, b >= 0)
    when the points cover two or more epochs values, else the median minutes per epoch times epochs."""
    xs = {x for x, _ in points}
    if len(xs) >= 2:
        n = len(points)
        mean_x = sum(x for x, _ in points) / n
        mean_y = sum(y for _, y in points) / n
        slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x, _ in points)
        slope = max(slope, 0.0)
        start = max(mean_y - slope * mean_x, 0.0)
        return start + slope * epochs
    return median(y / x for x, y in points) * epochs


def estimate_cell(runs: list[Run], nodes: Mapping[str, tuple[str, dict[str, Any], Mapping[str, Any]]]) -> Estimate:
    """A cell's estimate: the sum over its nodes (node name -> (step, identity, parameters))."""
    parts = {node: estimate_node(runs, step, identity, params) for node, (step, identity, params) in nodes.items()}
    unknown = [node for node, p in parts.items() if p.minutes is None]
    if unknown:
        return Estimate(None, f"no history for {', '.join(unknown)}")
    basis = "; ".join(f"{node}: {p.basis}" for node, p in parts.items())
    return Estimate(sum(p.minutes or 0.0 for p in parts.values()), basis)


def over_budget(estimates: Mapping[str, Estimate], budget: float) -> str | None:
    """The refusal message when the known estimates add up to more than `budget` minutes, else None."""
    total = sum(e.minutes or 0.0 for e in estimates.values())
    if total <= budget:
        return None
    biggest = sorted(((e.minutes or 0.0, name) for name, e in estimates.items()), reverse=True)[:3]
    named = ", ".join(f"{name} ({minutes:.1f} min)" for minutes, name in biggest)
    return (
        f"the cells to run are estimated at {total:.1f} execution-minutes, over budget_execution_minutes "
        f"{budget:g}; the biggest: {named}. Nothing was created: raise the budget or run fewer cells"
    )
