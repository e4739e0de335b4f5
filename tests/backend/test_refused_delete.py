"""Destroy that cannot get stuck: an API that refuses `DELETE pipelines/{id}/` (405) still lets the
provider's delete end, with the pipeline stopped, re-tagged `released` and one line saying so."""

from __future__ import annotations

import pytest
from conftest import Api

from local_valohai.testing import LocalValohai
from providers.api import credentials
from providers.resources.adoption import find_adoptable
from providers.resources.pipelines import PipelineProvider
from providers.sweep.identity import content_tag


@pytest.fixture(scope="module")
def refusing(tmp_path_factory):
    env = {"LOCAL_VALOHAI_REFUSE_PIPELINE_DELETE": "1"}
    with LocalValohai(tmp_path_factory.mktemp("refuse-delete"), workers=1, env=env) as server:
        credentials.set_token(server.token)
        try:
            yield server
        finally:
            credentials.set_token(None)


def test_refused_delete_stops_tags_released_and_ends(refusing, capsys):
    api = Api(refusing)
    project = api.create_project("refuse-delete")
    commit = api.import_package(project["id"])["identifier"]
    tag = content_tag("f" * 64)
    node = {"name": "sleep", "type": "execution", "template": {"step": "sleep", "commit": commit}}
    body = {"project": project["id"], "title": "t", "tags": ["stack:x", tag], "nodes": [node], "edges": []}
    pipeline = api.ok(api.post("pipelines/", json=body), 201)
    assert api.delete(f"pipelines/{pipeline['id']}/").status_code == 405

    props = {"host": refusing.url, "status": "started", "label": "harbor_A/epochs-2"}
    PipelineProvider().delete(pipeline["id"], props)  # returns: Pulumi drops it from the state

    line = capsys.readouterr().out
    assert "harbor_A/epochs-2: the API refused DELETE (HTTP 405); stopped pipeline #1, tagged it 'released'" in line
    after = api.wait(f"pipelines/{pipeline['id']}/")
    assert after["status"] == "stopped"
    assert after["tags"] == ["stack:x", "released"]
    assert find_adoptable([{**after, "status": "complete"}], tag) is None  # never adopted again
    PipelineProvider().delete(pipeline["id"], {**props, "status": "stopped"})  # again: still ends


def test_a_pipeline_already_gone_ends_quietly(refusing, capsys):
    PipelineProvider().delete("no-such-id", {"host": refusing.url, "status": "started", "label": "x"})
    assert "refused" not in capsys.readouterr().out
