"""Load benchmark for the local backend's read path, idle and under load, on loopback only.

Each round creates `--creates` one-node pipelines of a no-op step (so as many no-op executions queue up),
then reads random pipelines by id up to `--reads` times while those executions run ("loaded": the reads
stop when the queue has drained), waits for that, and reads `--reads` times with nothing running ("idle").
It prints both phases side by side, the median over `--repeats` rounds, and writes them to bench/README.md
unless `--no-readme`. The client shares the cores with the server: the reads use one keep-alive
`http.client` connection per client thread and leave the bodies unparsed, and the table shows the client's
own CPU per request next to the server's, so a client-bound run shows. Errors must be 0.

Usage: python bench/backend_load.py [--quick] [--creates 1000] [--reads 5000] [--repeats 3] [--threads 8]
       [--workers 2] [--no-readme]
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import io
import json
import os
import random
import statistics
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from local_valohai.testing import LocalValohai

YAML = b"""
- step:
    name: noop
    image: python:3.11
    command: "true"
"""
TIME_CAP_SECONDS = 1200
README = Path(__file__).with_name("README.md")
SECTION = "## Local backend load (`bench/backend_load.py`)"


def package() -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        info = tarfile.TarInfo("valohai.yaml")
        info.size = len(YAML)
        tar.addfile(info, io.BytesIO(YAML))
    return buf.getvalue()


@dataclass
class Phase:
    """Latencies of one hammered endpoint in one round, and the server's CPU seconds meanwhile."""

    latencies: list[float]
    errors: int
    wall: float
    server_cpu: float = float("nan")
    client_cpu: float = float("nan")

    @property
    def cpu_ms(self) -> float:
        """Server CPU per request: less sensitive than req/s to what else runs on shared cores."""
        return self.server_cpu / len(self.latencies) * 1000 if self.latencies else float("nan")

    @property
    def client_cpu_ms(self) -> float:
        """This process's CPU per request: it shares the cores, so it must stay well below the server's."""
        return self.client_cpu / len(self.latencies) * 1000 if self.latencies else float("nan")

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.wall if self.wall else float("nan")

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


class Client:
    """One keep-alive HTTP/1.1 connection per thread; a request returns the parsed JSON or raises."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.headers = headers
        self.local = threading.local()

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str = "", parse: bool = True
    ) -> object:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        headers = dict(self.headers, **({"Content-Type": content_type} if content_type else {}))
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            self.local.conn = None
            raise
        if response.status >= 400:
            raise RuntimeError(f"{method} {path} answered {response.status}: {data[:200]!r}")
        return json.loads(data) if parse else data


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (Linux /proc), NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def hammer(
    count: int,
    threads: int,
    make_request: Callable[[int], object],
    deadline: float,
    server_pid: int,
    stop: threading.Event | None = None,
) -> tuple[Phase, list]:
    """Run up to `count` requests over `threads` threads (fewer once `stop` is set or the deadline passed);
    returns their latencies and the results of those that worked."""
    latencies: list[float] = []
    results: list = []
    errors = 0
    lock = threading.Lock()

    def one(i: int) -> None:
        nonlocal errors
        if time.monotonic() > deadline or (stop is not None and stop.is_set()):
            return
        began = time.perf_counter()
        try:
            result, ok = make_request(i), True
        except Exception:  # counted, never silently dropped
            result, ok = None, False
        elapsed = time.perf_counter() - began
        with lock:
            latencies.append(elapsed)
            if ok:
                results.append(result)
            else:
                errors += 1

    cpu, own, started = cpu_seconds(server_pid), time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, range(count)))
    wall = time.perf_counter() - started
    return Phase(latencies, errors, wall, cpu_seconds(server_pid) - cpu, time.process_time() - own), results


@dataclass
class Round:
    creates: Phase
    loaded: Phase
    idle: Phase
    queued_after_loaded: int  # executions still incomplete when the loaded reads ended (0: they stopped early)
    starts_per_s: float
    finished_during_loaded: int  # executions that ended while the loaded reads ran

    @property
    def finished_per_s(self) -> float:
        """The runner's work done meanwhile: the loaded phase's server CPU pays for these too."""
        return self.finished_during_loaded / self.loaded.wall if self.loaded.wall else float("nan")


def incomplete(s: requests.Session, api: str, project_id: str) -> int:
    params: dict[str, str | int] = {"project": project_id, "status": "incomplete", "limit": 1}
    return int(s.get(f"{api}/executions/", params=params, timeout=30).json()["count"])


def stop_when_drained(api: str, headers: dict[str, str], project_id: str, stop: threading.Event) -> threading.Thread:
    """Set `stop` once no execution of the project is queued or running: reads after that are not under load."""

    def watch() -> None:
        with requests.Session() as s:
            s.headers.update(headers)
            while not stop.is_set():
                if incomplete(s, api, project_id) == 0:
                    stop.set()
                stop.wait(0.25)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def wait_drained(s: requests.Session, api: str, project_id: str, deadline: float) -> None:
    while time.monotonic() < deadline and incomplete(s, api, project_id):
        time.sleep(0.5)


def starts_per_s(s: requests.Session, api: str, project_id: str, first_counter: int, count: int) -> float:
    """How fast the scheduler started this round's executions (counters first_counter .. +count-1)."""
    params: dict[str, str | int] = {"project": project_id, "limit": 10000, "exclude": "outputs,metadata"}
    rows = []
    for offset in range(first_counter - 1, first_counter - 1 + count, 10000):
        page = s.get(f"{api}/executions/", params={**params, "offset": offset, "ordering": "counter"}, timeout=60)
        rows += page.json()["results"]
    stamps = sorted(
        datetime.fromisoformat(r["start_time"].rstrip("Z"))
        for r in rows
        if r["start_time"] and first_counter <= r["counter"] < first_counter + count
    )
    span = (stamps[-1] - stamps[0]).total_seconds() if len(stamps) > 1 else 0.0
    return (len(stamps) - 1) / span if span else float("nan")


