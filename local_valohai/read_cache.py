"""Bodies of recent GETs, each valid until the next committed write anywhere (`Store.generation`).

Clients poll `GET pipelines/{id}/`; once a pipeline has finished, nothing but a write can change its body,
so an idle client polling it costs a dictionary lookup instead of eight queries and the JSON encoding. The
same holds for a page of the pipeline list whose pipelines have all finished: a refresh of a 1,000-cell stack
lists them in one request (providers/resources/snapshot.py) and the program lists them too (stacks/program.py
`project_pipelines`), ~0.75 s and ~1.0 s of the backend's CPU for 8.4 and 11.4 MB of JSON, while no write
changes them (bench/README.md, "No-change preview cost").
"""

from __future__ import annotations

import threading

from .db import Store

Key = tuple[str, ...]
MAX_BYTES = 64 * 1024 * 1024  # of all bodies kept; a bigger body is not kept


class ReadCache:
    """Bounded by entries and bytes; thread-safe (the list endpoints run in the thread pool). A body is kept
    only when no clock-driven field is in it (the callers check)."""

    def __init__(self, store: Store, size: int = 1024, max_bytes: int = MAX_BYTES) -> None:
        self.store = store
        self.size = size
        self.max_bytes = max_bytes
        self.entries: dict[Key, tuple[int, bytes]] = {}
        self.bytes = 0
        self._lock = threading.Lock()

    def generation(self) -> int:
        """Read it before building a body, and give that value to `put`."""
        return self.store.generation

    def get(self, key: Key) -> bytes | None:
        entry = self.entries.get(key)
        return entry[1] if entry is not None and entry[0] == self.store.generation else None

    def put(self, key: Key, generation: int, body: bytes) -> None:
        """`generation` as read before the body was built: a write committed meanwhile makes it stale."""
        if len(body) > self.max_bytes:
            return
        with self._lock:
            old = self.entries.pop(key, None)
            if old is not None:
                self.bytes -= len(old[1])
            while self.entries and (len(self.entries) >= self.size or self.bytes + len(body) > self.max_bytes):
                _, dropped = self.entries.pop(next(iter(self.entries)))  # the oldest entry
                self.bytes -= len(dropped)
            self.entries[key] = (generation, body)
            self.bytes += len(body)
