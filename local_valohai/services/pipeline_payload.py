"""Creating a pipeline: validate the payload per concern (nodes, edges, parameters, inputs), then insert it.

The payload may come from valohai-yaml's PipelineConverter (hyphenated keys) or be hand-written
(underscored keys); both are normalised here. Every check runs before the first insert, so a rejected
payload leaves nothing behind; the root nodes are started afterwards by the scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from valohai_yaml.objs import Step

from providers.api.statuses import CREATED

from .. import db
from ..db import Store, Transaction, loads, new_id, now_iso
from ..db.nodes import EDGE_ENDS
from ..errors import ApiError, bad_request, flatten
from ..settings import Limits
from ..validation import string_list, text
from .commits import commit_config, resolve_commit
from .executions import DEFAULT_LIMITS, ExecutionSpec, check_spec, find_step, safe_name, validate_parameters
from .reuse import mimic_source

ON_ERROR = ("stop-all", "stop-next", "continue", "retry")
MERGE_MODES = ("replace", "append")
SOURCE_TYPES = ("output", "metadata", "parameter", "input", "environment-variable", "dependency")
TARGET_TYPES = ("input", "parameter", "environment-variable", "dependency")


@dataclass
class PlannedNode:
    """A validated node: its step from the commit's valohai.yaml and the execution template to start.

    A mimic node (`services.reuse`) carries its source's execution instead and never starts.
    """

    name: str
    step: Step
    on_error: str
    merge: str
    template: dict[str, Any]
    mimic_execution: str | None = None


def _pick(d: dict[str, Any], *names: str, default: Any = None) -> Any:
    for name in names:
        if name in d:
            return d[name]
    return default


def _title_and_tags(payload: dict[str, Any], limits: Limits) -> tuple[str, list[str]]:
    title = text(payload.get("title"), "title", limits.title) or "Pipeline"
    return title, string_list(payload.get("tags"), "tags", limits.tags, limits.tag)


def _node_policies(node: dict[str, Any], name: str) -> tuple[str, str]:
    """(on-error policy, edge merge mode), defaults `stop-all` and `replace`."""
    node_type = node.get("type", "execution")
    if node_type not in ("execution", "mimic"):
        raise bad_request(
            "nodes",
            f"Node {name!r}: type {node_type!r} is not supported by the local backend (only 'execution' and 'mimic')",
        )
    on_error = _pick(node, "on-error", "on_error", default="stop-all") or "stop-all"
    if on_error not in ON_ERROR:
        raise bad_request("nodes", f"Node {name!r}: on-error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    merge_mode = _pick(node, "edge-merge-mode", "edge_merge_mode", default="replace") or "replace"
    if merge_mode not in MERGE_MODES:
        raise bad_request("nodes", f"Node {name!r}: edge-merge-mode must be 'replace' or 'append'")
    return on_error, merge_mode


def _mimic(store: Store, project_id: str, name: str, node: dict[str, Any]) -> PlannedNode:
    """A node standing for a completed node of an earlier pipeline: its template, step and execution."""
    on_error, merge_mode = _node_policies(node, name)
    source, execution = mimic_source(store, project_id, name, node)
    template = {**loads(source["template"]), "mimic_of": source["id"]}
    commit = resolve_commit(store, project_id, template["commit"], "nodes")
    step = find_step(commit_config(commit), template["step"], commit["identifier"])
    return PlannedNode(name, step, on_error, merge_mode, template, mimic_execution=execution["id"])


def _node(store: Store, project_id: str, name: str, node: dict[str, Any], limits: Limits) -> PlannedNode:
    if node.get("type") == "mimic":
        return _mimic(store, project_id, name, node)
    on_error, merge_mode = _node_policies(node, name)
    template = node.get("template")
    if not isinstance(template, dict) or not template.get("step"):
        raise bad_request("nodes", f"Node {name!r} needs a template with a step")
    spec = ExecutionSpec(
        project_id=project_id,
        step=template["step"],
        commit=template.get("commit"),
        parameters=template.get("parameters"),  # type: ignore[arg-type]  # checked just below
        inputs=template.get("inputs"),  # type: ignore[arg-type]
        environment_variables=_pick(template, "environment_variables", "environment-variables"),
        tags=template.get("tags"),  # type: ignore[arg-type]
        runtime_config=template.get("runtime_config"),  # type: ignore[arg-type]
        time_limit=_pick(template, "time_limit", "time-limit"),
        title=template.get("title") or template.get("name") or name,
        image=template.get("image"),
        command=template.get("command"),
        environment=template.get("environment"),
        priority=template.get("priority"),
    )
    try:
        check_spec(spec, limits)
    except ApiError as exc:
        raise ApiError(exc.status, {"nodes": [f"Node {name!r}: {flatten(exc.body)}"]}) from exc
    commit = resolve_commit(store, project_id, spec.commit, "nodes")
    step = find_step(commit_config(commit), spec.step, commit["identifier"])
    for input_name in spec.inputs:
        safe_name(input_name, "input name", "nodes")
        if input_name not in step.inputs:
            raise bad_request("nodes", f"Node {name!r}: unknown input {input_name!r} for step {step.name!r}")
    clean = {
        "commit": commit["identifier"],
        "step": step.name,
        "title": spec.title,
        "image": spec.image,
        "command": spec.command,
        "parameters": dict(spec.parameters),
        "inputs": spec.inputs,
        "environment_variables": dict(spec.environment_variables),
        "runtime_config": spec.runtime_config,
        "time_limit": spec.time_limit,
        "tags": spec.tags,
        "environment": spec.environment,
        "priority": spec.priority,
    }
    return PlannedNode(name=name, step=step, on_error=on_error, merge=merge_mode, template=clean)


def _node_list(payload: dict[str, Any]) -> list[Any]:
    nodes_in = payload.get("nodes")
    if not isinstance(nodes_in, list) or not nodes_in:
        raise bad_request("nodes", "A pipeline needs a non-empty list of nodes")
    return nodes_in


def _nodes(store: Store, project_id: str, nodes_in: list[Any], limits: Limits) -> dict[str, PlannedNode]:
    nodes: dict[str, PlannedNode] = {}
    for index, node in enumerate(nodes_in):
        if not isinstance(node, dict):
            raise bad_request("nodes", f"Node #{index} must be an object")
        name = node.get("name")
        if not isinstance(name, str) or not name:
            raise bad_request("nodes", f"Node #{index} needs a name")
        safe_name(name, "node name", "nodes")
        if name in nodes:
            raise bad_request("nodes", f"Duplicate node name {name!r}")
        nodes[name] = _node(store, project_id, name, node, limits)
    return nodes


def _edge(index: int, edge: Any, nodes: dict[str, PlannedNode]) -> dict[str, Any]:
    if not isinstance(edge, dict):
        raise bad_request("edges", f"Edge #{index} must be an object")
    e: dict[str, Any] = {k: edge.get(k) for k in EDGE_ENDS}
    for key, value in e.items():
        if not isinstance(value, str) or not value:
            raise bad_request("edges", f"Edge #{index}: {key} is required")
    label = f"Edge {e['source_node']}.{e['source_type']}.{e['source_key']} -> {e['target_node']}.{e['target_type']}.{e['target_key']}"
    for end in ("source_node", "target_node"):
        if e[end] not in nodes:
            raise bad_request("edges", f"{label}: unknown node {e[end]!r}")
    if e["source_type"] not in SOURCE_TYPES:
        raise bad_request("edges", f"{label}: source type must be one of {', '.join(SOURCE_TYPES)}")
    if e["target_type"] not in TARGET_TYPES:
        raise bad_request(
            "edges", f"{label}: target type {e['target_type']!r} is not supported (use {', '.join(TARGET_TYPES)})"
        )
    target_step = nodes[e["target_node"]].step
    if e["target_type"] == "parameter" and e["target_key"] not in target_step.parameters:
        raise bad_request("edges", f"{label}: step {target_step.name!r} has no parameter {e['target_key']!r}")
    if e["target_type"] == "input" and e["target_key"] not in target_step.inputs:
        raise bad_request("edges", f"{label}: step {target_step.name!r} has no input {e['target_key']!r}")
    if e["source_node"] == e["target_node"]:
        raise bad_request("edges", f"{label}: a node cannot feed itself")
    e["configuration"] = edge.get("configuration") or {}
    return e


def _edges(payload: dict[str, Any], nodes: dict[str, PlannedNode]) -> list[dict[str, Any]]:
    edges_in = payload.get("edges") or []
    if not isinstance(edges_in, list):
        raise bad_request("edges", "Expected a list of edges")
    edges = [_edge(index, edge, nodes) for index, edge in enumerate(edges_in)]
    _check_acyclic(list(nodes), edges)
    return edges


def _check_acyclic(names: list[str], edges: list[dict[str, Any]]) -> None:
    incoming = {n: {e["source_node"] for e in edges if e["target_node"] == n} for n in names}
    done: set[str] = set()
    while len(done) < len(names):
        ready = [n for n in names if n not in done and incoming[n] <= done]
        if not ready:
            raise bad_request(
                "edges", "The edges form a cycle between nodes: " + ", ".join(n for n in names if n not in done)
            )
        done.update(ready)


def _expression_value(expression: Any) -> Any:
    """A pipeline parameter expression is a value, or a variant `{"style": "single", "rules": {"value": [...]}}`."""
    if isinstance(expression, dict) and "rules" in expression:
        value = (expression.get("rules") or {}).get("value")
        if isinstance(value, list) and len(value) == 1:
            return value[0]
        return value
    return expression


def _apply_parameters(payload: dict[str, Any], nodes: dict[str, PlannedNode]) -> dict[str, Any]:
    """Write each pipeline parameter's value into the node parameters it targets (`node.parameter.name`)."""
    parameters = payload.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise bad_request("parameters", "Expected an object of pipeline parameters")
    for pname, pdef in parameters.items():
        if not isinstance(pdef, dict):
            raise bad_request("parameters", f"Pipeline parameter {pname!r} must be an object")
        config = pdef.get("config") or {}
        if not isinstance(config, dict):
            raise bad_request("parameters", f"Pipeline parameter {pname!r}: config must be an object")
        targets = config.get("targets") or ([config["target"]] if config.get("target") else [])
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise bad_request(
                "parameters", f"Pipeline parameter {pname!r}: targets must be a list of node.parameter.name"
            )
        value = _expression_value(pdef["expression"]) if "expression" in pdef else config.get("default")
        for target in targets:
            parts = str(target).split(".", 2)
            if len(parts) != 3 or parts[1] != "parameter" or parts[0] not in nodes:
                raise bad_request(
                    "parameters", f"Pipeline parameter {pname!r}: bad target {target!r} (expected node.parameter.name)"
                )
            node = nodes[parts[0]]
            if node.mimic_execution:
                continue  # a mimic node runs nothing: its source's values stand
            if parts[2] not in node.step.parameters:
                raise bad_request(
                    "parameters", f"Pipeline parameter {pname!r}: step {node.step.name!r} has no parameter {parts[2]!r}"
                )
            if value is not None:
                node.template["parameters"][parts[2]] = value
    return parameters


