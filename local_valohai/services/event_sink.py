"""A running step's output: lines from both pipes, written to the events table in small batches.

A stdout line that is a JSON object is also metadata (what valohai-utils' `logger` prints), merged into
the execution's cumulative metadata.
"""

from __future__ import annotations

import json
import threading
from typing import IO, Any

from .. import db
from ..db import Store, dumps, now_iso


class EventSink:
    """Collects lines from both pipes and writes them in batches; JSON-object stdout lines are metadata."""

    def __init__(self, store: Store, execution_id: str) -> None:
        self.store = store
        self.execution_id = execution_id
        self.pending: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()
        self.cumulative: dict[str, Any] = {}
        self.last_stderr: str | None = None

    def add(self, stream: str, message: str) -> None:
        with self.lock:
            self.pending.append((now_iso(), stream, message))

    def read_stream(self, pipe: IO[bytes], stream: str) -> None:
        for raw in iter(pipe.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if stream == "stderr" and line.strip():
                self.last_stderr = line.strip()[:500]
            self.add(stream, line)
        pipe.close()

    def flush(self) -> None:
        with self.lock:
            batch, self.pending = self.pending, []
        if not batch:
            return
        metadata_rows = []
        for time_, stream, message in batch:
            text = message.strip()
            if stream == "stdout" and text.startswith("{") and text.endswith("}"):
                try:
                    value = json.loads(text)
                except ValueError:
                    continue
                if isinstance(value, dict):
                    self.cumulative.update(value)
                    metadata_rows.append((time_, dumps({**value, "_time": time_ + "Z"})))
        with self.store.write() as tx:
            db.events.add_events(tx, self.execution_id, batch)
            if metadata_rows:
                db.events.add_metadata(tx, self.execution_id, metadata_rows)
                db.executions.set_cumulative_metadata(tx, self.execution_id, dumps(self.cumulative))
