"""Fixtures for the failure-path e2e tests: a dedicated backend per test (its own data dir, port, token and
environment, so faults and kills never touch the shared session backend), and fault-free ways to count
what it holds.

Counting never goes through the faulty API: either the server's SQLite file is read directly (read-only)
or the backend is restarted without fault injection on the same data dir first.
"""

from __future__ import annotations

import importlib.util
import random
import re
import sqlite3
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from local_valohai.middleware import FaultInjection
from local_valohai.testing import LocalValohai

_E2E_CONFTEST = Path(__file__).resolve().parent / "conftest.py"


def _shared() -> Any:
    """The e2e conftest as a plain module (for `Stack` and `TINY_DATA`), whatever `conftest` names in sys.modules."""
    spec = importlib.util.spec_from_file_location("_e2e_conftest_shared", _E2E_CONFTEST)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


shared = _shared()
Stack = shared.Stack
TINY_DATA = shared.TINY_DATA

FAULT_ENV_KEYS = ("LOCAL_VALOHAI_FAULT_RATE", "LOCAL_VALOHAI_FAULT_SEED", "LOCAL_VALOHAI_FAULT_AFTER_COMMIT")


class LoggedLocalValohai(LocalValohai):
    """`LocalValohai` with uvicorn's access log on, so every answer (and so every injected fault) is counted
    from the server's own log. The access log never holds headers, so it never holds the token."""

    def start(self) -> LoggedLocalValohai:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in __import__("os").environ.items() if k not in FAULT_ENV_KEYS}
        env.update(self.env)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the server process writes to it after start() returns
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "local_valohai.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--workers",
                str(self.workers),
                "--token",
                self.token,
                "--access-log",
                "--log-level",
                "info",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        self._wait_ready()
        return self

    def restart_with(self, env: dict[str, str]) -> LoggedLocalValohai:
        """Stop, replace the environment (e.g. switch faults on or off), start on the same port/token/data."""
        self.stop()
        self.env = dict(env)
        return self.start()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


ACCESS_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>/api/\S*) HTTP/[\d.]+" (?P<status>\d{3})')


def fault_counts(log_text: str, rate: float, seed: int) -> dict[str, int]:
    """Injected faults by kind, for the log of one faulty server run.

    The server does not log its injected faults, and a dropped connection leaves only a `200` access line.
    But `FaultInjection` draws from `random.Random(seed)` exactly once per `/api/` request, in arrival order,
    so replaying draws until every `/api/` access line is accounted for (a drop draws but leaves no line)
    gives the kinds injected (concurrency changes which request got which fault, not how many of each; drops
    after the last answered request are missed). `logged_5xx_429` is the exact count of injected error answers the access log shows. `unexpected` counts real unhandled server errors; it must stay 0.
    """
    lines = list(ACCESS_LINE.finditer(log_text))
    rng = random.Random(seed)
    counts: Counter[str] = Counter(requests=len(lines))
    answered = 0
    while answered < len(lines):  # a dropped request leaves no access line: it draws, but answers nothing
        kind = rng.choice(FaultInjection.KINDS) if rng.random() < rate else None
        if kind is not None:
            counts[kind] += 1
        if kind == "drop":
            counts["requests"] += 1
        else:
            answered += 1
    seen = Counter(m["status"] for m in lines if m["status"] in ("500", "502", "503", "429"))
    # The replay is an estimate (it drifted by one or two faults from the log in trial runs, probably requests
    # that left no access line); the 5xx/429 answers the log shows are exact, so those are reported too.
    counts["logged_5xx_429"] = sum(seen.values())
    counts["replay_matches_log"] = int(all(seen[k] == counts[k] for k in ("500", "502", "503", "429")))
    counts["unexpected"] = len(re.findall(r"unhandled error on", log_text))
    counts["injected"] = sum(counts[k] for k in FaultInjection.KINDS)
    return dict(counts)


class Db:
    """Read-only view of a backend's SQLite file: the fault-free path for counting."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / "local-valohai.sqlite3"

    def rows(self, sql: str, params: tuple = ()) -> list[dict]:
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        try:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(sql, params).fetchall()]
        finally:
            conn.close()

    def pipelines(self, project_id: str) -> list[dict]:
        return self.rows(
            "SELECT id, counter, title, status, deleted FROM pipelines WHERE project_id=? ORDER BY counter",
            (project_id,),
        )

    def executions(self, project_id: str) -> list[dict]:
        return self.rows(
            "SELECT id, counter, step, status, status_detail, pipeline_id, deleted FROM executions "
            "WHERE project_id=? ORDER BY counter",
            (project_id,),
        )

    def commits(self, project_id: str) -> list[dict]:
        return self.rows("SELECT identifier FROM commits WHERE project_id=?", (project_id,))


def pipelines_per_title(pipelines: list[dict], *, non_failed_only: bool = False) -> Counter:
    return Counter(
        p["title"]
        for p in pipelines
        if not p.get("deleted") and (not non_failed_only or p["status"] not in ("error", "stopped"))
    )


@pytest.fixture
def make_backend(tmp_path: Path):
    """Factory for a dedicated, access-logged backend; every one started is stopped at teardown."""
    started: list[LoggedLocalValohai] = []

    def make(env: dict[str, str] | None = None, workers: int = 2) -> LoggedLocalValohai:
        server = LoggedLocalValohai(tmp_path / f"valohai-{len(started)}", workers=workers, env=env or {})
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def make_stack_on(tmp_path: Path, pulumi_env):
    """Like `make_stack`, but against a given (dedicated) backend."""

    def make(server: LocalValohai, name: str = "e2e", program: Path = shared.ROOT / "stacks") -> Stack:
        env = dict(pulumi_env)
        env["VALOHAI_API_TOKEN"] = server.token
        workdir = tmp_path / f"stack-{name}-{uuid.uuid4().hex[:6]}"
        workdir.mkdir()
        return Stack(workdir, env, server, f"e2e-{uuid.uuid4().hex[:8]}", name, program=program)

    return make
