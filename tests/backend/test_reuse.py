"""Reusing finished work: `mimic` nodes and `reuse_executions` on the local backend, through the API and `vh`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import SAMPLE
from test_pipelines import converted_payload, node

VH = str(Path(sys.executable).with_name("vh"))


def execution_count(api, project) -> int:
    return api.ok(api.get("executions/", params={"project": project["id"], "limit": 1}))["count"]


def finished_produce_consume(api, project) -> dict:
    done = api.wait(api.ok(api.post("pipelines/", json=converted_payload(project)), 201)["url"])
    assert done["status"] == "complete", done
    return done


def test_mimic_node_completes_at_once_and_feeds_downstream(api, project):
    first = finished_produce_consume(api, project)
    source = next(n for n in first["nodes"] if n["name"] == "produce")
    before = execution_count(api, project)

    payload = converted_payload(project)
    payload["nodes"][0] = {"type": "mimic", "name": "produce", "source": source["id"]}
    created = api.ok(api.post("pipelines/", json=payload), 201)
    mimic = next(n for n in created["nodes"] if n["name"] == "produce")
    assert (mimic["type"], mimic["status"]) == ("mimic", "complete")  # complete at once, never queued
    assert mimic["execution"]["id"] == source["execution"]["id"]
    assert "Reused" in mimic["log"][-1]["message"]

    done = api.wait(created["url"])
    assert done["status"] == "complete", done
    consume = next(n for n in done["nodes"] if n["name"] == "consume")["execution"]
    data_datum = next(o for o in source["execution"]["outputs"] if o["name"].startswith("data-"))
    assert consume["inputs"] == [{"name": "data", "urls": [f"datum://{data_datum['id']}"]}]  # output edge
    assert consume["parameters"]["harbor"] == "alpha"  # metadata edge from the source's metadata
    assert execution_count(api, project) == before + 1  # only consume ran


def test_every_node_a_mimic_makes_a_complete_pipeline_without_running_anything(api, project):
    first = finished_produce_consume(api, project)
    before = execution_count(api, project)
    payload = converted_payload(project)
    payload["nodes"] = [{"type": "mimic", "name": n["name"], "source": n["id"]} for n in first["nodes"]]
    created = api.ok(api.post("pipelines/", json=payload), 201)
    assert created["status"] == "complete"
    assert [n["execution"]["id"] for n in created["nodes"]] == [n["execution"]["id"] for n in first["nodes"]]
    assert execution_count(api, project) == before


def test_mimic_of_a_missing_failed_or_foreign_node_is_a_400(api, project):
    commit = project["commit"]
    failed = api.wait(
        api.ok(
            api.post(
                "pipelines/",
                json={"project": project["id"], "title": "f", "nodes": [node("failer", "fail", commit)], "edges": []},
            ),
            201,
        )["url"]
    )
    assert failed["status"] == "error"
    other = api.create_project("reuse-other")
    other["commit"] = api.import_package(other["id"])["identifier"]
    foreign = finished_produce_consume(api, other)["nodes"][0]["id"]
    before = api.ok(api.get("pipelines/", params={"project": project["id"]}))["count"]
    cases = {
        "00000000-0000-0000-0000-000000000000": "not found in this project",
        foreign: "not found in this project",
        failed["nodes"][0]["id"]: "only a complete node can be reused",
        None: "needs `source`",
    }
    for source, expected in cases.items():
        payload = converted_payload(project)
        payload["nodes"][0] = {"type": "mimic", "name": "produce", "source": source}
        response = api.post("pipelines/", json=payload)
        assert response.status_code == 400, response.text
        assert expected in response.text and "'produce'" in response.text
    assert api.ok(api.get("pipelines/", params={"project": project["id"]}))["count"] == before  # nothing half-made


def test_reuse_executions_reuses_matching_nodes_and_runs_changed_ones(api, project):
    first = finished_produce_consume(api, project)
    before = execution_count(api, project)
    again = api.wait(
        api.ok(api.post("pipelines/", json={**converted_payload(project), "reuse_executions": True}), 201)["url"]
    )
    assert again["status"] == "complete"
    assert [n["execution"]["id"] for n in again["nodes"]] == [n["execution"]["id"] for n in first["nodes"]]
    assert all("Reused execution" in n["log"][-1]["message"] for n in again["nodes"])
    assert execution_count(api, project) == before  # same commit, step, parameters and input checksums

    changed = converted_payload(project, **{"reuse-executions": True})
    changed["nodes"][1]["template"]["parameters"] = {}  # consume: same inputs, the edge sets harbor anyway
    changed["nodes"][0]["template"].setdefault("parameters", {})["count"] = 3  # produce differs: it runs
    done = api.wait(api.ok(api.post("pipelines/", json=changed), 201)["url"])
    assert done["status"] == "complete"
    produce, consume = (n["execution"] for n in done["nodes"])
    assert produce["id"] != first["nodes"][0]["execution"]["id"]
    assert consume["id"] != first["nodes"][1]["execution"]["id"]  # its input file changed (3 rows)
    assert execution_count(api, project) == before + 2

    response = api.post("pipelines/", json={**converted_payload(project), "reuse_executions": "yes"})
    assert response.status_code == 400 and "reuse_executions" in response.text


def test_vh_pipeline_run_reuse_and_listings(api, server, tmp_path_factory):
    """The real `vh pipeline run --reuse=<counter>:<glob>` (valohai-cli 0.37) sends mimic nodes we accept."""
    config_dir, project_dir = tmp_path_factory.mktemp("vh-config"), tmp_path_factory.mktemp("vh-project")
    for path in SAMPLE.iterdir():
        if path.is_file():
            shutil.copy(path, project_dir)
    env = {**os.environ, "VALOHAI_CONFIG_DIR": str(config_dir), "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("VALOHAI_TOKEN", None)

    def vh(*args: str) -> str:
        done = subprocess.run([VH, *args], cwd=project_dir, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"vh {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout + done.stderr

    vh("login", "--host", server.url, "--token", server.token)
    proj = api.create_project("reuse-cli")
    vh("project", "link", "reuse-cli")
    vh("pipeline", "run", "produce-consume", "--adhoc")
    assert api.wait(f"pipelines/{proj['id']}:1/")["status"] == "complete"
    out = vh("pipeline", "run", "produce-consume", "--adhoc", "--reuse=1:produce")
    assert "Reusing nodes: =1: produce" in out
    second = api.wait(f"pipelines/{proj['id']}:2/")
    assert second["status"] == "complete"
    assert [n["type"] for n in second["nodes"]] == ["mimic", "execution"]
    listing = vh("pipeline", "list")
    assert listing.count("produce-consume") == 2 and "complete" in listing
    executions = vh("execution", "list")
    assert executions.count("produce") == 1 and executions.count("consume") == 2  # 3 executions, not 4


def test_a_complete_node_of_a_deleted_pipeline_can_still_be_reused(api, project):
    """A replaced pipeline that still ran is deleted before its replacement, which reuses its finished nodes."""
    first = finished_produce_consume(api, project)
    assert api.delete(first["url"]).status_code in (200, 204)
    source = next(n for n in first["nodes"] if n["name"] == "produce")
    payload = converted_payload(project)
    payload["nodes"][0] = {"type": "mimic", "name": "produce", "source": source["id"]}
    created = api.ok(api.post("pipelines/", json=payload), 201)
    assert next(n for n in created["nodes"] if n["name"] == "produce")["execution"]["id"] == source["execution"]["id"]
    assert api.wait(created["url"])["status"] == "complete"