def _check_values_and_inputs(nodes: dict[str, PlannedNode], edges: list[dict[str, Any]]) -> None:
    """Early, clear errors for bad parameter values and required inputs nothing feeds (edges may still override)."""
    for node in nodes.values():
        if node.mimic_execution:
            continue
        validate_parameters(node.step, dict(node.template["parameters"]), "parameters")
        fed = {e["target_key"] for e in edges if e["target_node"] == node.name and e["target_type"] == "input"}
        for input_name, inp in node.step.inputs.items():
            given = node.template["inputs"].get(input_name)
            has_uris = bool(given) if given is not None else bool(inp.default)
            if not inp.optional and not has_uris and input_name not in fed:
                raise bad_request(
                    "nodes", f"Node {node.name!r}: input {input_name!r} is required but has no URI, default or edge"
                )


def create_pipeline(
    tx: Transaction, store: Store, project_id: str, payload: dict[str, Any], limits: Limits = DEFAULT_LIMITS
) -> str:
    """Validate the payload and insert the pipeline, its nodes and edges; root nodes start in `advance`."""
    nodes_in = _node_list(payload)
    title, tags = _title_and_tags(payload, limits)
    reuse = _pick(payload, "reuse_executions", "reuse-executions", default=False)
    if not isinstance(reuse, bool):
        raise bad_request("reuse_executions", f"Expected true or false, got {reuse!r}")
    nodes = _nodes(store, project_id, nodes_in, limits)
    edges = _edges(payload, nodes)
    parameters = _apply_parameters(payload, nodes)
    _check_values_and_inputs(nodes, edges)

    pipeline_id = new_id()
    counter = db.listing.next_counter(tx, "pipelines", project_id)
    db.pipelines.insert(tx, pipeline_id, project_id, counter, title, CREATED, tags, parameters, now_iso(), reuse)
    ids = {name: new_id() for name in nodes}
    for position, node in enumerate(nodes.values()):
        db.nodes.insert_node(
            tx, ids[node.name], pipeline_id, position, node.name, node.on_error, node.merge, node.template
        )
        if node.mimic_execution:
            db.nodes.mimic(tx, ids[node.name], node.mimic_execution)
            message = f"Reused: mimics node {node.template['mimic_of']} (its execution, outputs and metadata)"
            db.pipelines.append_log(tx, "nodes", ids[node.name], message)
    for position, e in enumerate(edges):
        ends = {
            **{k: e[k] for k in EDGE_ENDS},
            "source_node": ids[e["source_node"]],
            "target_node": ids[e["target_node"]],
        }
        db.nodes.insert_edge(tx, pipeline_id, position, ends, e["configuration"])
    return pipeline_id
