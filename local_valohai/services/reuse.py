"""Reusing finished work inside a new pipeline: `mimic` nodes and `reuse_executions`.

Valohai's semantics (valohai-cli 0.37, valohai_cli/commands/pipeline/run/reuse.py and run.py): `vh pipeline
run --reuse=<counter>:<glob>` replaces a converted node by `{"type": "mimic", "name": <name>, "source":
<id of the node in the earlier pipeline>}`; such a node does not run, it stands for its source node's
execution (outputs, metadata, status) inside the new pipeline, and edges from it feed downstream nodes as
usual (run.py refuses parameters for a mimic node: it has nothing to run). A pipeline may also ask Valohai
to find such sources itself, `reuse-executions: true` in valohai.yaml (valohai-yaml 0.61,
valohai_yaml/schema_data.py: "the execution is considered unchanged when the step's data doesn't change
(inputs, command, commit hash, parameters, step's configuration)"). That the API body spells it
`reuse_executions` is unverified (the converter does not emit it); both spellings are accepted here.

The local backend: a mimic's source must be a node of a pipeline of the same project whose node and
execution both ended `complete` and whose execution is not deleted; anything else is a 400 naming the node
and the source. The source's pipeline may be deleted: deleting a pipeline keeps its executions and their
outputs (see local_valohai/routers/pipelines.py), and a replaced pipeline that was still running is deleted
(stopped) before its replacement, whose mimic nodes point at the nodes it had already finished. Whether
real Valohai accepts a source in a deleted pipeline is unverified. Reuse by
match compares the commit, step, image, command, parameters (defaults included) and the sha256 of every
input file with the project's completed executions.
"""

from __future__ import annotations

from typing import Any

from providers.api.statuses import COMPLETE

from .. import db
from ..db import Row, Store, Transaction, loads
from ..errors import bad_request
from .commits import commit_config, resolve_commit
from .executions import ExecutionSpec, _command, _inputs, find_step, validate_parameters


def mimic_source(store: Store, project_id: str, name: str, node: dict[str, Any]) -> tuple[Row, Row]:
    """The (source node, its execution) a mimic node stands for; a 400 unless it completed in this project."""
    source_id = node.get("source")
    if not isinstance(source_id, str) or not source_id:
        raise bad_request(
            "nodes", f"Node {name!r}: a mimic node needs `source`, the id of a node of an earlier pipeline"
        )
    source = db.nodes.get(store, source_id)
    pipeline = db.pipelines.get(store, source["pipeline_id"]) if source else None
    if source is None or pipeline is None or pipeline["project_id"] != project_id:
        raise bad_request("nodes", f"Node {name!r}: mimic source node {source_id!r} not found in this project")
    execution = db.executions.get(store, source["execution_id"]) if source["execution_id"] else None
    if execution is None or execution["deleted"]:
        raise bad_request(
            "nodes", f"Node {name!r}: mimic source node {source_id!r} has no execution to reuse (it never ran)"
        )
    if source["status"] != COMPLETE or execution["status"] != COMPLETE:
        raise bad_request(
            "nodes",
            f"Node {name!r}: mimic source node {source_id!r} (pipeline #{pipeline['counter']}) is "
            f"{execution['status']}, only a complete node can be reused; run it again instead",
        )
    return source, execution


def _checksums(input_files: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    return {name: sorted(f.get("sha256") or "" for f in files) for name, files in sorted(input_files.items())}


def fingerprint(store: Store, secret: str, spec: ExecutionSpec) -> dict[str, Any]:
    """What `reuse_executions` compares, resolved as `create_execution` would resolve it."""
    commit = resolve_commit(store, spec.project_id, spec.commit)
    step = find_step(commit_config(commit), spec.step, commit["identifier"])
    given = validate_parameters(step, spec.parameters)
    parameters = {**step.get_parameter_defaults(include_flags=True), **given}
    _, input_files = _inputs(store, secret, spec, step, parameters)
    return {
        "commit": commit["identifier"],
        "step": step.name,
        "image": spec.image or step.image,
        "command": _command(step, given, spec.command),
        "parameters": parameters,
        "inputs": _checksums(input_files),
    }


def find_reusable(tx: Transaction, store: Store, secret: str, spec: ExecutionSpec) -> Row | None:
    """The newest complete, undeleted execution of the project with the same fingerprint, if any."""
    wanted = fingerprint(store, secret, spec)
    rows = tx.all(
        "SELECT * FROM executions WHERE project_id=? AND step=? AND commit_identifier=? AND status=? AND deleted=0"
        " ORDER BY counter DESC",
        (spec.project_id, wanted["step"], wanted["commit"], COMPLETE),
    )
    for row in rows:
        if (
            row["image"] == wanted["image"]
            and row["command"] == wanted["command"]
            and loads(row["parameters"]) == wanted["parameters"]
            and _checksums(loads(row["input_files"]) or {}) == wanted["inputs"]
        ):
            return row
    return None
