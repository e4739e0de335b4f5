"""Bad input gets a 400/404 that names the problem, and nothing is created."""

from __future__ import annotations

import pytest
from conftest import package_bytes


def counts(api, project):
    executions = api.ok(api.get("executions/", params={"project": project["id"], "limit": 1}))["count"]
    pipelines = api.ok(api.get("pipelines/", params={"project": project["id"], "limit": 1}))["count"]
    return executions, pipelines


@pytest.mark.parametrize(
    ("payload", "status", "field", "text"),
    [
        ({"step": "nope"}, 400, "step", "Step 'nope' not found"),
        ({"step": "produce", "project": "00000000-0000-4000-8000-00000000dead"}, 400, "project", "not found"),
        ({"step": "consume"}, 400, "inputs", "Input 'data' of step 'consume' is required"),
        ({"step": "produce", "parameters": {"count": "many"}}, 400, "parameters", "many is not an integer"),
        ({"step": "produce", "parameters": {"colour": "red"}}, 400, "parameters", "Unknown parameter 'colour'"),
        ({"step": "consume", "inputs": {"../etc": ["datum://x"]}}, 400, "inputs", "without '..'"),
        (
            {"step": "consume", "inputs": {"data": ["dataset://missing/latest"]}},
            400,
            "inputs",
            "dataset 'missing' not found",
        ),
        ({"step": "consume", "inputs": {"data": ["https://example.com/x.csv"]}}, 400, "inputs", "no internet access"),
        ({"step": "produce", "commit": "~doesnotexist"}, 400, "commit", "not found"),
        ({"step": "produce", "time_limit": "soon"}, 400, "time_limit", "seconds"),
    ],
)
def test_bad_execution_payloads_are_rejected(api, project, payload, status, field, text):
    before = counts(api, project)
    body = {"project": project["id"], "commit": project["commit"], **payload}
    response = api.post("executions/", json=body)
    assert response.status_code == status, response.text
    assert text in " ".join(map(str, response.json()[field]))
    assert counts(api, project) == before


def test_malformed_json_and_non_object_bodies(api, project):
    before = counts(api, project)
    response = api.post("executions/", data="{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "JSON parse error" in response.json()["detail"]
    response = api.post("pipelines/", json=[1, 2])
    assert response.status_code == 400 and "non_field_errors" in response.json()
    assert counts(api, project) == before


@pytest.mark.parametrize(
    ("mutate", "text"),
    [
        (
            lambda p: p["edges"].append(
                {
                    "source_node": "a",
                    "source_type": "output",
                    "source_key": "*",
                    "target_node": "ghost",
                    "target_type": "input",
                    "target_key": "data",
                }
            ),
            "unknown node 'ghost'",
        ),
        (lambda p: p["nodes"][0].update({"on-error": "explode"}), "on-error must be one of"),
        (lambda p: p["nodes"][0]["template"].update(step="nope"), "Step 'nope' not found"),
        (lambda p: p["nodes"][0].update(name="../evil"), "without '..'"),
        (lambda p: p["nodes"][1]["template"].update(parameters={"harbor": ["a", "b"]}), "Only a single value"),
        (lambda p: p["edges"].clear(), "input 'data' is required"),
        (
            lambda p: p["edges"].append(
                {
                    "source_node": "b",
                    "source_type": "output",
                    "source_key": "*",
                    "target_node": "a",
                    "target_type": "parameter",
                    "target_key": "harbor",
                }
            ),
            "cycle",
        ),
    ],
)
def test_bad_pipeline_payloads_are_rejected(api, project, mutate, text):
    payload = {
        "project": project["id"],
        "title": "bad",
        "nodes": [
            {"name": "a", "template": {"commit": project["commit"], "step": "produce"}},
            {"name": "b", "template": {"commit": project["commit"], "step": "consume"}},
        ],
        "edges": [
            {
                "source_node": "a",
                "source_type": "output",
                "source_key": "*.txt",
                "target_node": "b",
                "target_type": "input",
                "target_key": "data",
            }
        ],
    }
    mutate(payload)
    before = counts(api, project)
    response = api.post("pipelines/", json=payload)
    assert response.status_code == 400, response.text
    assert text in response.text
    assert counts(api, project) == before


def test_unknown_objects_are_404(api, project):
    for path in (
        "executions/00000000-0000-4000-8000-000000000000/",
        f"executions/{project['id']}:9999/",
        "pipelines/00000000-0000-4000-8000-000000000000/",
        "data/nope/",
        "projects/nope/",
        f"commits/~nope/?project={project['id']}",
        "datasets/nope/",
        "no-such-endpoint/",
    ):
        response = api.get(path)
        assert response.status_code == 404, path
        assert "detail" in response.json()


def test_packages_with_escaping_paths_are_refused(api, project):
    evil = package_bytes(extra={"../evil.txt": "x"})
    response = api.post(f"projects/{project['id']}/import-package/", files={"data": ("data.tgz", evil)})
    assert response.status_code == 400 and "Unsafe path" in response.json()["data"][0]
    absolute = package_bytes(extra={"/tmp/evil.txt": "x"})
    assert api.post(f"projects/{project['id']}/import-package/", files={"data": ("d.tgz", absolute)}).status_code == 400
    garbage = api.post(f"projects/{project['id']}/import-package/", files={"data": ("d.tgz", b"not a tarball")})
    assert garbage.status_code == 400 and "tar" in garbage.json()["data"][0]
    commits = api.ok(api.get(f"projects/{project['id']}/commits/"))
    assert [c["identifier"] for c in commits] == [project["commit"]]


def test_import_is_idempotent_and_commit_lookup(api, project):
    again = api.import_package(project["id"])
    assert again["identifier"] == project["commit"]
    assert api.ok(api.get(f"commits/{project['commit']}/", params={"project": project["id"]}))["adhoc"] is True
    duplicate = api.post("projects/", json={"name": project["name"]})
    assert duplicate.status_code == 400 and "already exists" in duplicate.json()["name"][0]
