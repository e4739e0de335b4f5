"""What a pipeline node runs: its template plus the values its incoming edges carry from finished sources.

Edges follow Valohai's kinds: output → input (glob on the file name), input → input (glob on the input
name), metadata / parameter / environment-variable → parameter, environment variable or input.
"""

from __future__ import annotations

import fnmatch
import posixpath
from typing import Any

from .. import db
from ..db import Row, Transaction, loads
from ..errors import bad_request
from .executions import ExecutionSpec

Node = dict[str, Any]  # a nodes row as a dict, its status kept current by the scheduler


def _output_uris(tx: Transaction, source_execution: Row, pattern: str) -> list[str]:
    """`datum://` URIs of the source's outputs whose path or file name matches the edge's glob."""
    return [
        f"datum://{d['id']}"
        for d in db.datums.outputs_of(tx, source_execution["id"])
        if fnmatch.fnmatchcase(d["name"], pattern) or fnmatch.fnmatchcase(posixpath.basename(d["name"]), pattern)
    ]


def _copy_inputs(source_execution: Row, edge: Row, edge_inputs: dict[str, list[str]]) -> None:
    """The URIs of the source's inputs whose name matches the edge's glob."""
    for name, urls in (loads(source_execution["inputs"]) or {}).items():
        if fnmatch.fnmatchcase(name, edge["source_key"]):
            edge_inputs.setdefault(edge["target_key"], []).extend(urls)


def _value(edge: Row, source: Node, source_execution: Row) -> Any:
    """The metadata value, parameter value or environment variable the edge reads from its source."""
    label = f"edge {source['name']}.{edge['source_type']}.{edge['source_key']}"
    key = edge["source_key"]
    if edge["source_type"] == "metadata":
        cumulative = loads(source_execution["cumulative_metadata"]) or {}
        if key not in cumulative:
            raise bad_request("edges", f"{label}: node {source['name']!r} never logged metadata key {key!r}")
        return cumulative[key]
    if edge["source_type"] == "parameter":
        source_params = loads(source_execution["parameters"]) or {}
        if key not in source_params:
            raise bad_request("edges", f"{label}: node {source['name']!r} has no parameter value {key!r}")
        return source_params[key]
    return (loads(source_execution["environment_variables"]) or {}).get(key)  # environment-variable


def _apply(
    edge: Row, value: Any, parameters: dict[str, Any], env: dict[str, Any], edge_inputs: dict[str, list[str]]
) -> None:
    if edge["target_type"] == "parameter":
        parameters[edge["target_key"]] = value
    elif edge["target_type"] == "environment-variable":
        env[edge["target_key"]] = "" if value is None else str(value)
    elif edge["target_type"] == "input":
        edge_inputs.setdefault(edge["target_key"], []).extend(value if isinstance(value, list) else [str(value)])


def build_spec(tx: Transaction, pipeline: Row, node: Node, nodes: dict[str, Node], edges: list[Row]) -> ExecutionSpec:
    """The node's execution: template values, overridden (or, with `edge-merge-mode: append`, extended) by edges."""
    template = loads(node["template"])
    parameters = dict(template.get("parameters") or {})
    inputs = {k: list(v) if isinstance(v, list) else [v] for k, v in (template.get("inputs") or {}).items()}
    env = dict(template.get("environment_variables") or {})
    edge_inputs: dict[str, list[str]] = {}
    for e in edges:
        if e["target_node"] != node["id"] or e["source_type"] == "dependency":
            continue
        source = nodes[e["source_node"]]
        source_execution = db.executions.get(tx, source["execution_id"]) if source["execution_id"] else None
        if source_execution is None:
            continue
        if e["source_type"] == "output":
            edge_inputs.setdefault(e["target_key"], []).extend(_output_uris(tx, source_execution, e["source_key"]))
        elif e["source_type"] == "input":
            _copy_inputs(source_execution, e, edge_inputs)
        else:
            _apply(e, _value(e, source, source_execution), parameters, env, edge_inputs)
    for name, urls in edge_inputs.items():
        inputs[name] = inputs.get(name, []) + urls if node["edge_merge_mode"] == "append" else urls
    return ExecutionSpec(
        project_id=pipeline["project_id"],
        step=template["step"],
        commit=template["commit"],
        parameters=parameters,
        inputs=inputs,
        environment_variables=env,
        tags=template.get("tags") or [],
        runtime_config=template.get("runtime_config") or {},
        time_limit=template.get("time_limit"),
        title=template.get("title"),
        image=template.get("image"),
        command=template.get("command"),
        environment=template.get("environment"),
        priority=template.get("priority"),
        pipeline_id=pipeline["id"],
        pipeline_node_id=node["id"],
    )
