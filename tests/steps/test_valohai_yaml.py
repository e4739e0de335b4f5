"""valohai.yaml: lints clean, declares the contract in docs/CONTRACTS.md, and its pipeline converts."""

from __future__ import annotations

import valohai_yaml
from step_runner import REPO
from valohai_yaml.lint import lint_file
from valohai_yaml.pipelines.conversion import PipelineConverter

YAML = REPO / "valohai.yaml"


def config():
    return valohai_yaml.parse(YAML.read_text())


def test_valohai_yaml_lints_without_errors():
    result = lint_file(str(YAML))
    assert result.error_count == 0, result.messages
    assert not [m for m in result.messages if m["type"] == "warning"], result.messages


def test_steps_declare_the_contracted_parameters_and_inputs():
    steps = config().steps
    expected = {
        "generate-harbors": ({"harbors", "image_size", "images_per_class", "test_images_per_harbor", "seed"}, set()),
        "preprocess-dataset": ({"dataset_name", "validation_split", "image_size"}, {"dataset", "labels"}),
        "train": ({"dataset_name", "epochs", "learning_rate", "batch_size"}, {"dataset"}),
        "predict-models": ({"exec_ids", "harbours", "reused_cells"}, {"dataset", "models", "test_labels"}),
    }
    for name, (parameters, inputs) in expected.items():
        step = steps[name]
        assert parameters <= set(step.parameters), name
        assert inputs == set(step.inputs), name
        assert step.command == [
            "python steps/ensure_requirements.py",
            f"python steps/{name.replace('-', '_')}.py {{parameters}}",
        ]
    assert steps["train"].inputs["dataset"].default == "dataset://{parameter:dataset_name}_train/latest"
    assert steps["generate-harbors"].parameters["harbors"].multiple.value == "separate"
    assert steps["predict-models"].parameters["exec_ids"].optional


def test_commands_point_at_existing_step_files():
    for step in config().steps.values():
        for command in step.command:
            script = command.split()[1]
            assert (REPO / script).is_file(), script


def test_list_parameters_render_comma_separated():
    step = config().steps["generate-harbors"]
    command = step.build_command({"harbors": ["harbor_A", "harbor_B"], "image_size": 32})[-1]
    assert "--harbors=harbor_A,harbor_B" in command and "--image_size=32" in command
    predict = config().steps["predict-models"].build_command({"exec_ids": [], "harbours": ["harbor_A"]})[-1]
    assert "exec_ids" not in predict and "--harbours=harbor_A" in predict


def test_training_pipeline_converts_with_the_metadata_and_lineage_edges():
    cfg = config()
    converted = PipelineConverter(config=cfg, commit_identifier="abc123").convert_pipeline(
        cfg.pipelines["training-pipeline"]
    )
    nodes = {node["name"]: node for node in converted["nodes"]}
    assert nodes["preprocess"]["template"]["step"] == "preprocess-dataset"
    assert nodes["train"]["template"]["step"] == "train"
    assert nodes["train"]["template"]["inputs"]["dataset"] == ["dataset://{parameter:dataset_name}_train/latest"]
    assert converted["edges"] == [
        {
            "source_node": "preprocess",
            "source_type": "metadata",
            "source_key": "run_training_for",
            "target_node": "train",
            "target_type": "parameter",
            "target_key": "dataset_name",
        },
        {  # lineage: train reads its own preprocess node's training set (the edge replaces the default)
            "source_node": "preprocess",
            "source_type": "output",
            "source_key": "train/*",
            "target_node": "train",
            "target_type": "input",
            "target_key": "dataset",
        },
    ]
