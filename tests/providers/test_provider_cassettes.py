"""Every provider's check/create/read/diff/delete against recorded local-backend traffic.

Each test makes its own project inside its own cassette (tests/cassettes/test_provider_cassettes/), so
any test replays alone. Waits replay on a fake clock: the cassette holds several GETs of the same object
with advancing statuses, played in order. Re-record with `make record-cassettes`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests
import yaml
from vcr.errors import CannotOverwriteExistingCassetteException

from providers.api.client import ValohaiClient
from providers.api.credentials import client
from providers.resources import training_results
from providers.resources.code_package import CodePackageProvider, build_package, commit_identifier
from providers.resources.harbor_dataset import HarborDatasetProvider
from providers.resources.packed import pack, spec_view, unpack
from providers.resources.pipelines import LIVE, PipelineProvider, live_view
from providers.resources.prediction import PredictionProvider
from providers.resources.training_results import PACKED_OUTPUTS, TrainingResultsProvider
from providers.sweep import payloads
from providers.sweep.config import Cell, Sweep
from providers.sweep.identity import node_identity, resource_key

STACK = "vcr-test"
HARBOR = "harbor_A"
DATA = {"image_size": 16, "images_per_class": 4, "test_images_per_harbor": 2, "seed": 7}
# The training values the cassettes were recorded with (the request bodies must match them).
TRAIN = {"learning_rate": 0.001, "batch_size": 32, "validation_split": 0.3}
SWEEP = Sweep(harbors=(HARBOR,), epochs=(2,), train=TRAIN, data=DATA)


def identity_of(**parameters) -> dict:
    """A one-node identity (what stacks/program.py computes from valohai.yaml and the step files)."""
    return {"node": node_identity({"name": "step"}, {"steps/x.py": "0" * 64}, parameters, {})}


def _cassette_tests(fn):
    return pytest.mark.vcr(pytest.mark.usefixtures("cassette_env")(fn))


# --- building blocks (each runs inside the calling test's cassette) -------------------------------------


def make_package(host: str, root: Path, project_name: str) -> dict:
    client(host).create_project(project_name, "VCR provider test")
    props = {"host": host, "project": project_name, "root": str(root), "commit": commit_identifier(build_package(root))}
    provider = CodePackageProvider()
    assert provider.check({}, props).failures == []
    created = provider.create(props)
    assert created.id == props["commit"]
    return created.outs


def make_harbor_data(host: str, package: dict) -> dict:
    """Generate one harbor's data; the outputs plus the generating `execution_id`."""
    props = {
        "host": host,
        "project_id": package["project_id"],
        "commit": package["commit"],
        "harbor": HARBOR,
        "data": DATA,
        "stack": STACK,
        "label": f"data/{HARBOR}",
        "key": resource_key("harbor-data", STACK, identity_of(**DATA)),
        "identity": identity_of(**DATA),
    }
    assert HarborDatasetProvider().check({}, props).failures == []
    created = HarborDatasetProvider().create(props)
    return {**created.outs, "execution_id": created.id}


def pipeline_props(host: str, root: Path, package: dict, data: dict, epochs: int) -> dict:
    config = payloads.load_config((root / "valohai.yaml").read_text())
    payload = payloads.training_pipeline(
        config,
        commit=package["commit"],
        project_id=package["project_id"],
        cell=Cell(HARBOR, epochs),
        sweep=SWEEP,
        data=data,
        tags=["vcr"],
    )
    identity = identity_of(epochs=epochs)
    return {
        "host": host,
        "payload": payload,
        "stack": STACK,
        "label": f"{HARBOR}/epochs-{epochs}",
        "key": resource_key("cell", STACK, identity),
        "identity": identity,
    }


def requests_to(cassette, method: str, pattern: str) -> list:
    return [r for r in cassette.requests if r.method == method and re.search(pattern, r.path)]


# --- the tests -------------------------------------------------------------------------------------------