def run(args: argparse.Namespace) -> list[Round]:
    deadline = time.monotonic() + TIME_CAP_SECONDS
    rounds: list[Round] = []
    with tempfile.TemporaryDirectory() as tmp, LocalValohai(Path(tmp) / "data", workers=args.workers) as server:
        s = server.session()
        api = server.api
        client = Client(server.url, server.headers)
        project = s.post(f"{api}/projects/", data={"name": "bench"}).json()
        commit = s.post(
            f"{api}/projects/{project['id']}/import-package/",
            files={"data": ("data.tgz", package(), "application/gzip")},
        ).json()["identifier"]
        body = json.dumps(
            {
                "project": project["id"],
                "title": "bench",
                "tags": ["bench"],
                "edges": [],
                "nodes": [{"name": "noop", "type": "execution", "template": {"commit": commit, "step": "noop"}}],
            }
        ).encode()
        ids: list[str] = []
        assert server.proc is not None
        pid = server.proc.pid

        def create(i: int) -> str:
            created = client.request("POST", "/api/v0/pipelines/", body, "application/json")
            assert isinstance(created, dict)
            return created["id"]

        def read(i: int) -> None:  # the body is not parsed: the client's CPU is not what is measured
            client.request("GET", f"/api/v0/pipelines/{random.choice(ids)}/", parse=False)

        for number in range(args.repeats):
            creates, new_ids = hammer(args.creates, args.threads, create, deadline, pid)
            ids += new_ids
            drained = threading.Event()
            watcher = stop_when_drained(api, server.headers, project["id"], drained)
            before = incomplete(s, api, project["id"])
            loaded, _ = hammer(args.reads, args.threads, read, deadline, pid, drained)
            left = incomplete(s, api, project["id"])
            drained.set()
            watcher.join()
            wait_drained(s, api, project["id"], deadline)
            idle, _ = hammer(args.reads, args.threads, read, deadline, pid)
            rate = starts_per_s(s, api, project["id"], number * args.creates + 1, args.creates)
            rounds.append(Round(creates, loaded, idle, left, rate, before - left))
            print(f"round {number + 1}/{args.repeats}: " + "; ".join(round_lines(rounds[-1])), file=sys.stderr)
    return rounds


def round_lines(r: Round) -> list[str]:
    return [
        f"loaded GET {r.loaded.rps:.0f}/s p99 {r.loaded.percentile_ms(0.99):.1f} ms ({r.queued_after_loaded} queued at end,"
        f" {r.finished_per_s:.1f} executions finished/s meanwhile)",
        f"idle GET {r.idle.rps:.0f}/s p99 {r.idle.percentile_ms(0.99):.1f} ms {r.idle.cpu_ms:.2f} server CPU ms/req",
    ]


