"""Payloads built from the real valohai.yaml with valohai-yaml: per cell, single mode, prediction."""

from pathlib import Path

import pytest
from support import HARBOR_DATA, single_pipeline

from providers.sweep import payloads
from providers.sweep.config import Cell, parse_sweep

ROOT = Path(__file__).resolve().parents[2]
DATA = HARBOR_DATA


@pytest.fixture(scope="module")
def config():
    return payloads.load_config((ROOT / "valohai.yaml").read_text())


def test_cell_pipeline_sets_harbor_epochs_and_data(config):
    sweep = parse_sweep({"harbors": ["harbor_A"], "epochs": [3], "training": {"learning_rate": 0.01}})
    body = payloads.training_pipeline(
        config,
        commit="~c0ffee",
        project_id="p1",
        cell=Cell("harbor_A", 3),
        sweep=sweep,
        data=DATA["harbor_A"],
        tags=["stack:t"],
    )
    assert body["title"] == "training-pipeline-harbor_A-epochs-3" and body["project"] == "p1"
    nodes = {n["name"]: n["template"] for n in body["nodes"]}
    assert nodes["preprocess"]["inputs"]["dataset"] == ["datum://img-harbor_A"]
    assert nodes["preprocess"]["inputs"]["labels"] == ["datum://lab-harbor_A"]
    assert nodes["train"]["parameters"]["epochs"] == 3
    assert nodes["train"]["parameters"]["learning_rate"] == 0.01
    assert nodes["train"]["commit"] == "~c0ffee"
    assert {
        "source_node": "preprocess",
        "source_type": "metadata",
        "source_key": "run_training_for",
        "target_node": "train",
        "target_type": "parameter",
        "target_key": "dataset_name",
    } in body["edges"]
    # lineage: train reads its own preprocess node's training set through the edge, never `…/latest`
    assert "dataset" not in nodes["train"]["inputs"]
    assert {
        "source_node": "preprocess",
        "source_type": "output",
        "source_key": "train/*",
        "target_node": "train",
        "target_type": "input",
        "target_key": "dataset",
    } in body["edges"]


def test_single_pipeline_has_two_nodes_per_cell_and_a_predict_node_fed_by_every_train_node(config):
    sweep = parse_sweep({"harbors": ["harbor_A", "harbor_B"], "epochs": [2, 5], "mode": "single"})
    body = single_pipeline(config, sweep)
    names = [n["name"] for n in body["nodes"]]
    assert len(names) == 2 * 4 + 1 and names[-1] == "predict"
    assert sum(n.startswith("train-") for n in names) == 4
    to_predict = [e for e in body["edges"] if e["target_node"] == "predict" and e["target_key"] == "models"]
    assert sorted(e["source_node"] for e in to_predict) == sorted(n for n in names if n.startswith("train-"))
    assert all(e["source_type"] == "output" and e["source_key"] == "*" for e in to_predict)
    metadata_edges = [e for e in body["edges"] if e["source_type"] == "metadata"]
    assert len(metadata_edges) == 4
    predict = next(n for n in body["nodes"] if n["name"] == "predict")
    assert predict["template"]["parameters"]["harbours"] == ["harbor_A", "harbor_B"]
    # lineage: each harbor's test set comes from one of this sweep's preprocess nodes, never `…/latest`
    assert "dataset" not in predict["template"]["inputs"]
    test_edges = [e for e in body["edges"] if e["target_node"] == "predict" and e["target_key"] == "dataset"]
    assert [(e["source_node"], e["source_key"]) for e in test_edges] == [
        ("preprocess-harbor_A-epochs-2", "test/*"),
        ("preprocess-harbor_B-epochs-2", "test/*"),
    ]
    train_edges = [e for e in body["edges"] if e["target_key"] == "dataset" and e["target_node"].startswith("train-")]
    assert sorted((e["source_node"], e["target_node"]) for e in train_edges) == sorted(
        (f"preprocess-{c.slug}", f"train-{c.slug}") for c in sweep.cells
    )
    assert "latest" not in str(body)


def test_prediction_execution_carries_exec_ids_and_models(config):
    body = payloads.prediction_execution(
        commit="~c",
        project_id="p",
        training_execution_ids={"b": "2", "a": "1"},
        models=["datum://m1"],
        harbors=["harbor_A"],
        data_by_harbor=DATA,
        test_sets={"harbor_A": ["datum://test-A"]},
        tags=[],
    )
    assert body["step"] == "predict-models"
    assert body["inputs"]["dataset"] == ["datum://test-A"]
    assert body["parameters"]["exec_ids"] == ["1", "2"]
    assert body["inputs"]["models"] == ["datum://m1"]
    assert body["inputs"]["test_labels"] == ["datum://tl-harbor_A"]


def test_a_yaml_without_the_training_pipeline_is_refused_with_the_reason():
    with pytest.raises(payloads.PayloadError, match="no step 'generate-harbors'"):
        payloads.load_config("- step:\n    name: x\n    image: i\n    command: c\n")
    with pytest.raises(payloads.PayloadError, match=r"valohai\.yaml is invalid"):
        payloads.load_config("- step: {name: 1}\n")