@_cassette_tests
def test_code_package_uploads_once_and_reads(vh_host, vcr_project, vcr):
    outs = make_package(vh_host, vcr_project, "vcr-code-package")
    provider = CodePackageProvider()
    again = provider.create({k: outs[k] for k in ("host", "project", "root", "commit")})
    assert again.id == outs["commit"] and again.outs["project_id"] == outs["project_id"]
    assert len(requests_to(vcr, "POST", r"/import-package/$")) == 1  # the second create found the commit

    read = provider.read(outs["commit"], outs)
    assert read.id == outs["commit"] and read.inputs["project"] == "vcr-code-package"
    gone = provider.read("~" + "0" * 64, outs)
    assert gone.id == ""
    assert provider.diff(outs["commit"], outs, {**outs}).changes is False


@_cassette_tests
def test_harbor_dataset_create_waits_for_the_generation(vh_host, vcr_project, wait_clock):
    package = make_package(vh_host, vcr_project, "vcr-harbor-data")
    outs = make_harbor_data(vh_host, package)
    assert outs["status"] == "complete"
    assert all(outs[k].startswith("datum://") for k in ("images", "labels", "test_labels"))
    execution_id = outs.pop("execution_id")
    read = HarborDatasetProvider().read(execution_id, outs)
    assert read.id == execution_id and read.outs["status"] == "complete"
    # A new commit alone changes nothing: the key is the generate node's content, not the commit.
    diff = HarborDatasetProvider().diff(execution_id, outs, {**outs, "commit": "~" + "1" * 64})
    assert not diff.changes
    seed = identity_of(**{**DATA, "seed": 8})
    diff = HarborDatasetProvider().diff(
        execution_id, outs, {**outs, "key": resource_key("harbor-data", STACK, seed), "identity": seed}
    )
    assert diff.replaces == ["key"]


@_cassette_tests
def test_training_pipeline_create_adopts_reads_and_deletes(vh_host, vcr_project, vcr, capsys):
    package = make_package(vh_host, vcr_project, "vcr-pipeline-adoption")
    data = make_harbor_data(vh_host, package)
    props = pipeline_props(vh_host, vcr_project, package, data, epochs=2)
    provider = PipelineProvider()
    assert provider.check({}, props).failures == []

    first = provider.create(props)
    second = provider.create(props)  # e.g. a retried or re-run create: adopts by the content tag
    assert second.id == first.id and spec_view(second.outs)["key"] == spec_view(first.outs)["key"] == props["key"]
    assert len(requests_to(vcr, "POST", r"/pipelines/$")) == 1
    api = client(vh_host)
    listed = api.list_pipelines(package["project_id"], title=props["payload"]["title"])
    assert [p["id"] for p in listed] == [first.id]

    read = provider.read(first.id, first.outs)
    assert read.id == first.id and read.outs["status"] in ("started", "complete")
    assert provider.diff(first.id, read.outs, props).changes is False
    # the payload (commit, title, data URIs) is not identity: only the key decides
    moved = {**props, "payload": {**props["payload"], "title": "another-title", "nodes": []}}
    assert provider.diff(first.id, read.outs, moved).changes is False
    renamed = {**read.outs, LIVE: pack({"title": "renamed in the UI", "nodes": live_view(read.outs)[1]})}
    assert provider.diff(first.id, renamed, props).changes is False
    assert (
        provider.cosmetic_edit(read.outs, renamed)
        == f"title is 'renamed in the UI' in Valohai, was {live_view(read.outs)[0]!r}"
    )
    assert provider.diff(first.id, read.outs, {**props, "host": vh_host + "/"}).changes is False
    capsys.readouterr()
    other = identity_of(epochs=3)
    changed = {**props, "key": resource_key("cell", STACK, other), "identity": other}
    assert provider.check(props, changed).failures == []  # as the engine does: Check (old inputs), then Diff
    assert provider.diff(first.id, read.outs, changed).replaces == ["key"]
    assert "harbor_A/epochs-2: replace: epochs 2 -> 3" in capsys.readouterr().out

    provider.delete(first.id, read.outs)
    assert provider.read(first.id, read.outs).id == ""  # deleted: planned for re-creation
    provider.delete(first.id, read.outs)  # deleting again is fine


