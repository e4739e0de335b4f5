"""Shared plumbing for the orchestration benchmarks (sweep_overhead, nochange_preview).

Why a throw-away project with trivial steps: these benchmarks measure orchestration (Pulumi, the
providers, the backend's scheduling), not training. So the temp project's valohai.yaml has the same steps,
parameters, inputs and pipeline as the real one, but each command is a few lines of Python that writes
the output files the providers expect (and the train step sleeps S seconds): bench/stand_in.py.

Everything runs on loopback, in temp directories: its own local backend, Pulumi home and file state.

The trivial project's text (step script and valohai.yaml) lives in bench/stand_in.py, which the
end-to-end tests use too.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.stand_in import PROJECT_NAME, PULUMI_YAML, write_stand_in_project  # noqa: E402
from local_valohai.testing import LocalValohai  # noqa: E402
from providers.api.client import ValohaiClient  # noqa: E402
from toolchain.environment import offline_env  # noqa: E402
from toolchain.pulumi_cli import run_pulumi  # noqa: E402

# --- the trivial project (its text lives in bench/stand_in.py, shared with the tests) ---------------

PROBE_PROGRAM = """\
import pulumi
from toolchain.probe import ToolchainProbe

count = int(pulumi.Config().require("count"))
for i in range(count):
    ToolchainProbe(f"probe-{i}", label=str(i))
"""


def harbor_names(count: int) -> list[str]:
    return [f"harbor_{chr(ord('A') + i)}" if i < 26 else f"harbor_{i}" for i in range(count)]


def write_sweep_project(root: Path, *, sleep: float) -> Path:
    """The temp project: trivial steps (train sleeps `sleep` s), a Pulumi.yaml and a program calling build_stack(root)."""
    return write_stand_in_project(root, sleep=sleep)


def write_sweep_stack(
    root: Path, stack: str, *, host: str, project: str, harbors: list[str], epochs: list[int]
) -> None:
    """Stack config in the shape of stacks/Pulumi.local.yaml; the token comes from VALOHAI_API_TOKEN."""
    config = {
        "config": {
            "valohai:host": host,
            "valohai:project": project,
            f"{PROJECT_NAME}:harbors": harbors,
            f"{PROJECT_NAME}:epochs": epochs,
            f"{PROJECT_NAME}:mode": "parallel",
            f"{PROJECT_NAME}:training": {"learning_rate": 0.002, "batch_size": 32, "validation_split": 0.3},
            f"{PROJECT_NAME}:data": {"image_size": 16, "images_per_class": 4, "test_images_per_harbor": 1, "seed": 42},
            f"{PROJECT_NAME}:wait_timeout_minutes": "90",  # a 1,000-cell `up` on a loaded machine
        }
    }
    (root / f"Pulumi.{stack}.yaml").write_text(json.dumps(config, indent=2))  # JSON is YAML


def write_probe_project(root: Path, stack: str, count: int) -> Path:
    (root / "program").mkdir(parents=True, exist_ok=True)
    (root / "Pulumi.yaml").write_text(PULUMI_YAML.format(name="vpac-bench-floor"))
    (root / "program" / "__main__.py").write_text(PROBE_PROGRAM)
    (root / f"Pulumi.{stack}.yaml").write_text(json.dumps({"config": {"vpac-bench-floor:count": str(count)}}))
    return root


# --- pulumi ---------------------------------------------------------------------------------------


def pulumi_env(work: Path, token: str | None) -> dict[str, str]:
    """A private Pulumi home and file backend under `work`, offline, with the venv's Python."""
    env = offline_env(work, passphrase="bench-passphrase")
    if token:
        env["VALOHAI_API_TOKEN"] = token
    return env


class PulumiFailed(RuntimeError):
    pass


