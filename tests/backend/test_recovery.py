"""Crash safety: after kill -9 finished work is intact and interrupted work ends `error`, never `started`."""

from __future__ import annotations

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
