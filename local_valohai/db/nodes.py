"""A pipeline's nodes and the edges between them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from providers.api.statuses import COMPLETE, CREATED, STARTED

from .store import Db, Row, dumps, grouped, new_id

EDGE_ENDS = ("source_node", "source_type", "source_key", "target_node", "target_type", "target_key")


def insert_node(
    db: Db,
    node_id: str,
    pipeline_id: str,
    position: int,
    name: str,
    on_error: str,
    merge_mode: str,
    template: dict[str, Any],
) -> None:
    db.execute(
        "INSERT INTO nodes (id, pipeline_id, position, name, type, status, on_error, edge_merge_mode, template)"
        " VALUES (?,?,?,?,?,?,?,?,?)",
        (node_id, pipeline_id, position, name, "execution", CREATED, on_error, merge_mode, dumps(template)),
    )


def insert_edge(db: Db, pipeline_id: str, position: int, ends: dict[str, str], configuration: dict[str, Any]) -> str:
    """`ends` maps each of EDGE_ENDS to its value (node ids, not names); returns the new edge's id."""
    edge_id = new_id()
    db.execute(
        f"INSERT INTO edges (id, pipeline_id, position, {', '.join(EDGE_ENDS)}, configuration)"
        " VALUES (?,?,?,?,?,?,?,?,?,?)",
        (edge_id, pipeline_id, position, *(ends[key] for key in EDGE_ENDS), dumps(configuration)),
    )
    return edge_id


def get(db: Db, node_id: str) -> Row | None:
    return db.one("SELECT * FROM nodes WHERE id=?", (node_id,))


def of_pipeline(db: Db, pipeline_id: str) -> list[Row]:
    return db.all("SELECT * FROM nodes WHERE pipeline_id=? ORDER BY position", (pipeline_id,))


def count_of(db: Db, pipeline_id: str) -> int:
    row = db.one("SELECT COUNT(*) AS n FROM nodes WHERE pipeline_id=?", (pipeline_id,))
    return row["n"] if row else 0


def of_pipelines(db: Db, pipeline_ids: Iterable[str]) -> dict[str, list[Row]]:
    """Pipeline id → its nodes in order, for a whole page of pipelines at once."""
    rows = db.all_in("SELECT * FROM nodes WHERE pipeline_id IN ({marks}) ORDER BY pipeline_id, position", pipeline_ids)
    return grouped(rows, "pipeline_id")


def of_execution(db: Db, execution_id: str) -> Row | None:
    return db.one("SELECT * FROM nodes WHERE execution_id=?", (execution_id,))


def set_status(db: Db, node_id: str, status: str) -> None:
    db.execute("UPDATE nodes SET status=? WHERE id=?", (status, node_id))


def started(db: Db, node_id: str, execution_id: str) -> None:
    db.execute("UPDATE nodes SET status=?, execution_id=? WHERE id=?", (STARTED, execution_id, node_id))


def mimic(db: Db, node_id: str, execution_id: str) -> None:
    """A mimic node: `complete` at once, standing for an earlier node's execution (services.reuse)."""
    db.execute("UPDATE nodes SET type='mimic', status=?, execution_id=? WHERE id=?", (COMPLETE, execution_id, node_id))


def reused(db: Db, node_id: str, execution_id: str) -> None:
    """An execution node that `reuse_executions` matched to a finished execution: `complete` without running."""
    db.execute("UPDATE nodes SET status=?, execution_id=? WHERE id=?", (COMPLETE, execution_id, node_id))


def reset(db: Db, node_id: str) -> None:
    """Back to `created` without an execution, so the scheduler starts it again (on-error: retry)."""
    db.execute("UPDATE nodes SET status=?, execution_id=NULL WHERE id=?", (CREATED, node_id))


def edges_of_pipeline(db: Db, pipeline_id: str) -> list[Row]:
    return db.all("SELECT * FROM edges WHERE pipeline_id=? ORDER BY position", (pipeline_id,))


def edges_of_pipelines(db: Db, pipeline_ids: Iterable[str]) -> dict[str, list[Row]]:
    rows = db.all_in("SELECT * FROM edges WHERE pipeline_id IN ({marks}) ORDER BY pipeline_id, position", pipeline_ids)
    return grouped(rows, "pipeline_id")
