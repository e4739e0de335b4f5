"""The execution runner: a bounded pool of worker threads, each running one step as a subprocess.

Each execution gets its own directory (`repository/`, `inputs/`, `outputs/`, `config/`) laid out as
valohai-utils expects, and runs `sh -c <command>` in its own process group so stop and time limits can kill
everything it spawned. Output is streamed into the events table in small batches while the step runs.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..settings import Settings
from ..store import Store, dumps, loads, now_iso
from .commits import extract_commit
from .outputs import blob_path, collect_outputs

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
        self.started_count = 0

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
    def submit(self, execution_id: str) -> None:
        """Move a `created` execution to `queued` and hand it to the pool."""
        now = now_iso()
        with self.store.write() as tx:
            cur = tx.execute(
                "UPDATE executions SET status='queued', mtime=? WHERE id=? AND status='created'", (now, execution_id)
            )
            if cur.rowcount:
                tx.execute(
                    "INSERT INTO events (execution_id, time, stream, message) VALUES (?,?,?,?)",
                    (execution_id, now, "status", "Execution queued"),
                )
        if cur.rowcount:
            self.queue.put(execution_id)

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
                self._finish_without_running(execution_id, "stopped", SHUTDOWN)
                continue
            try:
                self._run(execution_id)
            except Exception as exc:  # a bug here must not leave the execution started forever
                log.exception("runner failed on execution %s", execution_id)
                self._finish(execution_id, "error", f"local backend error: {exc}", None, {})
            try:
                self.on_finished(execution_id)
            except Exception:
                log.exception("scheduler failed after execution %s", execution_id)

    def _finish_without_running(self, execution_id: str, status: str, detail: str) -> None:
        now = now_iso()
        with self.store.write() as tx:
            tx.execute(
                "UPDATE executions SET status=?, status_detail=?, mtime=?, end_time=? WHERE id=? AND status IN "
                "('created','queued')", (status, detail, now, now, execution_id),
            )
        self.on_finished(execution_id)

    def _prepare(self, row, workdir: Path) -> dict[str, Any]:
        """Lay out the execution directory and config files valohai-utils reads."""
        if workdir.exists():
            shutil.rmtree(workdir)
        repo, inputs_dir, outputs_dir, config_dir = (workdir / n for n in ("repository", "inputs", "outputs", "config"))
        for d in (inputs_dir, outputs_dir, config_dir):
            d.mkdir(parents=True)
        commit = self.store.one(
            "SELECT * FROM commits WHERE project_id=? AND identifier=?", (row["project_id"], row["commit_identifier"])
        )
        extract_commit(commit, repo)
        inputs_json: dict[str, Any] = {}
        for name, files in (loads(row["input_files"]) or {}).items():
            target_dir = inputs_dir / name
            target_dir.mkdir(parents=True, exist_ok=True)
            entries = []
            for f in files:
                target = target_dir / f["name"]
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(blob_path(self.settings.store_dir, f["sha256"]), target)
                entries.append({
                    "name": f["name"], "path": str(target), "size": f["size"], "uri": f["uri"],
                    "checksums": f["checksums"], "metadata": f["metadata"], "datum_id": f["datum_id"],
                })
            inputs_json[name] = {"files": entries}
        project = self.store.one("SELECT name FROM projects WHERE id=?", (row["project_id"],))
        execution_json = {
            "valohai.execution-id": row["id"],
            "valohai.execution-counter": row["counter"],
            "valohai.execution-title": row["title"] or row["step"],
            "valohai.execution-step": row["step"],
            "valohai.execution-status": "started",
            "valohai.execution-image": row["image"],
            "valohai.execution-ctime": row["ctime"] + "Z",
            "valohai.execution-tags": loads(row["tags"]) or [],
            "valohai.commit-identifier": row["commit_identifier"],
            "valohai.creator-id": 1,
            "valohai.creator-name": "local",
            "valohai.environment-slug": "local",
            "valohai.project-id": row["project_id"],
            "valohai.project-name": f"local/{project['name'] if project else ''}",
            "valohai.pipeline-id": row["pipeline_id"],
            "valohai.pipeline-node-id": row["pipeline_node_id"],
        }
        (config_dir / "parameters.json").write_text(json.dumps(loads(row["parameters"]) or {}))
        (config_dir / "inputs.json").write_text(json.dumps(inputs_json))
        (config_dir / "execution.json").write_text(json.dumps(execution_json))
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOCAL_VALOHAI_")}
        env.update(loads(row["environment_variables"]) or {})
        env.update({
            "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONUNBUFFERED": "1",
            "VH_CONFIG_DIR": str(config_dir),
            "VH_INPUTS_DIR": str(inputs_dir),
            "VH_OUTPUTS_DIR": str(outputs_dir),
            "VH_REPOSITORY_DIR": str(repo),
            "VH_EXECUTION_ID": row["id"],
            "VH_JOB_ID": f"exec-{row['id']}",
            "VH_PROJECT_ID": row["project_id"],
        })
        env.pop("VIRTUAL_ENV_PROMPT", None)
        if row["pipeline_id"]:
            env["VH_PIPELINE_ID"] = row["pipeline_id"]
            env["VH_PIPELINE_NODE_ID"] = row["pipeline_node_id"] or ""
        return env

    def _run(self, execution_id: str) -> None:
        row = self.store.one("SELECT * FROM executions WHERE id=?", (execution_id,))
        if row is None or row["status"] != "queued":
            return
        running = _Running()
        with self._lock:
            self.running[execution_id] = running
        try:
            self._run_registered(row, running)
        finally:
            with self._lock:
                self.running.pop(execution_id, None)

    def _run_registered(self, row, running: _Running) -> None:
        execution_id = row["id"]
        workdir = self.settings.executions_dir / execution_id
        now = now_iso()
        with self.store.write() as tx:
            cur = tx.execute(
                "UPDATE executions SET status='started', start_time=?, mtime=? WHERE id=? AND status='queued'",
                (now, now, execution_id),
            )
            if not cur.rowcount:
                return
            tx.execute("INSERT INTO events (execution_id, time, stream, message) VALUES (?,?,?,?)",
                       (execution_id, now, "status", "Execution started"))
        self.started_count += 1
        try:
            env = self._prepare(row, workdir)
        except Exception as exc:
            self._finish(execution_id, "error", f"could not prepare the execution: {exc}", None, {})
            return
        sink = _EventSink(self.store, execution_id)
        with running.lock:
            if running.stop_reason:
                self._finish(execution_id, "stopped", running.stop_reason, None, {})
                return
            proc = subprocess.Popen(
                ["sh", "-c", row["command"]], cwd=workdir / "repository", env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            )
            running.proc = proc
        readers = [
            threading.Thread(target=sink.read_stream, args=(proc.stdout, "stdout"), daemon=True),
            threading.Thread(target=sink.read_stream, args=(proc.stderr, "stderr"), daemon=True),
        ]
        for t in readers:
            t.start()
        deadline = time.monotonic() + row["time_limit"] if row["time_limit"] else None
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
        code = proc.returncode
        with running.lock:
            stop_reason = running.stop_reason
        if stop_reason == SHUTDOWN:
            self._finish(execution_id, "stopped", SHUTDOWN, code, sink.cumulative)
            return
        try:
            collected = collect_outputs(self.store, self.settings.store_dir, row, workdir / "outputs")
            for warning in collected.warnings:
                sink.add("stderr", f"[local-valohai] {warning}")
            sink.add("status", f"{len(collected.datums)} output file(s) stored")
            sink.flush()
        except Exception as exc:
            log.exception("output collection failed for %s", execution_id)
            self._finish(execution_id, "error", f"could not store outputs: {exc}", code, sink.cumulative)
            return
        if stop_reason:
            status, detail = "stopped", stop_reason
        elif timed_out:
            status, detail = "error", f"time limit of {row['time_limit']} s exceeded; the process was killed"
        elif code == 0:
            status, detail = "complete", None
        else:
            last = sink.last_stderr or "(no stderr output)"
            how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            status, detail = "error", f"command failed with {how}: {last}"
        self._finish(execution_id, status, detail, code, sink.cumulative)
        for transient in ("inputs", "repository", "outputs"):  # inputs/outputs live in the store; config stays
            shutil.rmtree(workdir / transient, ignore_errors=True)

    def _finish(self, execution_id: str, status: str, detail: str | None, code: int | None,
                cumulative: dict[str, Any]) -> None:
        now = now_iso()
        with self.store.write() as tx:
            tx.execute(
                "UPDATE executions SET status=?, status_detail=?, exit_code=?, end_time=?, mtime=?,"
                " start_time=COALESCE(start_time, ?) WHERE id=?",
                (status, detail, code, now, now, now, execution_id),
            )
            message = f"Execution {status}" + (f": {detail}" if detail else "")
            tx.execute("INSERT INTO events (execution_id, time, stream, message) VALUES (?,?,?,?)",
                       (execution_id, now, "status", message))


class _EventSink:
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

    def read_stream(self, pipe, stream: str) -> None:
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
                    metadata_rows.append((self.execution_id, time_, dumps({**value, "_time": time_ + "Z"})))
        with self.store.write() as tx:
            tx.conn.executemany(
                "INSERT INTO events (execution_id, time, stream, message) VALUES (?,?,?,?)",
                [(self.execution_id, t, s, m) for t, s, m in batch],
            )
            if metadata_rows:
                tx.conn.executemany("INSERT INTO metadata (execution_id, time, data) VALUES (?,?,?)", metadata_rows)
                tx.execute("UPDATE executions SET cumulative_metadata=? WHERE id=?",
                           (dumps(self.cumulative), self.execution_id))