@_cassette_tests
def test_pipeline_deleted_outside_the_tool_reads_as_gone(vh_host, vcr_project, capsys):
    package = make_package(vh_host, vcr_project, "vcr-pipeline-deleted")
    data = make_harbor_data(vh_host, package)
    props = pipeline_props(vh_host, vcr_project, package, data, epochs=3)
    created = PipelineProvider().create(props)
    client(vh_host).delete_pipeline(created.id)  # someone deletes it in the UI
    read = PipelineProvider().read(created.id, created.outs)
    assert read.id == "" and read.outs == {}
    assert "harbor_A/epochs-3: re-create: pipeline deleted outside the tool" in capsys.readouterr().out
    # and a pipeline id the server never knew reads as gone too
    assert PipelineProvider().read("00000000-0000-4000-8000-000000000000", created.outs).id == ""


@_cassette_tests
def test_failed_pipeline_fails_results_and_plans_a_replace(vh_host, vcr_project, wait_clock, capsys):
    package = make_package(vh_host, vcr_project, "vcr-pipeline-failed")
    data = make_harbor_data(vh_host, package)
    props = pipeline_props(vh_host, vcr_project, package, data, epochs=13)  # train fails on 13
    created = PipelineProvider().create(props)
    cells = {"harbor_A/epochs-13": {"pipeline": created.id, "node": "train"}}
    with pytest.raises(RuntimeError) as caught:
        TrainingResultsProvider().create({"host": vh_host, "cells": cells, "predict": None, "timeout_seconds": 600})
    assert "1 of 1 sweep cells failed" in str(caught.value) and "harbor_A/epochs-13" in str(caught.value)

    read = PipelineProvider().read(created.id, created.outs)
    assert read.outs["status"] == "error"
    capsys.readouterr()
    diff = PipelineProvider().diff(created.id, read.outs, props)
    assert diff.changes and diff.replaces == ["status"]
    line = capsys.readouterr().out
    assert "harbor_A/epochs-13: re-run: last run error (train: command failed with exit code" in line, line
    PipelineProvider().delete(created.id, read.outs)


