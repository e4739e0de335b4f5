"""The object that ties store, runner and scheduler together; one per server process."""

from __future__ import annotations

import logging

from .services.pipelines import Scheduler, stop_execution
from .services.runner import INTERRUPTED, SHUTDOWN, Runner
from .settings import Settings
from .store import Store, now_iso

log = logging.getLogger("local_valohai")


class Backend:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        for d in (settings.store_dir, settings.commits_dir, settings.executions_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.store = Store(settings.db_path)
        self.runner = Runner(self.store, settings, self._execution_finished)
        self.scheduler = Scheduler(self.store, settings.secret, self.runner.submit, self.runner.request_stop)

    def _execution_finished(self, execution_id: str) -> None:
        self.scheduler.execution_finished(execution_id)

    def start(self) -> None:
        self.mark_unfinished("error", INTERRUPTED)
        self.runner.start()

    def shutdown(self) -> None:
        self.runner.shutdown()
        self.mark_unfinished("stopped", SHUTDOWN)

    def stop_execution(self, tx, execution_id: str) -> None:
        stop_execution(tx, self.store, execution_id, self.runner.request_stop)

    def mark_unfinished(self, status: str, detail: str) -> None:
        """Nothing may stay `started` across a restart: finish executions, nodes and pipelines for good."""
        now = now_iso()
        with self.store.write() as tx:
            rows = tx.execute(
                "SELECT id FROM executions WHERE status IN ('created','queued','started','stopping')"
            ).fetchall()
            for row in rows:
                tx.execute(
                    "UPDATE executions SET status=?, status_detail=?, end_time=?, mtime=? WHERE id=?",
                    (status, detail, now, now, row["id"]),
                )
                tx.execute("INSERT INTO events (execution_id, time, stream, message) VALUES (?,?,?,?)",
                           (row["id"], now, "status", f"Execution {status}: {detail}"))
            pipelines = tx.execute(
                "SELECT id FROM pipelines WHERE status IN ('created','started','stopping')"
            ).fetchall()
            for p in pipelines:
                for node in tx.execute("SELECT * FROM nodes WHERE pipeline_id=?", (p["id"],)).fetchall():
                    if node["status"] in ("complete", "error", "stopped"):
                        continue
                    tx.execute("UPDATE nodes SET status=? WHERE id=?", (status, node["id"]))
                tx.execute("UPDATE pipelines SET status=?, mtime=? WHERE id=?", (status, now, p["id"]))
                self.scheduler._append_log(tx, "pipelines", p["id"], detail)
        if rows:
            log.warning("marked %d unfinished execution(s) %s", len(rows), status)
