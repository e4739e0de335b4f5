"""Reuse finished work: which nodes of a pipeline about to be created become mimics of completed nodes.

Each execution node carries its content key as a `vpac-node:` tag (`tag_nodes`), so any later pipeline can
find, per node, a completed node of this stack with the same key (`completed_sources`, from the project's
pipelines as the API lists them) and put `{"type": "mimic", "name": …, "source": <node id>}` in its place
(`with_mimics`): the shape `vh pipeline run --reuse` sends (valohai-cli 0.37,
valohai_cli/commands/pipeline/run/reuse.py). A mimic does not run; it stands for its source's execution, so
edges from it feed downstream nodes and the cell's training execution stays the one that trained.

A source must be a node whose own status and whose execution's status are both `complete`, in a pipeline
that is not deleted: failed, stopped, deleted or unfinished work is never reused (a failed pipeline's
completed preprocess node is, which is how a failed train re-runs alone). Those rules live here only:
the program hands this module every candidate pipeline it read, from the stack's state or by tag
(stacks/reuse.py). Pure: no HTTP, no Pulumi.

The report says which cells were reused: `with_mimics` gives the predict node of a pipeline it changes the
`reused_cells` parameter (`payloads.reused_parameter`), cell -> `pipeline #N` of its training execution.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from providers.api.statuses import COMPLETE
from providers.sweep.identity import NODE_TAG_PREFIX, node_tags
from providers.sweep.payloads import PREDICT_NODE, REUSED_PARAMETER, TRAIN_NODE, reused_parameter

# The two line shapes below, as `toolchain/plan_explain.py` reads them back from the engine's diagnostics.
REUSE_LINE = re.compile(r"^(?P<name>\S+): reuse (?P<node>\S+) from (?P<source>pipeline #\S+) \(same key\)$")
SUMMARY_LINE = re.compile(r"^reuse: (?P<to_run>\d+) nodes to run, (?P<reused>\d+) reused$")


@dataclass(frozen=True)
class Source:
    """A completed node another pipeline can mimic."""

    node_id: str
    node_name: str
    pipeline_id: str
    pipeline_counter: int | None
    execution_id: str
    execution_counter: int | None


def pipeline_label(counter: int | None) -> str:
    """How the plan, the outputs and the report name the pipeline a reused node ran in."""
    return f"pipeline #{counter}"


def tag_nodes(payload: Mapping[str, Any], identity: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The payload with each identified execution node's tag added to its template's tags."""
    tags = node_tags(identity)
    out = copy.deepcopy(dict(payload))
    for node in out["nodes"]:
        if node.get("type", "execution") == "execution" and node["name"] in tags:
            template = node.setdefault("template", {})
            template["tags"] = [*(template.get("tags") or []), tags[node["name"]]]
    return out


def completed_sources(pipelines: Iterable[Mapping[str, Any]]) -> dict[str, Source]:
    """Node tag -> the newest completed node carrying it (pipelines listed newest first)."""
    found: dict[str, Source] = {}
    for pipeline in pipelines:
        if pipeline.get("deleted"):
            continue
        for node in pipeline.get("nodes") or []:
            execution = node.get("execution") or {}
            if node.get("status") != COMPLETE or execution.get("status") != COMPLETE or execution.get("deleted"):
                continue
            for tag in execution.get("tags") or []:
                if isinstance(tag, str) and tag.startswith(NODE_TAG_PREFIX):
                    found.setdefault(
                        tag,
                        Source(
                            node_id=node["id"],
                            node_name=node["name"],
                            pipeline_id=pipeline["id"],
                            pipeline_counter=pipeline.get("counter"),
                            execution_id=execution["id"],
                            execution_counter=execution.get("counter"),
                        ),
                    )
    return found


def plan_reuse(
    identity: Mapping[str, Mapping[str, Any]], sources: Mapping[str, Source], *, skip: Iterable[str] = ()
) -> dict[str, Source]:
    """Node name -> the source it will mimic, for every node whose key completed before (not in `skip`)."""
    skipped = set(skip)
    chosen = {}
    for name, tag in node_tags(identity).items():
        if name not in skipped and tag in sources:
            chosen[name] = sources[tag]
    return chosen


def reused_cells(reuse: Mapping[str, Source], cell_of: Mapping[str, str]) -> dict[str, str]:
    """Cell -> `pipeline #N` for each cell whose train node (`train`, or `train-<slug>` in single mode) is
    planned as a mimic: its model was trained there."""
    return {
        cell_of[name]: pipeline_label(source.pipeline_counter)
        for name, source in reuse.items()
        if name.split("-", 1)[0] == TRAIN_NODE and name in cell_of
    }


def with_mimics(
    payload: Mapping[str, Any], reuse: Mapping[str, Source], cell_of: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The payload with each reused node replaced by a mimic of its source (edges untouched), and its predict
    node (single mode), when it runs, told which cells were reused (`cell_of`: node name -> cell). Nothing
    reused: the payload as it is (a shallow copy; the program calls this once per cell)."""
    if not reuse:
        return dict(payload)
    out = copy.deepcopy(dict(payload))
    out["nodes"] = [
        {"type": "mimic", "name": n["name"], "source": reuse[n["name"]].node_id} if n["name"] in reuse else n
        for n in out["nodes"]
    ]
    cells = reused_cells(reuse, cell_of or {})
    for node in out["nodes"]:
        if node["name"] == PREDICT_NODE and node.get("type", "execution") == "execution" and cells:
            node.setdefault("template", {}).setdefault("parameters", {})[REUSED_PARAMETER] = reused_parameter(cells)
    return out


def plan_lines(label_of: Mapping[str, str], node_of: Mapping[str, str], reuse: Mapping[str, Source]) -> list[str]:
    """One line per reused node: `harbor_A/epochs-2: reuse train from pipeline #7 (same key)`."""
    return [
        f"{label_of[name]}: reuse {node_of[name]} from {pipeline_label(source.pipeline_counter)} (same key)"
        for name, source in reuse.items()
    ]


def summary_line(to_run: int, reused: int) -> str:
    return f"reuse: {to_run} nodes to run, {reused} reused"