def pulumi(
    args: list[str], cwd: Path, env: Mapping[str, str], *, timeout: float = 600, ok: tuple[int, ...] = (0,)
) -> tuple[float, subprocess.CompletedProcess]:
    """Run the real CLI; return (wall seconds, result). Raises with the output tail on a bad exit."""
    started = time.perf_counter()
    result = run_pulumi(args, cwd, env, timeout=timeout)
    seconds = time.perf_counter() - started
    if result.returncode not in ok:
        raise PulumiFailed(
            f"pulumi {' '.join(args)} exited {result.returncode}\n--- stdout\n"
            f"{result.stdout[-5000:]}\n--- stderr\n{result.stderr[-3000:]}"
        )
    return seconds, result


def init_stack(cwd: Path, env: Mapping[str, str], stack: str) -> None:
    pulumi(["stack", "init", stack], cwd, env, timeout=120)


# --- backend --------------------------------------------------------------------------------------


@contextmanager
def backend(work: Path, workers: int) -> Iterator[LocalValohai]:
    server = LocalValohai(work / "backend-data", port=0, workers=workers)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def api(server: LocalValohai) -> ValohaiClient:
    return ValohaiClient(server.url, server.token)


def create_project(server: LocalValohai, name: str) -> dict:
    return api(server).create_project(name, "benchmark")


# --- a counting reverse proxy ---------------------------------------------------------------------

_ID_SEGMENT = re.compile(r"^(~?[0-9a-f]{8,}|[0-9a-f-]{32,36}|\d+)$")
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
}


def endpoint(method: str, path: str) -> str:
    """`GET /api/v0/pipelines/<uuid>/` -> `GET pipelines/{id}/` (query dropped)."""
    path = urlsplit(path).path
    path = path[len("/api/v0/") :] if path.startswith("/api/v0/") else path
    return f"{method} " + "/".join("{id}" if _ID_SEGMENT.match(s) else s for s in path.split("/"))


class CountingProxy:
    """Loopback HTTP proxy in front of the backend that counts every request by endpoint.

    The providers see only the proxy's URL (valohai:host), so what it counts is exactly what they send.
    """

    def __init__(self, upstream: str) -> None:
        parsed = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parsed.hostname, parsed.port
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _forward(self):
                with proxy._lock:
                    proxy.counts[endpoint(self.command, self.path)] += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                finally:
                    conn.close()
                self.send_response(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> CountingProxy:
        self._thread.start()
        return self

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.counts)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the provider process's memory ------------------------------------------------------------------


class ProviderPeakRss:
    """The peak RSS of the dynamic-provider processes (`python -u -m pulumi.dynamic`) this process started.

    Only descendants of this process count (other stacks on the machine run providers too). A thread reads `VmHWM` (the kernel's own high-water mark) from /proc every `interval` seconds; a
    process's last reading before it exits is its peak, give or take what it grew in its last interval.
    Linux only (elsewhere `peak_mb` stays 0).
    """

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.peaks: dict[int, int] = {}  # pid -> VmHWM in kB
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> ProviderPeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        proc = Path("/proc")
        while not self._stop.is_set():
            for entry in proc.iterdir() if proc.is_dir() else ():
                if not entry.name.isdigit():
                    continue
                try:
                    if b"\0-m\0pulumi.dynamic" not in (entry / "cmdline").read_bytes():
                        continue
                    if not _descends_from(int(entry.name), os.getpid()):
                        continue
                    for line in (entry / "status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            kb = int(line.split()[1])
                            self.peaks[int(entry.name)] = max(kb, self.peaks.get(int(entry.name), 0))
                except (OSError, ValueError):
                    continue
            self._stop.wait(self.interval)

    @property
    def peak_mb(self) -> float:
        return max(self.peaks.values(), default=0) / 1024


def _descends_from(pid: int, ancestor: int) -> bool:
    """True when `ancestor` is among the parents of `pid` (read from /proc/<pid>/stat)."""
    for _ in range(64):
        if pid == ancestor:
            return True
        if pid <= 1:
            return False
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state: the parent's pid
    return False


# --- reporting ------------------------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        mem = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.splitlines()[1].split()[1]
    except (OSError, IndexError):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem} RAM, load {load:.1f} at start, Python "
        f"{platform.python_version()}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    )


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{median(values):.2f} (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"


def temp_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.rstrip("Z")).replace(tzinfo=timezone.utc).timestamp()
