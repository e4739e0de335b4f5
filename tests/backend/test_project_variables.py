"""Project environment variables (secret ones never returned), environments, priority and `exclude=`."""

from __future__ import annotations

import hashlib
import json

SECRET = "s3cr3t-value-for-the-scan-7f3a"


def _checks_env(name: str, expected: str) -> str:
    """A command that exits 0 only when `name` holds `expected`, without the value in the command or logs."""
    digest = hashlib.sha256(expected.encode()).hexdigest()
    code = f"import hashlib,os,sys; v=os.environ.get('{name}','').encode(); sys.exit(hashlib.sha256(v).hexdigest()!='{digest}')"
    return f'python -c "{code}"'


def _everything_about(api, project_id: str, execution_id: str) -> str:
    """Every route that could show the project or the execution, concatenated."""
    parts = [
        api.get(f"projects/{project_id}/").text,
        api.get("projects/").text,
        api.get(f"executions/{execution_id}/").text,
        api.get("executions/", params={"project": project_id}).text,
        api.get(f"executions/{execution_id}/events/", params={"limit": 0}).text,
        api.get(f"executions/{execution_id}/status-events/").text,
        api.get(f"executions/{execution_id}/metadata/").text,
    ]
    return "\n".join(parts)


def test_secret_variable_reaches_the_step_and_no_route(api, server):
    proj = api.create_project("vars-secret")
    commit = api.import_package(proj["id"])["identifier"]
    url = f"projects/{proj['id']}/environment_variable/"
    made = api.ok(api.post(url, json={"name": "API_SECRET", "value": SECRET, "secret": True}), 201)
    assert made == {"name": "API_SECRET", "value": None, "secret": True}
    api.ok(api.post(url, json={"name": "PUBLIC_ONE", "value": "shown", "secret": False}), 201)
    listed = api.ok(api.get(f"projects/{proj['id']}/"))["environment_variables"]
    assert listed == {
        "API_SECRET": {"value": None, "secret": True},
        "PUBLIC_ONE": {"value": "shown", "secret": False},
    }

    run = api.run(proj["id"], commit, "noop", command=_checks_env("API_SECRET", SECRET))
    done = api.wait(f"executions/{run['id']}/")
    assert done["status"] == "complete", done
    assert done["environment_variables"] == {"PUBLIC_ONE": "shown"}
    assert SECRET not in _everything_about(api, proj["id"], run["id"])
    assert SECRET not in json.dumps(api.ok(api.get(f"projects/{proj['id']}/")))

    # the payload overrides an inherited variable, secret or not
    run = api.run(
        proj["id"],
        commit,
        "noop",
        command=_checks_env("API_SECRET", "mine"),
        environment_variables={"API_SECRET": "mine"},
    )
    assert api.wait(f"executions/{run['id']}/")["status"] == "complete"

    assert api.delete(url, json={"name": "API_SECRET"}).status_code == 204
    assert api.delete(url, json={"name": "API_SECRET"}).status_code == 404
    assert "API_SECRET" not in api.ok(api.get(f"projects/{proj['id']}/"))["environment_variables"]
    run = api.run(proj["id"], commit, "noop", command=_checks_env("API_SECRET", SECRET))
    assert api.wait(f"executions/{run['id']}/")["status"] == "error"


def test_bad_variable_bodies_are_one_line_errors(api):
    proj = api.create_project("vars-bad")
    url = f"projects/{proj['id']}/environment_variable/"
    bad_name = api.post(url, json={"name": "1-no", "value": "x"})
    assert bad_name.status_code == 400 and "Invalid environment variable name" in bad_name.json()["name"][0]
    bad_secret = api.post(url, json={"name": "OK", "value": "x", "secret": [1]})
    assert bad_secret.status_code == 400 and "secret" in bad_secret.json()
    assert api.post("projects/nope/environment_variable/", json={"name": "A", "value": "b"}).status_code == 404


def test_environment_by_slug_or_id_and_unknown_slug_lists_the_known(api, project):
    environments = api.ok(api.get("environments/"))["results"]
    local = next(e for e in environments if e["slug"] == "local")
    by_slug = api.run(project["id"], project["commit"], "noop", environment="local", priority=3)
    assert by_slug["environment"]["slug"] == "local" and by_slug["priority"] == 3
    by_id = api.run(project["id"], project["commit"], "noop", environment=local["id"])
    assert by_id["environment"]["id"] == local["id"]
    body = {"project": project["id"], "commit": project["commit"], "step": "noop", "environment": "aws-p3-gpu"}
    refused = api.post("executions/", json=body)
    assert refused.status_code == 400
    (error,) = refused.json()["environment"]
    assert error["code"] == "does_not_exist"
    assert "'aws-p3-gpu'" in error["message"] and "local" in error["message"]
    bad_priority = api.post("executions/", json={**body, "environment": "local", "priority": "high"})
    assert bad_priority.status_code == 400 and "priority" in bad_priority.json()


def test_pipeline_node_carries_environment_and_priority(api, project):
    node = {
        "name": "only",
        "type": "execution",
        "template": {"step": "noop", "commit": project["commit"], "environment": "local", "priority": 2},
    }
    pipeline = api.ok(
        api.post("pipelines/", json={"project": project["id"], "title": "env", "nodes": [node], "edges": []}), 201
    )
    done = api.wait(f"pipelines/{pipeline['id']}/")
    execution = done["nodes"][0]["execution"]
    assert execution["environment"]["slug"] == "local" and execution["priority"] == 2
    node["template"]["environment"] = "nowhere"
    refused = api.post("pipelines/", json={"project": project["id"], "title": "env", "nodes": [node], "edges": []})
    assert refused.status_code == 400 and "Unknown environment 'nowhere'" in refused.text


def test_exclude_drops_only_the_named_fields(api, project):
    run = api.run(project["id"], project["commit"], "produce", parameters={"harbor": "iota"})
    api.wait(f"executions/{run['id']}/")
    summarized = api.ok(api.get(f"executions/{run['id']}/", params={"exclude": "metadata,events,tags"}))
    assert summarized["cumulative_metadata"]["run_for"] == "iota"
    assert "tags" not in summarized and "outputs" in summarized
    no_outputs = api.ok(api.get(f"executions/{run['id']}/", params={"exclude": "metadata, outputs"}))
    assert "outputs" not in no_outputs and no_outputs["cumulative_metadata"]["run_for"] == "iota"
