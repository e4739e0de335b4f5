"""Datums: the output files of executions, stored content-addressed by sha256."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .listing import ListQuery
from .store import Db, Row, grouped

COLUMNS = (
    "id",
    "project_id",
    "name",
    "size",
    "sha256",
    "md5",
    "sha1",
    "ctime",
    "output_execution_id",
    "metadata",
    "tags",
)


def insert(db: Db, values: dict[str, Any]) -> None:
    """Insert one datum; `values` holds every name in COLUMNS (JSON columns already dumped)."""
    db.insert("datums", COLUMNS, values)


def get(db: Db, datum_id: str) -> Row | None:
    return db.one("SELECT * FROM datums WHERE id=?", (datum_id,))


def outputs_of(db: Db, execution_id: str) -> list[Row]:
    """An execution's outputs, by name."""
    return db.all("SELECT * FROM datums WHERE output_execution_id=? ORDER BY name", (execution_id,))


def count_outputs(db: Db, execution_id: str) -> int:
    row = db.one("SELECT COUNT(*) AS n FROM datums WHERE output_execution_id=?", (execution_id,))
    return row["n"] if row else 0


def outputs_of_many(db: Db, execution_ids: Iterable[str]) -> dict[str, list[Row]]:
    """Execution id → its outputs by name, for a whole page of executions at once."""
    rows = db.all_in("SELECT * FROM datums WHERE output_execution_id IN ({marks}) ORDER BY name", execution_ids)
    return grouped(rows, "output_execution_id")


def purge(db: Db, datum_id: str) -> None:
    db.execute("UPDATE datums SET purged=1 WHERE id=?", (datum_id,))


def blob_shared(db: Db, sha256: str, except_id: str) -> bool:
    """Whether another datum that is not purged still needs the blob with this content."""
    return db.one("SELECT 1 FROM datums WHERE sha256=? AND purged=0 AND id<>?", (sha256, except_id)) is not None


def list_query() -> ListQuery:
    return ListQuery("datums")
