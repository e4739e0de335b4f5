"""Pipelines run real subprocesses: edges carry metadata and outputs, on-error policies decide the end."""

from __future__ import annotations

from pathlib import Path

import valohai_yaml
from conftest import SAMPLE
from valohai_yaml.pipelines.conversion import PipelineConverter


def converted_payload(project: dict, **extra) -> dict:
    config = valohai_yaml.parse((Path(SAMPLE) / "valohai.yaml").read_text())
    payload = PipelineConverter(config=config, commit_identifier=project["commit"]).convert_pipeline(
        config.pipelines["produce-consume"]
    )
    payload.update(project=project["id"], title="produce-consume", tags=["test"], **extra)
    return payload


def node(name: str, step: str, commit: str, **extra) -> dict:
    return {"name": name, "type": "execution", "template": {"commit": commit, "step": step}, **extra}


def test_two_node_pipeline_passes_metadata_and_outputs_downstream(api, project):
    payload = converted_payload(
        project,
        parameters={
            "harbor": {"config": {"name": "harbor", "targets": ["produce.parameter.harbor"]}, "expression": "gamma"},
        },
    )
    created = api.ok(api.post("pipelines/", json=payload), 201)
    assert created["status"] in ("created", "started")
    assert created["url"].endswith(f"/api/v0/pipelines/{created['id']}/")
    assert created["tags"] == ["test"]
    done = api.wait(created["url"])
    assert done["status"] == "complete", done
    produce, consume = (n["execution"] for n in done["nodes"])
    assert produce["parameters"]["harbor"] == "gamma"  # pipeline parameter overrode the node parameter
    assert produce["cumulative_metadata"] == {"progress": 1.0, "run_for": "gamma"}
    assert consume["parameters"]["harbor"] == "gamma"  # metadata -> parameter edge
    data_datum = next(o for o in produce["outputs"] if o["name"] == "data-gamma.txt")
    assert consume["inputs"] == [{"name": "data", "urls": [f"datum://{data_datum['id']}"]}]  # glob left notes.md out
    assert consume["cumulative_metadata"]["rows_seen"] == 2  # valohai-utils read inputs.json in the step
    assert [o["name"] for o in consume["outputs"]] == ["summary.json"]
    edge_node_ids = {e["source_node"] for e in done["edges"]} | {e["target_node"] for e in done["edges"]}
    assert edge_node_ids == {n["id"] for n in done["nodes"]}

    by_counter = api.ok(api.get(f"pipelines/{project['id']}:{done['counter']}/"))
    assert by_counter["id"] == done["id"]
    listed = api.ok(api.get("pipelines/", params={"project": project["id"], "tag": "test"}))
    assert done["id"] in [p["id"] for p in listed["results"]]
    # `exclude` leaves fields out of the nodes' executions (a refresh reads their status only), and only those
    params = {"project": project["id"], "tag": "test", "exclude": "outputs, metadata,events"}
    slim = next(p for p in api.ok(api.get("pipelines/", params=params))["results"] if p["id"] == done["id"])
    full = next(p for p in listed["results"] if p["id"] == done["id"])
    for lean, whole in zip(
        (n["execution"] for n in slim["nodes"]), (n["execution"] for n in full["nodes"]), strict=True
    ):
        assert whole["outputs"] and "outputs" not in lean
        assert {k: v for k, v in whole.items() if k != "outputs"} == lean
    assert {k: v for k, v in slim.items() if k != "nodes"} == {k: v for k, v in full.items() if k != "nodes"}

    # The sidecar created dataset://gamma_train/v1; a step whose input default interpolates a parameter uses it.
    run = api.run(project["id"], project["commit"], "from-dataset", parameters={"harbor": "gamma"})
    assert run["inputs"] == [{"name": "data", "urls": ["dataset://gamma_train/latest"]}]
    finished = api.wait(run["url"])
    assert finished["status"] == "complete"
    assert finished["cumulative_metadata"]["rows_seen"] == 2
    datasets = api.ok(api.get("datasets/", params={"project": project["id"], "name": "gamma_train"}))["results"]
    version = api.ok(api.get(f"dataset-versions/{datasets[0]['latest_version']['id']}/"))
    assert [f["datum"]["id"] for f in version["files"]] == [data_datum["id"]]
    assert version["files"][0]["datum"]["metadata"][0]["rows"] == 2


def test_default_stop_all_stops_siblings_and_pipeline_ends_error(api, project):
    commit = project["commit"]
    payload = {
        "project": project["id"],
        "title": "stop-all",
        "nodes": [node("sleeper", "sleep", commit), node("failer", "fail", commit)],
        "edges": [],
    }
    created = api.ok(api.post("pipelines/", json=payload), 201)
    done = api.wait(created["url"], timeout=20)
    assert done["status"] == "error"
    statuses = {n["name"]: n["status"] for n in done["nodes"]}
    assert statuses == {"sleeper": "stopped", "failer": "error"}


