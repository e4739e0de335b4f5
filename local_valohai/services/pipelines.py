"""Pipelines: payload validation and the scheduler that starts nodes once their sources are complete.

The payload may come from valohai-yaml's PipelineConverter (hyphenated keys) or be hand-written
(underscored keys); both are normalised here. Scheduling decisions all happen in `advance()`, inside one
transaction, so a pipeline's nodes and status never disagree.
"""

from __future__ import annotations

import fnmatch
import logging
import posixpath
from collections.abc import Callable
from typing import Any

from ..errors import ApiError, bad_request
from ..store import Store, Transaction, dumps, loads, new_id, now_iso
from .commits import commit_config, resolve_commit
from .executions import ExecutionSpec, create_execution, find_step, safe_name, validate_parameters

log = logging.getLogger("local_valohai.pipelines")

ON_ERROR = ("stop-all", "stop-next", "continue", "retry")
SOURCE_TYPES = ("output", "metadata", "parameter", "input", "environment-variable", "dependency")
TARGET_TYPES = ("input", "parameter", "environment-variable", "dependency")
NODE_TERMINAL = ("complete", "error", "stopped")
PIPELINE_TERMINAL = ("complete", "error", "stopped")


def _pick(d: dict[str, Any], *names: str, default: Any = None) -> Any:
    for name in names:
        if name in d:
            return d[name]
    return default


def _node_log(message: str) -> dict[str, Any]:
    return {"ctime": now_iso() + "Z", "identifier": new_id(), "kind": "info", "message": message}


def _expression_value(expression: Any) -> Any:
    """A pipeline parameter expression is a value, or a variant `{"style": "single", "rules": {"value": [...]}}`."""
    if isinstance(expression, dict) and "rules" in expression:
        value = (expression.get("rules") or {}).get("value")
        if isinstance(value, list) and len(value) == 1:
            return value[0]
        return value
    return expression


def _check_acyclic(names: list[str], edges: list[dict[str, Any]]) -> None:
    incoming = {n: {e["source_node"] for e in edges if e["target_node"] == n} for n in names}
    done: set[str] = set()
    while len(done) < len(names):
        ready = [n for n in names if n not in done and incoming[n] <= done]
        if not ready:
            raise bad_request("edges", "The edges form a cycle between nodes: " + ", ".join(n for n in names if n not in done))
        done.update(ready)


MAX_TITLE, MAX_TAGS, MAX_TAG = 1024, 100, 256