def report_lines(rounds: list[Round], args: argparse.Namespace) -> list[str]:
    """A table of medians over the rounds: one line per phase, then the scheduler's start rate."""

    def med(values: list[float]) -> float:
        return statistics.median(values)

    lines = [
        f"{'phase':<40} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'server CPU ms/req':>18}"
        f" {'client CPU ms/req':>18}"
    ]
    for label, pick in (
        ("POST pipelines/ (queues the executions)", lambda r: r.creates),
        ("GET pipelines/{id}/ under load", lambda r: r.loaded),
        ("GET pipelines/{id}/ idle", lambda r: r.idle),
    ):
        phases = [pick(r) for r in rounds]
        lines.append(
            f"{label:<40} {med([p.rps for p in phases]):8.1f} {med([p.percentile_ms(0.5) for p in phases]):8.1f} "
            f"{med([p.percentile_ms(0.99) for p in phases]):8.1f} {sum(p.errors for p in phases):7d} "
            f"{med([p.cpu_ms for p in phases]):18.2f} {med([p.client_cpu_ms for p in phases]):18.2f}"
        )
    loaded_rps, idle_rps = med([r.loaded.rps for r in rounds]), med([r.idle.rps for r in rounds])
    lines.append(f"under load / idle GET throughput: {loaded_rps / idle_rps:.2f}")
    lines.append(
        f"reads under load (they stop once the queue has drained): {', '.join(str(len(r.loaded.latencies)) for r in rounds)}"
        f" of {args.reads}; executions still queued then: {', '.join(str(r.queued_after_loaded) for r in rounds)}"
        f" of {args.creates}"
    )
    lines.append(
        f"scheduler: {med([r.starts_per_s for r in rounds]):.1f} no-op executions started/s with {args.workers} workers;"
        f" {med([r.finished_per_s for r in rounds]):.1f} finished/s during the reads under load"
    )
    lines.append(f"load average when the run began: {args.load_at_start:.1f} on {os.cpu_count()} cores")
    return lines


def write_readme(lines: list[str], args: argparse.Namespace) -> None:
    """Replace this benchmark's figures in bench/README.md; its `###` subsections (notes) stay."""
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    block = (
        f"{SECTION}\n\n`python bench/backend_load.py`: loopback, {args.threads} client threads, {args.workers} runner "
        f"workers, medians of {args.repeats} rounds of {args.creates} pipeline creations and {args.reads} + "
        f"{args.reads} reads, {time.strftime('%Y-%m-%d')}, this machine ({os.cpu_count()} cores, shared; client, "
        "server and the no-op executions on the same cores):\n\n```\n" + "\n".join(lines) + "\n```\n"
    )
    if SECTION in text:
        start = text.index(SECTION)
        ends = [i for i in (text.find("\n## ", start + 1), text.find("\n### ", start + 1)) if i != -1]
        end = min(ends) if ends else -1
        text = text[:start] + block + ("\n" + text[end + 1 :] if end != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    README.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--creates", type=int, default=1000, help="pipelines (= no-op executions) per round")
    parser.add_argument("--reads", type=int, default=5000, help="GETs per phase per round")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; the table shows medians")
    parser.add_argument("--threads", type=int, default=8, help="client threads")
    parser.add_argument("--workers", type=int, default=2, help="the backend's runner workers")
    parser.add_argument("--quick", action="store_true", help="one round of 300 creations and 2,000 reads")
    parser.add_argument("--no-readme", action="store_true", help="print only; leave bench/README.md alone")
    args = parser.parse_args()
    if args.quick:
        args.creates, args.reads, args.repeats = 300, 2000, 1
        args.no_readme = True
    if min(args.creates, args.reads, args.repeats, args.threads, args.workers) < 1:
        parser.error("--creates, --reads, --repeats, --threads and --workers must each be at least 1")
    args.load_at_start = os.getloadavg()[0]
    rounds = run(args)
    lines = report_lines(rounds, args)
    print("\n".join(lines))
    if not args.no_readme:
        write_readme(lines, args)
    if any(p.errors for r in rounds for p in (r.creates, r.loaded, r.idle)):
        sys.exit(1)


if __name__ == "__main__":
    main()
