"""The pipelines table and the `log` that pipelines and their nodes carry."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from .listing import ListQuery
from .store import Db, Row, dumps, loads, new_id, now_iso

LOG_KEPT = 50  # entries of a pipeline's or node's log; older ones are dropped


def insert(
    db: Db,
    pipeline_id: str,
    project_id: str,
    counter: int,
    title: str,
    status: str,
    tags: list[str],
    parameters: dict[str, Any],
    now: str,
    reuse_executions: bool = False,
) -> None:
    db.execute(
        "INSERT INTO pipelines (id, project_id, counter, title, status, tags, parameters, ctime, mtime, log,"
        " reuse_executions) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            pipeline_id,
            project_id,
            counter,
            title,
            status,
            dumps(tags),
            dumps(parameters),
            now,
            now,
            "[]",
            int(reuse_executions),
        ),
    )


def get(db: Db, pipeline_id: str) -> Row | None:
    return db.one("SELECT * FROM pipelines WHERE id=?", (pipeline_id,))


def counters(db: Db, pipeline_ids: Iterable[str]) -> dict[str, int]:
    """Pipeline id → counter, for executions' `pipeline_counter`."""
    rows = db.all_in("SELECT id, counter FROM pipelines WHERE id IN ({marks})", pipeline_ids)
    return {row["id"]: row["counter"] for row in rows}


def ids_with_status(db: Db, statuses: Iterable[str]) -> list[str]:
    return [row["id"] for row in db.all_in("SELECT id FROM pipelines WHERE status IN ({marks})", sorted(statuses))]


def set_status(db: Db, pipeline_id: str, status: str, now: str) -> None:
    db.execute("UPDATE pipelines SET status=?, mtime=? WHERE id=?", (status, now, pipeline_id))


def set_tags(db: Db, pipeline_id: str, tags: list[str], now: str) -> None:
    db.execute("UPDATE pipelines SET tags=?, mtime=? WHERE id=?", (dumps(tags), now, pipeline_id))


def mark_deleted(db: Db, pipeline_id: str) -> None:
    db.execute("UPDATE pipelines SET deleted=1 WHERE id=?", (pipeline_id,))


def append_log(db: Db, table: Literal["pipelines", "nodes"], row_id: str, message: str) -> None:
    """Add an info entry to a pipeline's or a node's `log` (what `vh pipeline info` shows)."""
    row = db.one(f"SELECT log FROM {table} WHERE id=?", (row_id,))
    entry = {"ctime": now_iso() + "Z", "identifier": new_id(), "kind": "info", "message": message}
    entries = (loads(row["log"] if row else None) or []) + [entry]
    db.execute(f"UPDATE {table} SET log=? WHERE id=?", (dumps(entries[-LOG_KEPT:]), row_id))


def list_query() -> ListQuery:
    return ListQuery("pipelines")