def create_pipeline(tx: Transaction, store: Store, secret: str, project_id: str, payload: dict[str, Any]) -> str:
    """Validate the payload and insert the pipeline, its nodes and edges; root nodes start in `advance`."""
    nodes_in = payload.get("nodes")
    if not isinstance(nodes_in, list) or not nodes_in:
        raise bad_request("nodes", "A pipeline needs a non-empty list of nodes")
    title = payload.get("title") or "Pipeline"
    if not isinstance(title, str):
        raise bad_request("title", "Expected a string")
    if len(title) > MAX_TITLE:
        raise bad_request("title", f"Ensure this field has no more than {MAX_TITLE} characters (it has {len(title)})")
    tags = payload.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise bad_request("tags", "Expected a list of strings")
    if len(tags) > MAX_TAGS or any(len(t) > MAX_TAG for t in tags):
        raise bad_request("tags", f"At most {MAX_TAGS} tags of at most {MAX_TAG} characters each")

    nodes: dict[str, dict[str, Any]] = {}
    for index, node in enumerate(nodes_in):
        if not isinstance(node, dict):
            raise bad_request("nodes", f"Node #{index} must be an object")
        name = node.get("name")
        if not isinstance(name, str) or not name:
            raise bad_request("nodes", f"Node #{index} needs a name")
        safe_name(name, "node name", "nodes")
        if name in nodes:
            raise bad_request("nodes", f"Duplicate node name {name!r}")
        node_type = node.get("type", "execution")
        if node_type != "execution":
            raise bad_request("nodes", f"Node {name!r}: type {node_type!r} is not supported by the local backend (only 'execution')")
        on_error = _pick(node, "on-error", "on_error", default="stop-all") or "stop-all"
        if on_error not in ON_ERROR:
            raise bad_request("nodes", f"Node {name!r}: on-error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
        merge_mode = _pick(node, "edge-merge-mode", "edge_merge_mode", default="replace") or "replace"
        if merge_mode not in ("replace", "append"):
            raise bad_request("nodes", f"Node {name!r}: edge-merge-mode must be 'replace' or 'append'")
        template = node.get("template")
        if not isinstance(template, dict) or not template.get("step"):
            raise bad_request("nodes", f"Node {name!r} needs a template with a step")
        commit = resolve_commit(store, project_id, template.get("commit"), "nodes")
        step = find_step(commit_config(commit), template["step"], commit["identifier"])
        inputs = template.get("inputs") or {}
        if not isinstance(inputs, dict):
            raise bad_request("nodes", f"Node {name!r}: template inputs must be an object")
        for input_name in inputs:
            safe_name(input_name, "input name", "nodes")
            if input_name not in step.inputs:
                raise bad_request("nodes", f"Node {name!r}: unknown input {input_name!r} for step {step.name!r}")
        clean = {
            "commit": commit["identifier"],
            "step": step.name,
            "title": template.get("title") or template.get("name") or name,
            "image": template.get("image"),
            "command": template.get("command"),
            "parameters": dict(template.get("parameters") or {}),
            "inputs": inputs,
            "environment_variables": dict(_pick(template, "environment_variables", "environment-variables", default={}) or {}),
            "runtime_config": template.get("runtime_config") or {},
            "time_limit": _pick(template, "time_limit", "time-limit"),
            "tags": template.get("tags") or [],
        }
        nodes[name] = {"name": name, "step": step, "on_error": on_error, "merge": merge_mode, "template": clean}

    edges_in = payload.get("edges") or []
    if not isinstance(edges_in, list):
        raise bad_request("edges", "Expected a list of edges")
    edges: list[dict[str, Any]] = []
    for index, edge in enumerate(edges_in):
        if not isinstance(edge, dict):
            raise bad_request("edges", f"Edge #{index} must be an object")
        e = {k: edge.get(k) for k in ("source_node", "source_type", "source_key", "target_node", "target_type", "target_key")}
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
            raise bad_request("edges", f"{label}: target type {e['target_type']!r} is not supported (use {', '.join(TARGET_TYPES)})")
        target_step = nodes[e["target_node"]]["step"]
        if e["target_type"] == "parameter" and e["target_key"] not in target_step.parameters:
            raise bad_request("edges", f"{label}: step {target_step.name!r} has no parameter {e['target_key']!r}")
        if e["target_type"] == "input" and e["target_key"] not in target_step.inputs:
            raise bad_request("edges", f"{label}: step {target_step.name!r} has no input {e['target_key']!r}")
        if e["source_node"] == e["target_node"]:
            raise bad_request("edges", f"{label}: a node cannot feed itself")
        e["configuration"] = edge.get("configuration") or {}
        edges.append(e)
    _check_acyclic(list(nodes), edges)

    parameters = payload.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise bad_request("parameters", "Expected an object of pipeline parameters")
    for pname, pdef in parameters.items():
        if not isinstance(pdef, dict):
            raise bad_request("parameters", f"Pipeline parameter {pname!r} must be an object")
        config = pdef.get("config") or {}
        targets = config.get("targets") or ([config["target"]] if config.get("target") else [])
        if isinstance(targets, str):
            targets = [targets]
        value = _expression_value(pdef["expression"]) if "expression" in pdef else config.get("default")
        for target in targets:
            parts = str(target).split(".", 2)
            if len(parts) != 3 or parts[1] != "parameter" or parts[0] not in nodes:
                raise bad_request("parameters", f"Pipeline parameter {pname!r}: bad target {target!r} (expected node.parameter.name)")
            node = nodes[parts[0]]
            if parts[2] not in node["step"].parameters:
                raise bad_request("parameters", f"Pipeline parameter {pname!r}: step {node['step'].name!r} has no parameter {parts[2]!r}")
            if value is not None:
                node["template"]["parameters"][parts[2]] = value

    for node in nodes.values():  # early, clear errors for bad values; edges may still override later
        validate_parameters(node["step"], {k: v for k, v in node["template"]["parameters"].items()}, "parameters")
        fed = {e["target_key"] for e in edges if e["target_node"] == node["name"] and e["target_type"] == "input"}
        for input_name, inp in node["step"].inputs.items():
            given = node["template"]["inputs"].get(input_name)
            has_uris = bool(given) if given is not None else bool(inp.default)
            if not inp.optional and not has_uris and input_name not in fed:
                raise bad_request("nodes", f"Node {node['name']!r}: input {input_name!r} is required but has no URI, default or edge")

    pipeline_id = new_id()
    counter = tx.execute("SELECT COALESCE(MAX(counter), 0) + 1 FROM pipelines WHERE project_id=?", (project_id,)).fetchone()[0]
    now = now_iso()
    tx.execute(
        "INSERT INTO pipelines (id, project_id, counter, title, status, tags, parameters, ctime, mtime, log)"
        " VALUES (?,?,?,?,?,?,?,?,?,?)",
        (pipeline_id, project_id, counter, title, "created", dumps(tags), dumps(parameters), now, now, "[]"),
    )
    ids = {name: new_id() for name in nodes}
    for position, node in enumerate(nodes.values()):
        tx.execute(
            "INSERT INTO nodes (id, pipeline_id, position, name, type, status, on_error, edge_merge_mode, template)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            (ids[node["name"]], pipeline_id, position, node["name"], "execution", "created", node["on_error"],
             node["merge"], dumps(node["template"])),
        )
    for position, e in enumerate(edges):
        tx.execute(
            "INSERT INTO edges (id, pipeline_id, position, source_node, source_type, source_key, target_node,"
            " target_type, target_key, configuration) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (new_id(), pipeline_id, position, ids[e["source_node"]], e["source_type"], e["source_key"],
             ids[e["target_node"]], e["target_type"], e["target_key"], dumps(e["configuration"])),
        )
    return pipeline_id


