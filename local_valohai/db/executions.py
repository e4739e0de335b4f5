"""The executions table: insert, status moves, lookups and list filters."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from providers.api.statuses import CREATED, INCOMPLETE, QUEUED, STARTED, STOPPING

from .listing import ListQuery
from .store import Db, Row

# Written once at creation, in this order; everything else changes through the status moves below.
COLUMNS = (
    "id",
    "project_id",
    "counter",
    "status",
    "step",
    "title",
    "commit_identifier",
    "ctime",
    "mtime",
    "parameters",
    "inputs",
    "input_files",
    "environment_variables",
    "tags",
    "runtime_config",
    "time_limit",
    "image",
    "command",
    "pipeline_id",
    "pipeline_node_id",
    "environment",
    "priority",
    "secret_environment",
)


def insert(db: Db, values: dict[str, Any]) -> None:
    """Insert one execution; `values` holds every name in COLUMNS (JSON columns already dumped)."""
    db.insert("executions", COLUMNS, values)


def get(db: Db, execution_id: str) -> Row | None:
    return db.one("SELECT * FROM executions WHERE id=?", (execution_id,))


def get_many(db: Db, execution_ids: Iterable[str]) -> dict[str, Row]:
    return {row["id"]: row for row in db.all_in("SELECT * FROM executions WHERE id IN ({marks})", execution_ids)}


def counters(db: Db, execution_ids: Iterable[str]) -> dict[str, int]:
    """Execution id → counter, for the `output_execution` of datums."""
    rows = db.all_in("SELECT id, counter FROM executions WHERE id IN ({marks})", execution_ids)
    return {row["id"]: row["counter"] for row in rows}


def unfinished_ids(db: Db) -> list[str]:
    rows = db.all_in("SELECT id FROM executions WHERE status IN ({marks})", sorted(INCOMPLETE))
    return [row["id"] for row in rows]


def unfinished_processes(db: Db) -> list[Row]:
    """`id` and `pid` (the step's process group id, None before it started) of every unfinished execution."""
    return db.all_in("SELECT id, pid FROM executions WHERE status IN ({marks})", sorted(INCOMPLETE))


def set_pid(db: Db, execution_id: str, pid: int) -> None:
    """Record the step's process (and process group) id, so a restart after a crash can find leftovers."""
    db.execute("UPDATE executions SET pid=? WHERE id=?", (pid, execution_id))


def status_counts(db: Db, project_ids: Iterable[str]) -> dict[str, dict[str, int]]:
    """Project id → {status: number of executions not deleted}; projects without any are left out."""
    rows = db.all_in(
        "SELECT project_id, status, COUNT(*) AS n FROM executions WHERE deleted=0 AND project_id IN ({marks})"
        " GROUP BY project_id, status",
        project_ids,
    )
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        counts.setdefault(row["project_id"], {})[row["status"]] = row["n"]
    return counts


def queue(db: Db, execution_id: str, now: str) -> bool:
    """`created` → `queued`; False when it was not `created` any more (stopped, or queued twice)."""
    cursor = db.execute(
        "UPDATE executions SET status=?, mtime=? WHERE id=? AND status=?", (QUEUED, now, execution_id, CREATED)
    )
    return bool(cursor.rowcount)


def start(db: Db, execution_id: str, now: str) -> bool:
    """`queued` → `started`; False when it was stopped meanwhile."""
    cursor = db.execute(
        "UPDATE executions SET status=?, start_time=?, mtime=? WHERE id=? AND status=?",
        (STARTED, now, now, execution_id, QUEUED),
    )
    return bool(cursor.rowcount)


def finish(db: Db, execution_id: str, status: str, detail: str | None, exit_code: int | None, now: str) -> None:
    """A run ended (or could not begin): final status, its reason and the exit code."""
    db.execute(
        "UPDATE executions SET status=?, status_detail=?, exit_code=?, end_time=?, mtime=?,"
        " start_time=COALESCE(start_time, ?) WHERE id=?",
        (status, detail, exit_code, now, now, now, execution_id),
    )


def end_unfinished(db: Db, execution_id: str, status: str, detail: str, now: str, *, only_from: Iterable[str]) -> None:
    """End an execution that is in one of `only_from` without running it further (stop, shutdown, restart)."""
    statuses = sorted(only_from)
    db.execute(
        f"UPDATE executions SET status=?, status_detail=?, end_time=?, mtime=? WHERE id=?"
        f" AND status IN ({','.join('?' * len(statuses))})",
        (status, detail, now, now, execution_id, *statuses),
    )


def request_stop(db: Db, execution_id: str, now: str) -> None:
    """A running execution is asked to stop; the runner ends it once the process is gone."""
    db.execute("UPDATE executions SET status=?, stop_requested=1, mtime=? WHERE id=?", (STOPPING, now, execution_id))


def mark_deleted(db: Db, execution_id: str) -> None:
    db.execute("UPDATE executions SET deleted=1 WHERE id=?", (execution_id,))


def set_cumulative_metadata(db: Db, execution_id: str, value: str) -> None:
    db.execute("UPDATE executions SET cumulative_metadata=? WHERE id=?", (value, execution_id))


def list_query() -> ListQuery:
    return ListQuery("executions")
