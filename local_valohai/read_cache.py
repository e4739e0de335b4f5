"""Bodies of recent GETs by id, each valid until the next committed write anywhere (`Store.generation`).

Clients poll `GET pipelines/{id}/`; once a pipeline has finished, nothing but a write can change its body,
so an idle client polling it costs a dictionary lookup instead of eight queries and the JSON encoding.
"""

from __future__ import annotations

from .db import Store

Key = tuple[str, ...]


class ReadCache:
    """Bounded; used on the event loop only. A body is kept only when no clock-driven field is in it."""

    def __init__(self, store: Store, size: int = 1024) -> None:
        self.store = store
        self.size = size
        self.entries: dict[Key, tuple[int, bytes]] = {}

    def generation(self) -> int:
        """Read it before building a body, and give that value to `put`."""
        return self.store.generation

    def get(self, key: Key) -> bytes | None:
        entry = self.entries.get(key)
        return entry[1] if entry is not None and entry[0] == self.store.generation else None

    def put(self, key: Key, generation: int, body: bytes) -> None:
        """`generation` as read before the body was built: a write committed meanwhile makes it stale."""
        if key not in self.entries and len(self.entries) >= self.size:
            self.entries.pop(next(iter(self.entries)))  # the oldest entry
        self.entries[key] = (generation, body)
