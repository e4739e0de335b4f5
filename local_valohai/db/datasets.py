"""Datasets and their immutable versions (an ordered list of datums each)."""

from __future__ import annotations

from collections.abc import Iterable

from .listing import ListQuery
from .store import Db, Row, grouped, new_id

LATEST = "latest"  # the version name that means the newest version, as in `dataset://name/latest`


def get(db: Db, dataset_id: str) -> Row | None:
    return db.one("SELECT * FROM datasets WHERE id=?", (dataset_id,))


def by_name(db: Db, project_id: str, name: str) -> Row | None:
    return db.one("SELECT * FROM datasets WHERE project_id=? AND name=?", (project_id, name))


def create(db: Db, project_id: str, name: str, now: str) -> str:
    dataset_id = new_id()
    db.execute(
        "INSERT INTO datasets (id, project_id, name, ctime) VALUES (?,?,?,?)", (dataset_id, project_id, name, now)
    )
    return dataset_id


def get_version(db: Db, version_id: str) -> Row | None:
    return db.one("SELECT * FROM dataset_versions WHERE id=?", (version_id,))


def version_named(db: Db, dataset_id: str, name: str) -> Row | None:
    return db.one("SELECT * FROM dataset_versions WHERE dataset_id=? AND name=?", (dataset_id, name))


def find_version(db: Db, dataset_id: str, name: str) -> Row | None:
    """A version by name, or the newest one for `latest` (how input URIs and `from` name versions)."""
    if name == LATEST:
        return db.one("SELECT * FROM dataset_versions WHERE dataset_id=? ORDER BY seq DESC LIMIT 1", (dataset_id,))
    return version_named(db, dataset_id, name)


def versions_of(db: Db, dataset_ids: Iterable[str]) -> dict[str, list[Row]]:
    """Dataset id → its versions, oldest first, for a whole page of datasets at once."""
    rows = db.all_in("SELECT * FROM dataset_versions WHERE dataset_id IN ({marks}) ORDER BY seq", dataset_ids)
    return grouped(rows, "dataset_id")


def files(db: Db, version_id: str) -> list[Row]:
    """The datums of a version, in the version's order."""
    return db.all(
        "SELECT d.* FROM dataset_version_files f JOIN datums d ON d.id=f.datum_id WHERE f.version_id=?"
        " ORDER BY f.position",
        (version_id,),
    )


def create_version(
    db: Db, dataset_id: str, name: str, datum_ids: list[str], now: str, output_execution_id: str | None = None
) -> str:
    """Insert a version holding `datum_ids` in order (each datum once, where it first appears)."""
    version_id = new_id()
    seq_row = db.one("SELECT COALESCE(MAX(seq), 0) + 1 AS n FROM dataset_versions")
    db.execute(
        "INSERT INTO dataset_versions (id, dataset_id, name, ctime, seq, output_execution_id) VALUES (?,?,?,?,?,?)",
        (version_id, dataset_id, name, now, seq_row["n"] if seq_row else 1, output_execution_id),
    )
    db.executemany(
        "INSERT INTO dataset_version_files (version_id, datum_id, position) VALUES (?,?,?)",
        [(version_id, datum_id, position) for position, datum_id in enumerate(dict.fromkeys(datum_ids))],
    )
    return version_id


def list_query() -> ListQuery:
    return ListQuery("datasets")