@_cassette_tests
def test_training_results_wait_loop_and_prediction(
    vh_host, vcr_project, vcr, wait_clock, real_sleeps, recording, monkeypatch, tmp_path
):
    package = make_package(vh_host, vcr_project, "vcr-training-results")
    data = make_harbor_data(vh_host, package)
    props = pipeline_props(vh_host, vcr_project, package, data, epochs=2)
    created = PipelineProvider().create(props)

    seen: list[str] = []
    polls: list[str] = []
    real_cell_state = training_results.cell_state

    def watching(pipeline, node_name):
        status, execution = real_cell_state(pipeline, node_name)
        polls.append(status)
        if not seen or seen[-1] != status:
            seen.append(status)
        return status, execution

    monkeypatch.setattr(training_results, "cell_state", watching)
    cells = {"harbor_A/epochs-2": {"pipeline": created.id, "node": "train"}}
    test_sets = {HARBOR: {"pipeline": created.id, "node": "preprocess"}}
    per_execution: list[str] = []

    def spying(name: str):
        real = getattr(ValohaiClient, name)
        return lambda self, *args, **kwargs: per_execution.append(name) or real(self, *args, **kwargs)

    for name in ("get_execution", "execution_outputs"):
        monkeypatch.setattr(ValohaiClient, name, spying(name))
    stored = (
        TrainingResultsProvider()
        .create({"host": vh_host, "cells": cells, "predict": None, "timeout_seconds": 600, "test_sets": test_sets})
        .outs
    )
    # the per-cell outputs are stored packed (training_results.py PACKED_OUTPUTS); the program opens them
    results = {k: unpack(v) if k in PACKED_OUTPUTS else v for k, v in stored.items()}
    assert all(isinstance(stored[k], str) for k in PACKED_OUTPUTS)
    # metrics, models and test sets come from the pipeline reads (the nodes carry their executions in full):
    # no request per execution after the wait
    assert per_execution == []

    assert seen[0] in ("created", "queued", "started") and "started" in seen and seen[-1] == "complete"
    assert len(polls) >= 3  # several GETs of the same pipeline, replayed in order with advancing statuses
    assert wait_clock.sleeps and sum(wait_clock.sleeps) > 0  # the loop slept... on the fake clock in replay
    train_id = results["training_execution_ids"]["harbor_A/epochs-2"]
    assert results["metrics"]["harbor_A/epochs-2"] == {
        "val_accuracy": 0.8,
        "val_loss": 0.3,
        "accuracy": 0.9,
        "loss": 0.2,
    }
    assert len(results["model_uris"]["harbor_A/epochs-2"]) == 2
    # lineage: train read its own preprocess node's training set, the prediction gets that node's test set
    pipeline = client(vh_host).get_pipeline(created.id)
    nodes = {n["name"]: n["execution"] for n in pipeline["nodes"]}
    preprocess_outputs = {
        d["name"]: f"datum://{d['id']}" for d in client(vh_host).execution_outputs(nodes["preprocess"]["id"])
    }
    train_inputs = {i["name"]: i["urls"] for i in client(vh_host).get_execution(train_id)["inputs"]}
    assert train_inputs["dataset"] == [preprocess_outputs["train/harbor_A_train.npz"]]
    assert results["test_set_uris"] == {HARBOR: [preprocess_outputs["test/harbor_A/harbor_A_test.npz"]]}

    payload = payloads.prediction_execution(
        commit=package["commit"],
        project_id=package["project_id"],
        training_execution_ids={"harbor_A/epochs-2": train_id},
        models=results["model_uris"]["harbor_A/epochs-2"],
        harbors=[HARBOR],
        data_by_harbor={HARBOR: data},
        test_sets=results["test_set_uris"],
        tags=["vcr"],
    )
    assert payload["inputs"]["dataset"] == results["test_set_uris"][HARBOR]
    report_dir = tmp_path / "report"
    prediction = PredictionProvider()
    pprops = {
        "host": vh_host,
        "payload": payload,
        "execution_id_from_pipeline": None,
        "stack": STACK,
        "report_dir": str(report_dir),
        "label": "prediction",
        "key": resource_key("prediction", STACK, identity_of(harbours=[HARBOR])),
        "identity": identity_of(harbours=[HARBOR]),
    }
    assert prediction.check({}, pprops).failures == []
    made = prediction.create(pprops)
    assert made.outs["status"] == "complete" and unpack(made.outs["summary"]) == {"models": 1, "accuracy": 0.75}
    assert (report_dir / "report" / "index.html").read_text() == "<html>report</html>"
    assert prediction.read(made.id, made.outs).outs["status"] == "complete"
    prediction.delete(made.id, made.outs)  # complete: nothing to stop
    assert requests_to(vcr, "GET", r"/signed-download/$")  # the report came through signed URLs
    if not recording:
        assert vcr.all_played  # every recorded interaction was used, in order


# --- matching is strict: a changed payload does not replay ------------------------------------------------


def _recorded(cassette_path: Path, method: str, pattern: str) -> dict:
    data = yaml.safe_load(cassette_path.read_text())
    for interaction in data["interactions"]:
        request = interaction["request"]
        if request["method"] == method and re.search(pattern, request["uri"]):
            return request
    raise AssertionError(f"{cassette_path.name} holds no {method} {pattern}")


def test_a_changed_json_payload_fails_replay_with_a_readable_mismatch(cassette_secrets, replay_cassette):
    path = (
        cassette_secrets["cassettes"]
        / "test_provider_cassettes"
        / "test_training_pipeline_create_adopts_reads_and_deletes.yaml"
    )
    recorded = _recorded(path, "POST", r"/api/v0/pipelines/$")
    body = json.loads(recorded["body"])
    train = next(n for n in body["nodes"] if n["name"] == "train")
    train["template"]["parameters"]["epochs"] = 99
    with replay_cassette(path), pytest.raises(CannotOverwriteExistingCassetteException) as caught:
        requests.post(recorded["uri"], json=body, timeout=5)
    message = str(caught.value)
    assert "body_matcher" in message and "epochs: recorded 2, now 99" in message

    train["template"]["parameters"]["epochs"] = 2  # the recorded payload, in any key order, does replay
    reordered = dict(reversed(list(body.items())))
    with replay_cassette(path):
        assert requests.post(recorded["uri"], json=reordered, timeout=5).status_code == 201


