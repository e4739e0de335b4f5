"""SQLite persistence: one connection per thread, WAL, and one process-wide write lock.

The write lock serialises writers inside the process (so SQLite never answers "database is locked"),
while WAL lets readers proceed concurrently. Every multi-row change runs in `Store.write()`, a single
transaction, so a failed request leaves nothing half-created.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .schema import ADDED_COLUMNS, SCHEMA

Row = sqlite3.Row
# SQLite allows 32766 `?` per statement; lists of ids are sent in slices well below that.
IN_CHUNK = 500


def now_iso() -> str:
    """ISO time with a `T` and microseconds: the CLI slices `time.split("T")[1][:-4]`."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")


def new_id() -> str:
    return str(uuid.uuid4())


def dumps(value: Any) -> str:
    """JSON columns are stored compact, keys in the order given."""
    return json.dumps(value, separators=(",", ":"), sort_keys=False)


def loads(value: str | None) -> Any:
    return json.loads(value) if value else None


def grouped(rows: Iterable[Row], key: str) -> dict[str, list[Row]]:
    """Rows by the value of one column (e.g. nodes by `pipeline_id`), each group in the rows' order."""
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(row[key], []).append(row)
    return groups


class Db:
    """What every query function takes: the store (autocommit reads) or an open write transaction."""

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        raise NotImplementedError

    def executemany(self, sql: str, rows: Iterable[Any]) -> None:
        raise NotImplementedError

    def one(self, sql: str, params: Any = ()) -> Row | None:
        return self.execute(sql, params).fetchone()

    def all(self, sql: str, params: Any = ()) -> list[Row]:
        return self.execute(sql, params).fetchall()

    def insert(self, table: str, columns: Sequence[str], values: dict[str, Any]) -> None:
        """INSERT one row; `values` holds every name in `columns` (names come from the query modules)."""
        self.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({','.join('?' * len(columns))})",
            [values[column] for column in columns],
        )

    def all_in(self, sql: str, values: Iterable[Any], params: Any = ()) -> list[Row]:
        """`sql` with `{marks}` where the `IN (...)` list goes; `params` come before the listed values."""
        unique = list(dict.fromkeys(values))
        rows: list[Row] = []
        for start in range(0, len(unique), IN_CHUNK):
            chunk = unique[start : start + IN_CHUNK]
            rows.extend(self.all(sql.format(marks=",".join("?" * len(chunk))), [*params, *chunk]))
        return rows


class Transaction(Db):
    """A write transaction; callbacks registered with `after_commit` run only if it committed."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._after: list[Callable[[], object]] = []

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Any]) -> None:
        self.conn.executemany(sql, rows)

    def after_commit(self, fn: Callable[[], object]) -> None:
        self._after.append(fn)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A part of the transaction that an exception undoes alone, with the callbacks it registered."""
        callbacks = len(self._after)
        self.conn.execute("SAVEPOINT part")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK TO part")
            self.conn.execute("RELEASE part")
            del self._after[callbacks:]
            raise
        self.conn.execute("RELEASE part")


class Store(Db):
    """Owns the database file; hands each thread its own connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._write_lock = threading.RLock()
        # Bumped after each committed write: a value read before a read began says nothing changed since.
        self.generation = 0
        self.conn().executescript(SCHEMA)
        for table, column, declaration in ADDED_COLUMNS:
            present = {row["name"] for row in self.all(f"PRAGMA table_info({table})")}
            if column not in present:
                self.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        for suffix in ("", "-wal", "-shm"):  # the database holds every output's metadata: owner only
            sibling = path.with_name(path.name + suffix)
            if sibling.exists():
                os.chmod(sibling, 0o600)

    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self.conn().execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Any]) -> None:
        self.conn().executemany(sql, rows)

    @contextmanager
    def write(self) -> Iterator[Transaction]:
        """One atomic write; rolled back on any exception so nothing is half-created."""
        with self._write_lock:
            conn = self.conn()
            outer = getattr(self._local, "tx", None)
            if outer is not None:  # nested use joins the outer transaction
                yield outer
                return
            conn.execute("BEGIN IMMEDIATE")
            tx = Transaction(conn)
            self._local.tx = tx
            try:
                yield tx
            except BaseException:
                self._local.tx = None
                conn.execute("ROLLBACK")
                raise
            self._local.tx = None
            conn.execute("COMMIT")
            self.generation += 1  # under the write lock, after the commit
        for fn in tx._after:
            fn()