class Scheduler:
    """Starts pipeline nodes and derives pipeline status; `submit`/`stop` hand executions to the runner."""

    def __init__(self, store: Store, secret: str, submit: Callable[[str], None], stop: Callable[[str], None]) -> None:
        self.store = store
        self.secret = secret
        self.submit = submit
        self.stop = stop

    # -- entry points -----------------------------------------------------------------------------------
    def execution_finished(self, execution_id: str) -> None:
        row = self.store.one("SELECT pipeline_id FROM executions WHERE id=?", (execution_id,))
        if row is not None and row["pipeline_id"]:
            with self.store.write() as tx:
                self.advance(tx, row["pipeline_id"])

    def stop_pipeline(self, tx: Transaction, pipeline_id: str, message: str = "Pipeline stopped by user") -> None:
        pipeline = tx.execute("SELECT status FROM pipelines WHERE id=?", (pipeline_id,)).fetchone()
        if pipeline is None or pipeline["status"] in PIPELINE_TERMINAL:
            return
        tx.execute("UPDATE pipelines SET status='stopping', mtime=? WHERE id=?", (now_iso(), pipeline_id))
        self._append_log(tx, "pipelines", pipeline_id, message)
        self._stop_nodes(tx, pipeline_id, message)
        self.advance(tx, pipeline_id)

    # -- internals --------------------------------------------------------------------------------------
    def _append_log(self, tx: Transaction, table: str, row_id: str, message: str) -> None:
        row = tx.execute(f"SELECT log FROM {table} WHERE id=?", (row_id,)).fetchone()
        entries = (loads(row["log"]) or []) + [_node_log(message)]
        tx.execute(f"UPDATE {table} SET log=? WHERE id=?", (dumps(entries[-50:]), row_id))

    def _stop_nodes(self, tx: Transaction, pipeline_id: str, message: str, *, except_node: str | None = None) -> None:
        for node in tx.execute("SELECT * FROM nodes WHERE pipeline_id=?", (pipeline_id,)).fetchall():
            if node["id"] == except_node or node["status"] in NODE_TERMINAL:
                continue
            if node["execution_id"]:
                stop_execution(tx, self.store, node["execution_id"], self.stop)
            else:
                tx.execute("UPDATE nodes SET status='stopped' WHERE id=?", (node["id"],))
                self._append_log(tx, "nodes", node["id"], message)

    def advance(self, tx: Transaction, pipeline_id: str, *, strict: bool = False) -> None:
        """Sync node statuses from executions, apply on-error policies, start ready nodes, derive status.

        With `strict` (pipeline creation), a root node that cannot be created raises a 400 instead.
        """
        pipeline = tx.execute("SELECT * FROM pipelines WHERE id=?", (pipeline_id,)).fetchone()
        if pipeline is None or pipeline["status"] in PIPELINE_TERMINAL:
            return
        changed = True
        while changed:
            changed = False
            nodes = {n["id"]: dict(n) for n in tx.execute("SELECT * FROM nodes WHERE pipeline_id=? ORDER BY position", (pipeline_id,))}
            edges = [dict(e) for e in tx.execute("SELECT * FROM edges WHERE pipeline_id=? ORDER BY position", (pipeline_id,))]
            for node in nodes.values():
                if node["status"] != "started" or not node["execution_id"]:
                    continue
                status = tx.execute("SELECT status FROM executions WHERE id=?", (node["execution_id"],)).fetchone()["status"]
                if status in ("complete", "error", "crashed", "stopped"):
                    status = "error" if status == "crashed" else status
                    tx.execute("UPDATE nodes SET status=? WHERE id=?", (status, node["id"]))
                    node["status"] = status
                    changed = True
                    if status == "error":
                        self._on_node_error(tx, pipeline, node)
                        changed = True
                        break
            if changed:
                continue
            if pipeline["status"] == "stopping" or tx.execute(
                "SELECT status FROM pipelines WHERE id=?", (pipeline_id,)
            ).fetchone()["status"] == "stopping":
                break
            for node in nodes.values():
                if node["status"] != "created":
                    continue
                sources = [nodes[e["source_node"]] for e in edges if e["target_node"] == node["id"]]
                blocked = [s for s in sources if s["status"] in ("error", "stopped") and not (s["status"] == "error" and s["on_error"] == "continue")]
                if blocked:
                    tx.execute("UPDATE nodes SET status='stopped' WHERE id=?", (node["id"],))
                    self._append_log(tx, "nodes", node["id"], f"Not started: source node {blocked[0]['name']!r} ended {blocked[0]['status']}")
                    changed = True
                    continue
                if all(s["status"] in NODE_TERMINAL for s in sources):
                    self._start_node(tx, pipeline, node, nodes, edges, strict=strict and not sources)
                    changed = True
        self._derive_status(tx, pipeline_id)

    def _on_node_error(self, tx: Transaction, pipeline, node: dict[str, Any]) -> None:
        policy = node["on_error"]
        if policy == "retry" and not any("Retrying" in e.get("message", "") for e in loads(node["log"]) or []):
            tx.execute("UPDATE nodes SET status='created', execution_id=NULL WHERE id=?", (node["id"],))
            self._append_log(tx, "nodes", node["id"], "Retrying once after an error (on-error: retry)")
            return
        if policy in ("stop-all", "retry"):
            self._append_log(tx, "pipelines", pipeline["id"], f"Node {node['name']!r} failed; stopping the pipeline (on-error: {policy})")
            self._stop_nodes(tx, pipeline["id"], f"Stopped because node {node['name']!r} failed", except_node=node["id"])

    def _start_node(self, tx: Transaction, pipeline, node, nodes, edges, *, strict: bool) -> None:
        template = loads(node["template"])
        try:
            spec = self._build_spec(tx, pipeline, node, template, nodes, edges)
            execution_id = create_execution(tx, self.store, self.secret, spec)
        except ApiError as exc:
            if strict:
                raise ApiError(exc.status, {"nodes": [f"Node {node['name']!r}: {_flatten(exc.body)}"]}) from exc
            tx.execute("UPDATE nodes SET status='error' WHERE id=?", (node["id"],))
            self._append_log(tx, "nodes", node["id"], f"Could not start: {_flatten(exc.body)}")
            node["status"] = "error"
            self._on_node_error(tx, pipeline, dict(tx.execute("SELECT * FROM nodes WHERE id=?", (node["id"],)).fetchone()))
            return
        tx.execute("UPDATE nodes SET status='started', execution_id=? WHERE id=?", (execution_id, node["id"]))
        tx.after_commit(lambda: self.submit(execution_id))

    def _build_spec(self, tx, pipeline, node, template, nodes, edges) -> ExecutionSpec:
        parameters = dict(template.get("parameters") or {})
        inputs = {k: list(v) if isinstance(v, list) else [v] for k, v in (template.get("inputs") or {}).items()}
        env = dict(template.get("environment_variables") or {})
        edge_inputs: dict[str, list[str]] = {}
        for e in edges:
            if e["target_node"] != node["id"] or e["source_type"] == "dependency":
                continue
            source = nodes[e["source_node"]]
            erow = tx.execute("SELECT * FROM executions WHERE id=?", (source["execution_id"],)).fetchone() if source["execution_id"] else None
            if erow is None:
                continue
            label = f"edge {source['name']}.{e['source_type']}.{e['source_key']}"
            if e["source_type"] == "output":
                datums = tx.execute("SELECT id, name FROM datums WHERE output_execution_id=? ORDER BY name", (erow["id"],)).fetchall()
                key = e["source_key"]
                for d in datums:
                    if fnmatch.fnmatchcase(d["name"], key) or fnmatch.fnmatchcase(posixpath.basename(d["name"]), key):
                        edge_inputs.setdefault(e["target_key"], []).append(f"datum://{d['id']}")
                edge_inputs.setdefault(e["target_key"], [])
                continue
            if e["source_type"] == "metadata":
                cumulative = loads(erow["cumulative_metadata"]) or {}
                if e["source_key"] not in cumulative:
                    raise bad_request("edges", f"{label}: node {source['name']!r} never logged metadata key {e['source_key']!r}")
                value = cumulative[e["source_key"]]
            elif e["source_type"] == "parameter":
                source_params = loads(erow["parameters"]) or {}
                if e["source_key"] not in source_params:
                    raise bad_request("edges", f"{label}: node {source['name']!r} has no parameter value {e['source_key']!r}")
                value = source_params[e["source_key"]]
            elif e["source_type"] == "input":
                source_inputs = loads(erow["inputs"]) or {}
                for name, urls in source_inputs.items():
                    if fnmatch.fnmatchcase(name, e["source_key"]):
                        edge_inputs.setdefault(e["target_key"], []).extend(urls)
                continue
            else:  # environment-variable
                value = (loads(erow["environment_variables"]) or {}).get(e["source_key"])
            if e["target_type"] == "parameter":
                parameters[e["target_key"]] = value
            elif e["target_type"] == "environment-variable":
                env[e["target_key"]] = "" if value is None else str(value)
            elif e["target_type"] == "input":
                edge_inputs.setdefault(e["target_key"], []).extend(value if isinstance(value, list) else [str(value)])
        for name, urls in edge_inputs.items():
            if node["edge_merge_mode"] == "append":
                inputs[name] = inputs.get(name, []) + urls
            else:
                inputs[name] = urls
        return ExecutionSpec(
            project_id=pipeline["project_id"], step=template["step"], commit=template["commit"],
            parameters=parameters, inputs=inputs, environment_variables=env, tags=template.get("tags") or [],
            runtime_config=template.get("runtime_config") or {}, time_limit=template.get("time_limit"),
            title=template.get("title"), image=template.get("image"), command=template.get("command"),
            pipeline_id=pipeline["id"], pipeline_node_id=node["id"],
        )

    def _derive_status(self, tx: Transaction, pipeline_id: str) -> None:
        current = tx.execute("SELECT status FROM pipelines WHERE id=?", (pipeline_id,)).fetchone()["status"]
        nodes = tx.execute("SELECT status, on_error FROM nodes WHERE pipeline_id=?", (pipeline_id,)).fetchall()
        statuses = [n["status"] for n in nodes]
        if all(s in NODE_TERMINAL for s in statuses):
            failed = any(n["status"] == "error" and n["on_error"] != "continue" for n in nodes)
            if failed:
                status = "error"
            elif current == "stopping" or "stopped" in statuses:
                status = "stopped"
            else:
                status = "complete"
        elif current == "stopping":
            status = "stopping"
        elif any(s != "created" for s in statuses):
            status = "started"
        else:
            status = "created"
        if status != current:
            tx.execute("UPDATE pipelines SET status=?, mtime=? WHERE id=?", (status, now_iso(), pipeline_id))


