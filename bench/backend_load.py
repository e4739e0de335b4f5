"""Load benchmark for the local backend, on loopback only, bounded in request count and time.

Creates 1,000 one-node pipelines (a no-op step) and reads pipelines 10,000 times, reporting requests/s,
p50/p99 latency and errors (which must be 0), then how fast the scheduler starts no-op executions.
Usage: .venv/bin/python bench/backend_load.py [--creates 1000] [--reads 10000] [--threads 8] [--workers 2]
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import random
import sys
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from local_valohai.testing import LocalValohai

YAML = b"""
- step:
    name: noop
    image: python:3.11
    command: "true"
"""
TIME_CAP_SECONDS = 600
README = Path(__file__).with_name("README.md")
SECTION = "## Local backend load (`bench/backend_load.py`)"


def package() -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        info = tarfile.TarInfo("valohai.yaml")
        info.size = len(YAML)
        tar.addfile(info, io.BytesIO(YAML))
    return buf.getvalue()


def hammer(count: int, threads: int, make_request, deadline: float) -> tuple[list[float], int, float, list]:
    """Run `count` requests over `threads` keep-alive sessions; returns latencies, errors, wall time, results."""
    local = threading.local()
    latencies: list[float] = []
    results: list = []
    errors = 0
    lock = threading.Lock()

    def one(i: int) -> None:
        nonlocal errors
        if time.monotonic() > deadline:
            return
        session = getattr(local, "session", None) or make_session()
        local.session = session
        began = time.perf_counter()
        try:
            result = make_request(session, i)
            ok = True
        except Exception:  # counted, never silently dropped
            ok, result = False, None
        elapsed = time.perf_counter() - began
        with lock:
            latencies.append(elapsed)
            if ok:
                results.append(result)
            else:
                errors += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, range(count)))
    return latencies, errors, time.perf_counter() - started, results


def make_session() -> requests.Session:
    session = requests.Session()
    session.headers.update(HEADERS)
    return session


HEADERS: dict[str, str] = {}


def summary(name: str, latencies: list[float], errors: int, wall: float) -> dict:
    ordered = sorted(latencies)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {
        "name": name,
        "requests": len(latencies),
        "rps": len(latencies) / wall,
        "p50_ms": p(0.50),
        "p99_ms": p(0.99),
        "errors": errors,
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--creates", type=int, default=1000)
    parser.add_argument("--reads", type=int, default=10000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    deadline = time.monotonic() + TIME_CAP_SECONDS

    with tempfile.TemporaryDirectory() as tmp, LocalValohai(Path(tmp) / "data", workers=args.workers) as server:
        HEADERS.update(server.headers)
        api = server.api
        s = make_session()
        project = s.post(f"{api}/projects/", data={"name": "bench"}).json()
        commit = s.post(
            f"{api}/projects/{project['id']}/import-package/",
            files={"data": ("data.tgz", package(), "application/gzip")},
        ).json()["identifier"]
        body = {
            "project": project["id"],
            "title": "bench",
            "tags": ["bench"],
            "edges": [],
            "nodes": [{"name": "noop", "type": "execution", "template": {"commit": commit, "step": "noop"}}],
        }

        def create(session: requests.Session, i: int) -> str:
            response = session.post(f"{api}/pipelines/", json=body, timeout=30)
            response.raise_for_status()
            return response.json()["id"]

        lat, err, wall, ids = hammer(args.creates, args.threads, create, deadline)
        creates = summary("POST pipelines/", lat, err, wall)

        def read(session: requests.Session, i: int) -> None:
            response = session.get(f"{api}/pipelines/{random.choice(ids)}/", timeout=30)
            response.raise_for_status()

        lat, err, wall, _ = hammer(args.reads, args.threads, read, deadline)
        reads = summary("GET pipelines/{id}/", lat, err, wall)

        scheduler = scheduler_stats(s, api, project["id"], deadline)

    lines = report_lines(creates, reads, scheduler, args.workers)
    print("\n".join(lines))
    if not args.no_readme:
        write_readme(lines, args)
    if creates["errors"] or reads["errors"]:
        sys.exit(1)


def scheduler_stats(s: requests.Session, api: str, project_id: str, deadline: float) -> dict:
    """Once the queue has drained (or the time cap is up): how many executions ran and how fast they started."""
    while time.monotonic() < deadline:  # wait for the queue to drain
        left = s.get(f"{api}/executions/", params={"project": project_id, "status": "incomplete", "limit": 1}).json()[
            "count"
        ]
        if left == 0:
            break
        time.sleep(0.5)
    rows = s.get(
        f"{api}/executions/", params={"project": project_id, "limit": 10000, "exclude": "outputs,metadata"}
    ).json()["results"]
    starts = sorted(datetime.fromisoformat(r["start_time"].rstrip("Z")) for r in rows if r["start_time"])
    complete = sum(r["status"] == "complete" for r in rows)
    span = (starts[-1] - starts[0]).total_seconds() if len(starts) > 1 else float("nan")
    return {"executions": len(rows), "complete": complete, "starts_per_s": (len(starts) - 1) / span}


def report_lines(creates: dict, reads: dict, scheduler: dict, workers: int) -> list[str]:
    """One line per hammered endpoint and one for the scheduler, as printed and written to the README."""
    lines = [
        f"{r['name']:<22} {r['requests']:>6} req  {r['rps']:8.1f} req/s  p50 {r['p50_ms']:7.1f} ms  "
        f"p99 {r['p99_ms']:7.1f} ms  errors {r['errors']}"
        for r in (creates, reads)
    ]
    lines.append(
        f"scheduler: {scheduler['executions']} no-op executions, {scheduler['complete']} complete, "
        f"{scheduler['starts_per_s']:.1f} started/s with {workers} workers"
    )
    return lines


def write_readme(lines: list[str], args: argparse.Namespace) -> None:
    """Replace only this benchmark's section of bench/README.md."""
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    block = (
        f"{SECTION}\n\nLoopback, {args.threads} client threads, {args.workers} runner workers, "
        f"{time.strftime('%Y-%m-%d')}, this machine ({os.cpu_count()} cores, shared). The queued "
        "no-op executions run while the reads happen, on the same cores as the server and the client:\n\n```\n"
        + "\n".join(lines)
        + "\n```\n"
    )
    if SECTION in text:
        start = text.index(SECTION)
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + block + (text[end + 1 :] if end != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    README.write_text(text)


if __name__ == "__main__":
    main()
