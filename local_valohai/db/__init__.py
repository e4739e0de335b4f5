"""Data access: every SQL statement of the backend, one module per table or concern.

`store` holds the connection and transaction; the others are plain functions that take the store (for
reads) or an open transaction (for writes), so callers never write SQL.
"""

from . import datasets, datums, events, executions, listing, nodes, pipelines, projects, related
from .store import Db, Row, Store, Transaction, dumps, loads, new_id, now_iso

__all__ = [
    "Db",
    "Row",
    "Store",
    "Transaction",
    "datasets",
    "datums",
    "dumps",
    "events",
    "executions",
    "listing",
    "loads",
    "new_id",
    "nodes",
    "now_iso",
    "pipelines",
    "projects",
    "related",
]
