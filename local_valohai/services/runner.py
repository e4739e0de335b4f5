"""The execution runner: a bounded pool of worker threads, each running one step as a subprocess.

Each execution gets its own directory (`repository/`, `inputs/`, `outputs/`, `config/`) laid out as
valohai-utils expects, and runs `sh -c <command>` in its own process group so stop and time limits can kill
everything it spawned. Output is streamed into the events table in small batches while the step runs.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from providers.api.statuses import COMPLETE, CREATED, ERROR, QUEUED, STOPPED

from .. import db
from ..db import Row, Store, Transaction, now_iso
from ..settings import Settings
from .event_sink import EventSink
from .outputs import collect_outputs
from .workdir import prepare

log = logging.getLogger("local_valohai.runner")

FLUSH_INTERVAL = 0.2
STOP_GRACE_SECONDS = 2.0
INTERRUPTED = "interrupted: the local backend stopped while this execution was running"
SHUTDOWN = "stopped: the local backend was shut down while this execution was running"


class _Running:
    """Book-keeping for one live subprocess."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.stop_reason: str | None = None
        self.lock = threading.Lock()


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Runner:
    """Runs queued executions; `on_finished(execution_id)` lets the pipeline scheduler react."""

    def __init__(self, store: Store, settings: Settings, on_finished: Callable[[str], None]) -> None:
        self.store = store
        self.settings = settings
        self.on_finished = on_finished
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.running: dict[str, _Running] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._shutting_down = False

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        for i in range(max(1, self.settings.workers)):
            thread = threading.Thread(target=self._worker, name=f"runner-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def shutdown(self) -> None:
        """Kill what runs and mark it stopped, mark queued work stopped too: nothing is left `started`."""
        self._shutting_down = True
        with self._lock:
            live = list(self.running.items())
        for _, running in live:
            with running.lock:
                running.stop_reason = SHUTDOWN
                if running.proc is not None:
                    _kill_group(running.proc, signal.SIGKILL)
        for _ in self._threads:
            self.queue.put(None)
        deadline = time.monotonic() + 10
        for thread in self._threads:
            thread.join(timeout=max(0.1, deadline - time.monotonic()))

    # -- API used by routes and the scheduler -----------------------------------------------------------
    def enqueue(self, tx: Transaction, execution_id: str) -> None:
        """Move a `created` execution to `queued` in the transaction that created it; the pool gets it on commit."""
        now = now_iso()
        if db.executions.queue(tx, execution_id, now):
            db.events.add_status(tx, execution_id, now, "Execution queued")
            tx.after_commit(lambda: self.queue.put(execution_id))

    def request_stop(self, execution_id: str, reason: str = "stopped by user") -> bool:
        """Ask a running execution to stop; returns False when it is not running here."""
        with self._lock:
            running = self.running.get(execution_id)
        if running is None:
            return False
        with running.lock:
            running.stop_reason = running.stop_reason or reason
            proc = running.proc
        if proc is not None:
            _kill_group(proc, signal.SIGTERM)
            threading.Timer(STOP_GRACE_SECONDS, _kill_group, (proc, signal.SIGKILL)).start()
        return True

    # -- worker ----------------------------------------------------------------------------------------
    def _worker(self) -> None:
        while True:
            execution_id = self.queue.get()
            if execution_id is None:
                return
            if self._shutting_down:
                self._finish_without_running(execution_id, STOPPED, SHUTDOWN)
                continue
            try:
                finished = self._run(execution_id)
            except Exception as exc:  # a bug here must not leave the execution started forever
                log.exception("runner failed on execution %s", execution_id)
                self._finish(execution_id, ERROR, f"local backend error: {exc}", None)
                continue
            if not finished:  # not run (stopped while queued): the scheduler still hears of it
                with self.store.write() as tx:
                    self._tell_scheduler(tx, execution_id)

    def _finish_without_running(self, execution_id: str, status: str, detail: str) -> None:
        with self.store.write() as tx:
            db.executions.end_unfinished(tx, execution_id, status, detail, now_iso(), only_from=(CREATED, QUEUED))
            self._tell_scheduler(tx, execution_id)

    def _tell_scheduler(self, tx: Transaction, execution_id: str) -> None:
        """`on_finished` inside `tx`; if it fails, only its own writes are undone (the caller's stay)."""
        try:
            with tx.savepoint():
                self.on_finished(execution_id)
        except Exception:
            log.exception("scheduler failed after execution %s", execution_id)

    def _run(self, execution_id: str) -> bool:
        """Run one execution; False when it was not run and not finished here (no longer `queued`)."""
        row = db.executions.get(self.store, execution_id)
        if row is None or row["status"] != QUEUED:
            return False
        running = _Running()
        with self._lock:
            self.running[execution_id] = running
        try:
            return self._run_registered(row, running)
        finally:
            with self._lock:
                self.running.pop(execution_id, None)

    def _run_registered(self, row: Row, running: _Running) -> bool:
        """Start, run and finish one execution: prepare its directory, run the step, store its outputs.

        Three write transactions besides the one that created and queued it: started, the process id, and
        the end (last lines, outputs' status line, final status and the pipeline scheduler's reaction
        together); plus one per FLUSH_INTERVAL while the step prints. False when it was stopped first.
        """
        execution_id = row["id"]
        workdir = self.settings.executions_dir / execution_id
        now = now_iso()
        with self.store.write() as tx:
            if not db.executions.start(tx, execution_id, now):
                return False
            db.events.add_status(tx, execution_id, now, "Execution started")
        try:
            env = prepare(self.store, self.settings.store_dir, row, workdir)
        except Exception as exc:
            self._finish(execution_id, ERROR, f"could not prepare the execution: {exc}", None)
            return True
        sink = EventSink(self.store, execution_id)
        with running.lock:
            if running.stop_reason:
                self._finish(execution_id, STOPPED, running.stop_reason, None)
                return True
            proc = subprocess.Popen(
                ["sh", "-c", row["command"]],
                cwd=workdir / "repository",
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            running.proc = proc
        with self.store.write() as tx:
            db.executions.set_pid(tx, execution_id, proc.pid)
        timed_out = self._wait(proc, sink, row["time_limit"])
        with running.lock:
            stop_reason = running.stop_reason
        if stop_reason == SHUTDOWN:
            self._finish(execution_id, STOPPED, SHUTDOWN, proc.returncode, sink)
            shutil.rmtree(workdir, ignore_errors=True)
            return True
        if self._store_outputs(row, workdir, sink, proc.returncode):
            status, detail = _outcome(stop_reason, timed_out, proc.returncode, row["time_limit"], sink.last_stderr)
            self._finish(execution_id, status, detail, proc.returncode, sink)
            for transient in ("inputs", "repository", "outputs"):  # inputs/outputs live in the store; config stays
                shutil.rmtree(workdir / transient, ignore_errors=True)
        return True

    def _wait(self, proc: subprocess.Popen, sink: EventSink, time_limit: int | None) -> bool:
        """Stream the output until the process ends, killing it at the time limit; True if it timed out."""
        assert proc.stdout is not None and proc.stderr is not None
        readers = [
            threading.Thread(target=sink.read_stream, args=(proc.stdout, "stdout"), daemon=True),
            threading.Thread(target=sink.read_stream, args=(proc.stderr, "stderr"), daemon=True),
        ]
        for t in readers:
            t.start()
        deadline = time.monotonic() + time_limit if time_limit else None
        timed_out = False
        while True:
            try:
                proc.wait(timeout=FLUSH_INTERVAL)
                break
            except subprocess.TimeoutExpired:
                pass
            sink.flush()
            if deadline and time.monotonic() > deadline and not timed_out:
                timed_out = True
                _kill_group(proc, signal.SIGTERM)
                threading.Timer(STOP_GRACE_SECONDS, _kill_group, (proc, signal.SIGKILL)).start()
        _kill_group(proc, signal.SIGKILL)  # reap anything the step left behind in its group
        for t in readers:
            t.join(timeout=5)
        sink.flush()
        return timed_out

    def _store_outputs(self, row: Row, workdir: Path, sink: EventSink, code: int | None) -> bool:
        """Collect `outputs/` into datums; on failure the execution ends `error` and this returns False.

        Its status line (and any warnings) wait in `sink` for `_finish`'s transaction.
        """
        try:
            collected = collect_outputs(self.store, self.settings.store_dir, row, workdir / "outputs")
            for warning in collected.warnings:
                sink.add("stderr", f"[local-valohai] {warning}")
            sink.add(db.events.STATUS, f"{len(collected.datums)} output file(s) stored")
        except Exception as exc:
            log.exception("output collection failed for %s", row["id"])
            self._finish(row["id"], ERROR, f"could not store outputs: {exc}", code, sink)
            return False
        return True

    def _finish(
        self, execution_id: str, status: str, detail: str | None, code: int | None, sink: EventSink | None = None
    ) -> None:
        """One transaction: the sink's last lines, the final status and the scheduler's reaction to it."""
        with self.store.write() as tx:
            if sink is not None:
                sink.flush()  # joins this transaction
            now = now_iso()
            db.executions.finish(tx, execution_id, status, detail, code, now)
            db.events.add_status(tx, execution_id, now, f"Execution {status}" + (f": {detail}" if detail else ""))
            self._tell_scheduler(tx, execution_id)


def _outcome(
    stop_reason: str | None, timed_out: bool, code: int | None, time_limit: int | None, last_stderr: str | None
) -> tuple[str, str | None]:
    """The final status and its detail once the process is gone and its outputs are stored."""
    if stop_reason:
        return STOPPED, stop_reason
    if timed_out:
        return ERROR, f"time limit of {time_limit} s exceeded; the process was killed"
    if code == 0:
        return COMPLETE, None
    how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
    return ERROR, f"command failed with {how}: {last_stderr or '(no stderr output)'}"
