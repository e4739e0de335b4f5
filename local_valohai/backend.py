"""The object that ties store, runner and scheduler together; one per server process."""

from __future__ import annotations

import logging
import shutil

from providers.api.statuses import ERROR, INCOMPLETE, STOPPED

from . import db
from .db import Store, Transaction, now_iso
from .read_cache import ReadCache
from .services.executions import stop_execution
from .services.processes import kill_leftovers
from .services.runner import INTERRUPTED, SHUTDOWN, Runner
from .services.scheduler import PIPELINE_INCOMPLETE, PIPELINE_TERMINAL, Scheduler
from .settings import Settings, private_dir

log = logging.getLogger("local_valohai")


class Backend:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        private_dir(settings.data_dir)
        for d in (settings.store_dir, settings.commits_dir, settings.executions_dir):
            private_dir(d)
        self.store = Store(settings.db_path)
        self.read_cache = ReadCache(self.store)
        self.runner = Runner(self.store, settings, self._execution_finished)
        self.scheduler = Scheduler(self.store, settings.secret, self.runner.enqueue, self.runner.request_stop)

    def _execution_finished(self, execution_id: str) -> None:
        self.scheduler.execution_finished(execution_id)

    def start(self) -> None:
        self.clean_unfinished()
        self.mark_unfinished(ERROR, INTERRUPTED)
        self.runner.start()

    def shutdown(self) -> None:
        self.runner.shutdown()
        self.clean_unfinished()
        self.mark_unfinished(STOPPED, SHUTDOWN)

    def clean_unfinished(self) -> None:
        """Kill step processes of executions that are still unfinished and remove their directories.

        At start-up these are what a crashed server left running; at shutdown, what the runner could not
        stop in time. See services/processes.py for how a process is proven to be one of ours.
        """
        rows = db.executions.unfinished_processes(self.store)
        kill_leftovers([(row["id"], row["pid"]) for row in rows])
        for row in rows:
            shutil.rmtree(self.settings.executions_dir / row["id"], ignore_errors=True)

    def stop_execution(self, execution_id: str, *, delete: bool = False) -> None:
        """Stop one execution (and with `delete`, mark it deleted) in one transaction."""
        with self.store.write() as tx:
            stop_execution(tx, execution_id, self.runner.request_stop)
            if delete:
                db.executions.mark_deleted(tx, execution_id)

    def mark_unfinished(self, status: str, detail: str) -> None:
        """Nothing may stay `started` across a restart: finish executions, nodes and pipelines for good."""
        now = now_iso()
        with self.store.write() as tx:
            execution_ids = db.executions.unfinished_ids(tx)
            for execution_id in execution_ids:
                db.executions.end_unfinished(tx, execution_id, status, detail, now, only_from=INCOMPLETE)
                db.events.add_status(tx, execution_id, now, f"Execution {status}: {detail}")
            for pipeline_id in db.pipelines.ids_with_status(tx, PIPELINE_INCOMPLETE):
                _end_pipeline(tx, pipeline_id, status, detail, now)
        if execution_ids:
            log.warning("marked %d unfinished execution(s) %s", len(execution_ids), status)


def _end_pipeline(tx: Transaction, pipeline_id: str, status: str, detail: str, now: str) -> None:
    for node in db.nodes.of_pipeline(tx, pipeline_id):
        if node["status"] not in PIPELINE_TERMINAL:
            db.nodes.set_status(tx, node["id"], status)
    db.pipelines.set_status(tx, pipeline_id, status, now)
    db.pipelines.append_log(tx, "pipelines", pipeline_id, detail)
