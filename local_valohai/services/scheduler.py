"""The pipeline scheduler: starts nodes once their sources are complete and derives the pipeline's status.

Scheduling decisions all happen in `advance()`, inside one transaction, so a pipeline's nodes and status
never disagree.
"""

from __future__ import annotations

from collections.abc import Callable

from providers.api.statuses import (
    COMPLETE,
    CRASHED,
    CREATED,
    ERROR,
    INCOMPLETE,
    QUEUED,
    STARTED,
    STOPPED,
    STOPPING,
    TERMINAL,
)

from .. import db
from ..db import Row, Store, Transaction, loads, now_iso
from ..errors import ApiError, flatten
from .executions import create_execution, stop_execution
from .node_spec import Node, build_spec
from .reuse import find_reusable

# Nodes and pipelines never end `crashed` (a crashed execution ends its node as `error`) and are never
# `queued` (only executions wait for a worker): the shared sets without those two, for nodes and pipelines.
PIPELINE_TERMINAL = TERMINAL - {CRASHED}
PIPELINE_INCOMPLETE = INCOMPLETE - {QUEUED}


def _blocked_by(sources: list[Node]) -> Node | None:
    """The first source that ended without output for its targets (an `error` under `continue` does not block)."""
    for source in sources:
        if source["status"] == STOPPED or (source["status"] == ERROR and source["on_error"] != "continue"):
            return source
    return None


