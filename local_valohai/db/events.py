"""An execution's event stream (status changes, stdout, stderr) and the metadata its step printed."""

from __future__ import annotations

from collections.abc import Iterable

from .store import Db, Row

STATUS = "status"  # the stream of status changes, next to "stdout" and "stderr"


def add_events(db: Db, execution_id: str, entries: Iterable[tuple[str, str, str]]) -> None:
    """Append `(time, stream, message)` entries, in order."""
    rows = [(execution_id, time, stream, message) for time, stream, message in entries]
    if rows:
        db.executemany("INSERT INTO events (execution_id, time, stream, message) VALUES (?,?,?,?)", rows)


def add_status(db: Db, execution_id: str, time: str, message: str) -> None:
    """One line in the status stream (`status-events/` shows them), e.g. "Execution queued"."""
    add_events(db, execution_id, [(time, STATUS, message)])


def count(db: Db, execution_id: str) -> int:
    row = db.one("SELECT COUNT(*) AS n FROM events WHERE execution_id=?", (execution_id,))
    return row["n"] if row else 0


def last(db: Db, execution_id: str, limit: int | None) -> list[Row]:
    """The last `limit` events in order, or all of them when `limit` is None."""
    if limit is None:
        return db.all("SELECT * FROM events WHERE execution_id=? ORDER BY seq", (execution_id,))
    return db.all(
        "SELECT * FROM (SELECT * FROM events WHERE execution_id=? ORDER BY seq DESC LIMIT ?) ORDER BY seq",
        (execution_id, limit),
    )


def status_events(db: Db, execution_id: str) -> list[Row]:
    return db.all("SELECT * FROM events WHERE execution_id=? AND stream=? ORDER BY seq", (execution_id, STATUS))


def add_metadata(db: Db, execution_id: str, entries: Iterable[tuple[str, str]]) -> None:
    """Append `(time, JSON object)` metadata entries."""
    rows = [(execution_id, time, data) for time, data in entries]
    if rows:
        db.executemany("INSERT INTO metadata (execution_id, time, data) VALUES (?,?,?)", rows)


def metadata(db: Db, execution_id: str) -> list[Row]:
    return db.all("SELECT data FROM metadata WHERE execution_id=? ORDER BY seq", (execution_id,))