def test_a_changed_upload_fails_replay_naming_the_part(cassette_secrets, replay_cassette, vcr_project, tmp_path):
    path = cassette_secrets["cassettes"] / "test_provider_cassettes" / "test_code_package_uploads_once_and_reads.yaml"
    recorded = _recorded(path, "POST", r"/import-package/$")
    changed_root = tmp_path / "project"
    changed_root.mkdir()
    (changed_root / "valohai.yaml").write_text((vcr_project / "valohai.yaml").read_text() + "# changed\n")
    form = {"description": "valohai-pipelines-as-code package", "yaml_path": "valohai.yaml"}
    with replay_cassette(path), pytest.raises(CannotOverwriteExistingCassetteException) as caught:
        requests.post(
            recorded["uri"],
            files={"data": ("data.tgz", build_package(changed_root), "application/gzip")},
            data=form,
            timeout=5,
        )
    assert "multipart body differs: multipart.data.sha256" in str(caught.value)

    with replay_cassette(path):  # the same tarball, with a new random boundary, replays
        response = requests.post(
            recorded["uri"],
            data=form,
            timeout=5,
            files={"data": ("data.tgz", build_package(vcr_project), "application/gzip")},
        )
        assert response.status_code == 201


# --- no secrets in any cassette ------------------------------------------------------------------------


def test_no_token_or_signature_in_any_cassette(cassette_secrets):
    files = [p for p in cassette_secrets["cassettes"].rglob("*") if p.is_file()]
    assert files, "no cassettes: run `make record-cassettes`"
    for path in files:
        text = path.read_text(errors="replace")
        assert not re.search(r"Token\s+[0-9a-fA-F]{8,}", text), f"{path}: holds a `Token <hex>` string"
        assert not re.search(r"signature=[0-9a-fA-F]{16,}", text), f"{path}: holds a download signature"
        assert not re.search(r"(?im)^\s*authorization:", text), f"{path}: holds an Authorization header"
        for token in cassette_secrets["tokens"]:  # the recording servers' tokens (known while recording)
            assert token not in text, f"{path}: holds the recording server's token"


@_cassette_tests
def test_step_settings_reach_the_node_executions(vh_host, vcr_project, vcr):
    """Stack config `steps` (environment, image, time limit, priority, variables) in the posted pipeline,
    and on the execution the backend made from the node."""
    from providers.sweep.step_settings import parse_step_settings

    settings = parse_step_settings(
        {
            "preprocess-dataset": {
                "environment": "local",
                "image": "python:3.11-slim",
                "time_limit": 900,
                "priority": 4,
                "environment_variables": {"PREPROCESS_NOTE": "from-stack-config"},
            }
        }
    )
    package = make_package(vh_host, vcr_project, "vcr-step-settings")
    data = make_harbor_data(vh_host, package)
    config = payloads.load_config((vcr_project / "valohai.yaml").read_text())
    sweep = Sweep(harbors=(HARBOR,), epochs=(2,), train=TRAIN, data=DATA, steps=settings)
    payload = payloads.training_pipeline(
        config,
        commit=package["commit"],
        project_id=package["project_id"],
        cell=Cell(HARBOR, 2),
        sweep=sweep,
        data=data,
        tags=["vcr"],
    )
    posted = {n["name"]: n["template"] for n in payload["nodes"]}
    assert posted["preprocess"]["environment"] == "local" and posted["preprocess"]["priority"] == 4
    identity = identity_of(epochs=2, settings="preprocess")
    props = {
        "host": vh_host,
        "payload": payload,
        "stack": STACK,
        "label": f"{HARBOR}/epochs-2",
        "key": resource_key("cell", STACK, identity),
        "identity": identity,
    }
    created = PipelineProvider().create(props)
    body = json.loads(requests_to(vcr, "POST", r"/pipelines/$")[0].body)
    assert {n["name"]: n["template"].get("time_limit") for n in body["nodes"]} == {"preprocess": 900, "train": None}
    pipeline = client(vh_host).get_pipeline(created.id)
    execution = next(n for n in pipeline["nodes"] if n["name"] == "preprocess")["execution"]
    assert execution["environment"]["slug"] == "local" and execution["image"] == "python:3.11-slim"
    assert execution["time_limit"] == 900 and execution["priority"] == 4
    assert execution["environment_variables"]["PREPROCESS_NOTE"] == "from-stack-config"
    PipelineProvider().delete(created.id, created.outs)