class Scheduler:
    """Starts pipeline nodes and derives pipeline status; `enqueue`/`stop` hand executions to the runner."""

    def __init__(
        self,
        store: Store,
        secret: str,
        enqueue: Callable[[Transaction, str], None],
        stop: Callable[[str], object],
    ) -> None:
        self.store = store
        self.secret = secret
        self.enqueue = enqueue
        self.stop = stop

    # -- entry points -----------------------------------------------------------------------------------
    def execution_finished(self, execution_id: str) -> None:
        row = db.executions.get(self.store, execution_id)
        if row is not None and row["pipeline_id"]:
            with self.store.write() as tx:
                self.advance(tx, row["pipeline_id"])

    def stop_pipeline(self, tx: Transaction, pipeline_id: str, message: str = "Pipeline stopped by user") -> None:
        pipeline = db.pipelines.get(tx, pipeline_id)
        if pipeline is None or pipeline["status"] in PIPELINE_TERMINAL:
            return
        db.pipelines.set_status(tx, pipeline_id, STOPPING, now_iso())
        db.pipelines.append_log(tx, "pipelines", pipeline_id, message)
        self._stop_nodes(tx, pipeline_id, message)
        self.advance(tx, pipeline_id)

    def advance(self, tx: Transaction, pipeline_id: str, *, strict: bool = False) -> None:
        """Sync node statuses from executions, apply on-error policies, start ready nodes, derive status.

        With `strict` (pipeline creation), a root node that cannot be created raises a 400 instead.
        """
        pipeline = db.pipelines.get(tx, pipeline_id)
        if pipeline is None or pipeline["status"] in PIPELINE_TERMINAL:
            return
        changed = True
        while changed:
            nodes = {n["id"]: dict(n) for n in db.nodes.of_pipeline(tx, pipeline_id)}
            changed = self._sync_nodes(tx, pipeline, nodes)
            if changed:
                continue
            current = db.pipelines.get(tx, pipeline_id)
            if pipeline["status"] == STOPPING or (current is not None and current["status"] == STOPPING):
                break
            changed = self._start_ready(tx, pipeline, nodes, db.nodes.edges_of_pipeline(tx, pipeline_id), strict)
        self._derive_status(tx, pipeline_id)

    # -- internals --------------------------------------------------------------------------------------
    def _sync_nodes(self, tx: Transaction, pipeline: Row, nodes: dict[str, Node]) -> bool:
        """Copy finished executions' statuses to their nodes; stops at the first error (its policy may stop others)."""
        changed = False
        for node in nodes.values():
            if node["status"] != STARTED or not node["execution_id"]:
                continue
            execution = db.executions.get(tx, node["execution_id"])
            status = execution["status"] if execution else None
            if status in TERMINAL:
                status = ERROR if status == CRASHED else status
                db.nodes.set_status(tx, node["id"], status)
                node["status"] = status
                changed = True
                if status == ERROR:
                    self._on_node_error(tx, pipeline, node)
                    break
        return changed

    def _start_ready(
        self, tx: Transaction, pipeline: Row, nodes: dict[str, Node], edges: list[Row], strict: bool
    ) -> bool:
        """Skip nodes whose sources failed; start those whose sources all ended."""
        changed = False
        for node in nodes.values():
            if node["status"] != CREATED:
                continue
            sources = [nodes[e["source_node"]] for e in edges if e["target_node"] == node["id"]]
            blocked = _blocked_by(sources)
            if blocked is not None:
                db.nodes.set_status(tx, node["id"], STOPPED)
                message = f"Not started: source node {blocked['name']!r} ended {blocked['status']}"
                db.pipelines.append_log(tx, "nodes", node["id"], message)
                changed = True
                continue
            if all(s["status"] in PIPELINE_TERMINAL for s in sources):
                self._start_node(tx, pipeline, node, nodes, edges, strict=strict and not sources)
                changed = True
        return changed

    def _stop_nodes(self, tx: Transaction, pipeline_id: str, message: str, *, except_node: str | None = None) -> None:
        for node in db.nodes.of_pipeline(tx, pipeline_id):
            if node["id"] == except_node or node["status"] in PIPELINE_TERMINAL:
                continue
            if node["execution_id"]:
                stop_execution(tx, node["execution_id"], self.stop)
            else:
                db.nodes.set_status(tx, node["id"], STOPPED)
                db.pipelines.append_log(tx, "nodes", node["id"], message)

    def _on_node_error(self, tx: Transaction, pipeline: Row, node: Node) -> None:
        policy = node["on_error"]
        if policy == "retry" and not any("Retrying" in e.get("message", "") for e in loads(node["log"]) or []):
            db.nodes.reset(tx, node["id"])
            db.pipelines.append_log(tx, "nodes", node["id"], "Retrying once after an error (on-error: retry)")
            return
        if policy in ("stop-all", "retry"):
            message = f"Node {node['name']!r} failed; stopping the pipeline (on-error: {policy})"
            db.pipelines.append_log(tx, "pipelines", pipeline["id"], message)
            self._stop_nodes(
                tx, pipeline["id"], f"Stopped because node {node['name']!r} failed", except_node=node["id"]
            )

    def _start_node(
        self, tx: Transaction, pipeline: Row, node: Node, nodes: dict[str, Node], edges: list[Row], *, strict: bool
    ) -> None:
        try:
            spec = build_spec(tx, pipeline, node, nodes, edges)
            if pipeline["reuse_executions"] and (earlier := find_reusable(tx, self.store, self.secret, spec)):
                db.nodes.reused(tx, node["id"], earlier["id"])
                message = f"Reused execution #{earlier['counter']} (same commit, step, image, parameters and inputs)"
                db.pipelines.append_log(tx, "nodes", node["id"], message)
                node.update(status=COMPLETE, execution_id=earlier["id"])
                return
            execution_id = create_execution(tx, self.store, self.secret, spec)
        except ApiError as exc:
            if strict:
                raise ApiError(exc.status, {"nodes": [f"Node {node['name']!r}: {flatten(exc.body)}"]}) from exc
            db.nodes.set_status(tx, node["id"], ERROR)
            db.pipelines.append_log(tx, "nodes", node["id"], f"Could not start: {flatten(exc.body)}")
            node["status"] = ERROR
            self._on_node_error(tx, pipeline, dict(db.nodes.get(tx, node["id"]) or node))
            return
        db.nodes.started(tx, node["id"], execution_id)
        self.enqueue(tx, execution_id)

    def _derive_status(self, tx: Transaction, pipeline_id: str) -> None:
        pipeline = db.pipelines.get(tx, pipeline_id)
        assert pipeline is not None
        current = pipeline["status"]
        nodes = db.nodes.of_pipeline(tx, pipeline_id)
        statuses = [n["status"] for n in nodes]
        if all(s in PIPELINE_TERMINAL for s in statuses):
            if any(n["status"] == ERROR and n["on_error"] != "continue" for n in nodes):
                status = ERROR
            elif current == STOPPING or STOPPED in statuses:
                status = STOPPED
            else:
                status = COMPLETE
        elif current == STOPPING:
            status = STOPPING
        elif any(s != CREATED for s in statuses):
            status = STARTED
        else:
            status = CREATED
        if status != current:
            db.pipelines.set_status(tx, pipeline_id, status, now_iso())