def test_stop_next_skips_downstream_and_continue_lets_it_run(api, project):
    commit = project["commit"]
    payload = {
        "project": project["id"],
        "title": "policies",
        "nodes": [
            node("fail-stop-next", "fail", commit, **{"on-error": "stop-next"}),
            node("after-stop-next", "noop", commit),
            node("fail-continue", "fail", commit, on_error="continue"),
            node("after-continue", "echo", commit, environment_variables={"X": "1"}),
        ],
        "edges": [
            {
                "source_node": "fail-stop-next",
                "source_type": "dependency",
                "source_key": "x",
                "target_node": "after-stop-next",
                "target_type": "dependency",
                "target_key": "x",
            },
            {
                "source_node": "fail-continue",
                "source_type": "dependency",
                "source_key": "x",
                "target_node": "after-continue",
                "target_type": "dependency",
                "target_key": "x",
            },
        ],
    }
    done = api.wait(api.ok(api.post("pipelines/", json=payload), 201)["url"], timeout=20)
    statuses = {n["name"]: n["status"] for n in done["nodes"]}
    assert statuses == {
        "fail-stop-next": "error",
        "after-stop-next": "stopped",
        "fail-continue": "error",
        "after-continue": "complete",
    }
    assert done["status"] == "error"


def test_stop_via_cli_double_slash_url_then_delete(api, project):
    payload = {
        "project": project["id"],
        "title": "to-stop",
        "tags": ["stopme"],
        "nodes": [node("sleeper", "sleep", project["commit"])],
        "edges": [],
    }
    created = api.ok(api.post("pipelines/", json=payload), 201)
    api.wait(created["url"], lambda p: p["nodes"][0]["execution"]["status"] == "started")
    stopped = api.ok(api.post(f"{created['url']}/stop/"))  # what `vh pipeline stop` sends: .../{id}//stop/
    assert stopped["status"] in ("stopping", "stopped")
    done = api.wait(created["url"], timeout=10)
    assert done["status"] == "stopped"
    assert done["nodes"][0]["execution"]["status"] == "stopped"

    assert api.delete(created["url"]).status_code == 204
    assert api.ok(api.get(created["url"]))["deleted"] is True
    visible = api.ok(api.get("pipelines/", params={"project": project["id"], "tag": "stopme"}))["results"]
    assert visible == []
    deleted = api.ok(api.get("pipelines/", params={"project": project["id"], "tag": "stopme", "deleted": "true"}))
    assert [p["id"] for p in deleted["results"]] == [created["id"]]


def test_parameter_and_input_edges_with_hand_written_spellings(api, project):
    seed = api.wait(api.run(project["id"], project["commit"], "produce", parameters={"harbor": "eta"})["url"])
    datum = next(o for o in seed["outputs"] if o["name"] == "data-eta.txt")
    url = api.ok(api.get(f"data/{datum['id']}/download/"))["url"]  # this server's signed URL works as an input
    payload = {
        "project": project["id"],
        "title": "copy-edges",
        "nodes": [
            {
                "name": "first",
                "type": "execution",
                "on_error": "stop-all",
                "template": {
                    "commit": project["commit"],
                    "step": "consume",
                    "parameters": {"harbor": "eta"},
                    "inputs": {"data": [url]},
                    "environment_variables": {"MODE": "a"},
                },
            },
            {
                "name": "second",
                "type": "execution",
                "template": {"commit": project["commit"], "step": "consume", "environment-variables": {"MODE": "b"}},
            },
        ],
        "edges": [
            {
                "source_node": "first",
                "source_type": "parameter",
                "source_key": "harbor",
                "target_node": "second",
                "target_type": "parameter",
                "target_key": "harbor",
            },
            {
                "source_node": "first",
                "source_type": "input",
                "source_key": "da*",
                "target_node": "second",
                "target_type": "input",
                "target_key": "data",
            },
        ],
    }
    done = api.wait(api.ok(api.post("pipelines/", json=payload), 201)["url"])
    assert done["status"] == "complete", done
    first, second = (n["execution"] for n in done["nodes"])
    assert first["environment_variables"] == {"MODE": "a"} and second["environment_variables"] == {"MODE": "b"}
    assert second["parameters"]["harbor"] == "eta"
    assert second["inputs"] == [{"name": "data", "urls": [url]}]
    assert second["cumulative_metadata"] == {"harbor_seen": "eta", "rows_seen": 2}


def test_retry_runs_a_failed_node_once_more_then_fails_the_pipeline(api, project):
    payload = {
        "project": project["id"],
        "title": "retry",
        "nodes": [node("flaky", "fail", project["commit"], **{"on-error": "retry"})],
        "edges": [],
    }
    done = api.wait(api.ok(api.post("pipelines/", json=payload), 201)["url"], timeout=20)
    assert done["status"] == "error"
    assert any("Retrying once" in entry["message"] for entry in done["nodes"][0]["log"])
    runs = api.ok(api.get("executions/", params={"project": project["id"], "pipeline": done["id"]}))
    assert [e["status"] for e in runs["results"]] == ["error", "error"]
