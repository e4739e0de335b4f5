"""Crash safety: after kill -9 finished work is intact and interrupted work ends `error`, never `started`."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from conftest import Api

from local_valohai.testing import LocalValohai


def test_kill_and_restart_keeps_results_and_marks_running_work_error(tmp_path):
    with LocalValohai(tmp_path / "data", workers=2) as server:
        api = Api(server)
        project = api.create_project("recovery")
        commit = api.import_package(project["id"])["identifier"]
        finished = api.wait(api.run(project["id"], commit, "produce")["url"])
        assert finished["status"] == "complete"
        running = api.run(project["id"], commit, "sleep")
        pipeline = api.ok(
            api.post(
                "pipelines/",
                json={
                    "project": project["id"],
                    "title": "interrupted",
                    "nodes": [
                        {"name": "s", "template": {"commit": commit, "step": "sleep"}},
                        {"name": "after", "template": {"commit": commit, "step": "noop"}},
                    ],
                    "edges": [
                        {
                            "source_node": "s",
                            "source_type": "dependency",
                            "source_key": "-",
                            "target_node": "after",
                            "target_type": "dependency",
                            "target_key": "-",
                        }
                    ],
                },
            ),
            201,
        )
        api.wait(running["url"], lambda e: e["status"] == "started")
        api.wait(pipeline["url"], lambda p: p["nodes"][0]["execution"]["status"] == "started")

        server.kill()
        server.start()
        api = Api(server)
        again = api.ok(api.get(finished["url"]))
        assert again["status"] == "complete" and again["outputs"] == finished["outputs"]
        assert again["cumulative_metadata"] == finished["cumulative_metadata"]
        url = api.ok(api.get(f"data/{finished['outputs'][0]['id']}/download/"))["url"]
        assert requests.get(url, timeout=5).status_code == 200
        interrupted = api.ok(api.get(running["url"]))
        assert interrupted["status"] == "error"
        assert interrupted["status_detail"] == "interrupted: the local backend stopped while this execution was running"
        broken = api.ok(api.get(pipeline["url"]))
        assert broken["status"] == "error"
        assert all(n["status"] == "error" for n in broken["nodes"])
        assert api.ok(api.get("executions/", params={"project": project["id"], "status": "incomplete"}))["count"] == 0

        # A clean SIGTERM stops and marks running executions instead.
        sleeper = api.run(project["id"], commit, "sleep")
        api.wait(sleeper["url"], lambda e: e["status"] == "started")
        server.restart()
        stopped = Api(server).ok(Api(server).get(sleeper["url"]))
        assert stopped["status"] == "stopped" and "shut down" in stopped["status_detail"]


def test_fault_injection_is_seeded_and_after_commit_applies_the_change(tmp_path):
    env = {"LOCAL_VALOHAI_FAULT_RATE": "0.5", "LOCAL_VALOHAI_FAULT_SEED": "7"}
    outcomes = []
    with LocalValohai(tmp_path / "faults", env=env, startup_timeout=30) as server:
        session = server.session()
        for _ in range(30):
            try:
                response = session.get(f"{server.api}/server/", timeout=5)
                outcomes.append(response.status_code)
                if response.status_code == 429:
                    assert response.headers["Retry-After"] == "1"
            except requests.RequestException:
                outcomes.append("dropped")
    assert 200 in outcomes and any(o in (500, 502, 503, 429, "dropped") for o in outcomes)

    env = {"LOCAL_VALOHAI_FAULT_RATE": "1", "LOCAL_VALOHAI_FAULT_SEED": "1", "LOCAL_VALOHAI_FAULT_AFTER_COMMIT": "1"}
    server = LocalValohai(tmp_path / "after", env=env).start()
    try:
        session = server.session()
        try:
            response = session.post(f"{server.api}/projects/", data={"name": "made-anyway"}, timeout=5)
            assert response.status_code in (500, 502, 503, 429, 200)
        except requests.RequestException:
            pass
    finally:
        server.env = {}
        server.restart()
    names = [p["name"] for p in Api(server).ok(Api(server).get("projects/"))["results"]]
    server.stop()
    assert names == ["made-anyway"]


def test_fault_draws_are_reproducible_for_a_seed():
    from local_valohai.middleware import FaultInjection

    def draws(seed: int) -> list:
        faults = FaultInjection(app=None, rate=0.3, seed=seed, after_commit=False)
        return [faults._draw() for _ in range(200)]

    assert draws(11) == draws(11)
    assert draws(11) != draws(12)
    assert {d for d in draws(11) if d} == {"500", "502", "503", "429", "drop"}


def step_processes(execution_id: str) -> list[int]:
    """Live (not zombie) processes whose environment names this execution, read from /proc."""
    marker = f"VH_EXECUTION_ID={execution_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if stat[stat.rindex(")") + 2] == "Z":
                continue
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc (Linux)")
def test_kill_9_then_restart_kills_leftover_step_processes_and_removes_their_folders(tmp_path):
    with LocalValohai(tmp_path / "data", workers=2) as server:
        api = Api(server)
        project = api.create_project("leftovers")
        commit = api.import_package(project["id"])["identifier"]
        # The step forks a child of its own, so the whole process group must go, not just `sh`.
        script = "import subprocess, time; subprocess.Popen(['sleep', '120']); print('up', flush=True); time.sleep(120)"
        running = api.run(project["id"], commit, "sleep", command=f'python -c "{script}"')
        api.wait(running["url"], lambda e: e["status"] == "started")
        folder = server.data_dir / "executions" / running["id"]
        deadline = time.monotonic() + 10
        while len(step_processes(running["id"])) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(step_processes(running["id"])) >= 2 and folder.is_dir()

        server.kill()
        assert step_processes(running["id"]), "kill -9 of the server alone leaves the steps running"
        began = time.monotonic()
        server.start()
        while step_processes(running["id"]) and time.monotonic() - began < 60:  # generous: a loaded machine
            time.sleep(0.1)
        assert step_processes(running["id"]) == []
        assert not folder.exists()
        interrupted = Api(server).ok(Api(server).get(running["url"]))
        assert interrupted["status"] == "error" and interrupted["status_detail"].startswith("interrupted")

        # A clean stop kills the steps and removes their folders too.
        api = Api(server)
        sleeper = api.run(project["id"], commit, "sleep")
        api.wait(sleeper["url"], lambda e: e["status"] == "started")
        server.stop()
        assert step_processes(sleeper["id"]) == []
        assert not (server.data_dir / "executions" / sleeper["id"]).exists()
