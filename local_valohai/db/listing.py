"""List endpoints' queries: a filter built from the request's parameters, counted and paged.

Column and table names come only from the query modules, never from the request; values are always
bound as parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .store import Db, Row

# (column, descending): what `?ordering=-counter,name` becomes once the router has checked the names.
Order = list[tuple[str, bool]]
Counted = Literal["executions", "pipelines"]


@dataclass
class ListQuery:
    """`SELECT * FROM table WHERE ...`, one condition per filter the caller gave."""

    table: str
    conditions: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def equals(self, column: str, value: Any) -> ListQuery:
        """Filter on `column = value` unless the value is missing or empty (an absent query parameter)."""
        if value not in (None, ""):
            self.conditions.append(f"{column}=?")
            self.params.append(value)
        return self

    def one_of(self, column: str, values: list[Any]) -> ListQuery:
        if values:
            self.conditions.append(f"{column} IN ({','.join('?' * len(values))})")
            self.params.extend(values)
        return self

    def tagged(self, tag: str) -> ListQuery:
        """Rows whose JSON `tags` list holds `tag`."""
        self.conditions.append(f"EXISTS (SELECT 1 FROM json_each({self.table}.tags) WHERE json_each.value=?)")
        self.params.append(tag)
        return self

    def nothing(self) -> ListQuery:
        """Match no row (a filter that can never hold here, e.g. another creator)."""
        self.conditions.append("0")
        return self

    def where(self) -> str:
        return " AND ".join(self.conditions) or "1=1"


def count(db: Db, query: ListQuery) -> int:
    row = db.one(f"SELECT COUNT(*) AS n FROM {query.table} WHERE {query.where()}", query.params)
    return row["n"] if row else 0


def page(db: Db, query: ListQuery, order: Order, limit: int, offset: int) -> list[Row]:
    order_by = ", ".join(f"{column} {'DESC' if desc else 'ASC'}" for column, desc in order)
    return db.all(
        f"SELECT * FROM {query.table} WHERE {query.where()} ORDER BY {order_by} LIMIT ? OFFSET ?",
        [*query.params, limit, offset],
    )


def by_counter(db: Db, table: Counted, project_id: str, counter: int | None) -> Row | None:
    """The CLI's `{project}:{counter}` addressing; `counter=None` means the project's latest."""
    if counter is None:
        return db.one(f"SELECT * FROM {table} WHERE project_id=? ORDER BY counter DESC LIMIT 1", (project_id,))
    return db.one(f"SELECT * FROM {table} WHERE project_id=? AND counter=?", (project_id, counter))


def by_id(db: Db, table: Counted, row_id: str) -> Row | None:
    return db.one(f"SELECT * FROM {table} WHERE id=?", (row_id,))


def next_counter(db: Db, table: Counted, project_id: str) -> int:
    """Counters are numbered per project, from 1, like Valohai's `#N`."""
    row = db.one(f"SELECT COALESCE(MAX(counter), 0) + 1 AS n FROM {table} WHERE project_id=?", (project_id,))
    return int(row["n"]) if row else 1
