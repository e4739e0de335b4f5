"""`LocalValohai`: the real server as a subprocess, for tests and the demo.

A subprocess (not an in-process app) so tests exercise real HTTP, real signals and real crash recovery.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class LocalValohai:
    """Start with `with LocalValohai(tmp_path) as vh:`; `.url`, `.token`, `.kill()`, `.restart()`."""

    def __init__(
        self,
        data_dir: str | os.PathLike,
        port: int = 0,
        workers: int = 2,
        token: str | None = None,
        env: dict[str, str] | None = None,
        startup_timeout: float = 30.0,
        access_log: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.workers = workers
        self.token = token or secrets.token_hex(16)
        self.env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.access_log = access_log  # one line per request in server.log (never headers, so never the token)
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log_path = self.data_dir / "server.log"

    @property
    def api(self) -> str:
        return f"{self.url}/api/v0"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"}

    def session(self) -> requests.Session:
        session = requests.Session()
        session.headers.update(self.headers)
        return session

    def start(self) -> LocalValohai:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env}
        # The server prints its token at start-up: keep its log readable by the owner only.
        with open(os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
            os.chmod(self.log_path, 0o600)
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
                    *(["--access-log", "--log-level", "info"] if self.access_log else []),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"local-valohai exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                # Any HTTP answer means it is serving (with fault injection on, some answers are 5xx).
                requests.get(f"{self.api}/users/me/", headers=self.headers, timeout=2)
                return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"local-valohai did not become ready in {self.startup_timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM and wait: running executions are stopped and marked, nothing stays `started`."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL, to test crash recovery."""
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def restart(self) -> LocalValohai:
        self.stop()
        return self.start()

    def __enter__(self) -> LocalValohai:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