def _flatten(body: dict[str, Any]) -> str:
    parts = []
    for key, value in body.items():
        text = "; ".join(map(str, value)) if isinstance(value, list) else str(value)
        parts.append(text if key == "detail" else f"{key}: {text}")
    return " / ".join(parts)


def stop_execution(tx: Transaction, store: Store, execution_id: str, request_stop: Callable[[str], None]) -> None:
    """Stop one execution: not-yet-running ones end `stopped` at once; running ones are signalled."""
    row = tx.execute("SELECT status FROM executions WHERE id=?", (execution_id,)).fetchone()
    if row is None:
        return
    now = now_iso()
    if row["status"] in ("created", "queued"):
        tx.execute(
            "UPDATE executions SET status='stopped', status_detail='stopped by user before it started', end_time=?,"
            " mtime=? WHERE id=?", (now, now, execution_id),
        )
        tx.execute("INSERT INTO events (execution_id, time, stream, message) VALUES (?,?,?,?)",
                   (execution_id, now, "status", "Execution stopped before it started"))
        node = tx.execute("SELECT id FROM nodes WHERE execution_id=?", (execution_id,)).fetchone()
        if node is not None:
            tx.execute("UPDATE nodes SET status='stopped' WHERE id=?", (node["id"],))
    elif row["status"] == "started":
        tx.execute("UPDATE executions SET status='stopping', stop_requested=1, mtime=? WHERE id=?", (now, execution_id))
        tx.execute("INSERT INTO events (execution_id, time, stream, message) VALUES (?,?,?,?)",
                   (execution_id, now, "status", "Stop requested"))
        tx.after_commit(lambda: request_stop(execution_id))
