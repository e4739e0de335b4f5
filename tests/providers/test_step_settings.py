"""Per-step execution settings (stack config `steps`): parsed at preview, carried into every payload."""

from pathlib import Path

import pytest
from support import HARBOR_DATA, single_pipeline

from providers.sweep import payloads, step_settings
from providers.sweep.config import Cell, SweepConfigError, parse_sweep
from providers.sweep.identity import node_identity, node_key

ROOT = Path(__file__).resolve().parents[2]
DATA = HARBOR_DATA
STEPS = {
    "train": {
        "environment": "aws-eu-west-1-g4dn-xlarge",
        "image": "tensorflow/tensorflow:2.21.0-gpu",
        "time_limit": 3600.0,  # Pulumi hands numbers over as floats
        "priority": "2",
        "environment_variables": {"TF_CPP_MIN_LOG_LEVEL": 2, "WANDB_MODE": "offline"},
    },
    "predict-models": {"environment": "local", "time_limit": 600},
    "generate-harbors": {"image": "python:3.11"},
}


@pytest.fixture(scope="module")
def config():
    return payloads.load_config((ROOT / "valohai.yaml").read_text())


def sweep_with(steps=STEPS, **extra):
    return parse_sweep({"harbors": ["harbor_A", "harbor_B"], "epochs": [2], "steps": steps, **extra})


def test_settings_are_parsed_to_payload_fields():
    sweep = sweep_with()
    assert sweep.step_settings("train") == {
        "environment": "aws-eu-west-1-g4dn-xlarge",
        "image": "tensorflow/tensorflow:2.21.0-gpu",
        "time_limit": 3600,
        "priority": 2,
        "environment_variables": {"TF_CPP_MIN_LOG_LEVEL": "2", "WANDB_MODE": "offline"},
    }
    assert sweep.step_settings("preprocess-dataset") == {}


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ({"trian": {"image": "x"}}, "steps has unknown step 'trian'; allowed: generate-harbors, preprocess-dataset"),
        ({"train": {"gpu": True}}, "steps.train has unknown key(s) gpu; allowed: environment, image"),
        ({"train": {"time_limit": "1h"}}, "steps.train.time_limit must be a whole number between 1 and"),
        ({"train": {"time_limit": 0}}, "steps.train.time_limit must be between 1 and"),
        ({"train": {"priority": 1.5}}, "steps.train.priority must be a whole number"),
        ({"train": {"environment": "has space"}}, "steps.train.environment must be an environment slug or id"),
        ({"train": {"image": ""}}, "steps.train.image must be a Docker image"),
        ({"train": {"environment_variables": {"1X": "a"}}}, "'1X' is not a variable name"),
        ({"train": {"environment_variables": {"X": {"a": 1}}}}, "steps.train.environment_variables.X must be a"),
        ({"train": {"environment_variables": ["X=1"]}}, "must be a mapping of NAME: value"),
        ({"train": "gpu"}, "steps.train must be a mapping of environment, image"),
        (["train"], "steps must be a mapping such as"),
    ],
)
def test_bad_settings_are_one_line_errors(steps, message):
    with pytest.raises(SweepConfigError) as caught:
        sweep_with(steps)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_every_node_template_and_execution_carries_its_steps_settings(config):
    sweep = sweep_with()
    cell = payloads.training_pipeline(
        config, commit="~c", project_id="p", cell=Cell("harbor_A", 2), sweep=sweep, data=DATA["harbor_A"], tags=[]
    )
    nodes = {n["name"]: n["template"] for n in cell["nodes"]}
    assert nodes["train"]["environment"] == "aws-eu-west-1-g4dn-xlarge"
    assert nodes["train"]["image"] == "tensorflow/tensorflow:2.21.0-gpu"
    assert nodes["train"]["time_limit"] == 3600 and nodes["train"]["priority"] == 2
    assert nodes["train"]["environment_variables"] == {"TF_CPP_MIN_LOG_LEVEL": "2", "WANDB_MODE": "offline"}
    assert "environment" not in nodes["preprocess"] and nodes["preprocess"]["image"] == "tensorflow/tensorflow:2.21.0"

    single = single_pipeline(config, sweep)
    templates = {n["name"]: n["template"] for n in single["nodes"]}
    assert all(t["environment"] == "aws-eu-west-1-g4dn-xlarge" for n, t in templates.items() if n.startswith("train-"))
    assert templates["predict"]["environment"] == "local" and templates["predict"]["time_limit"] == 600

    generate = payloads.generation_execution(
        commit="~c",
        project_id="p",
        harbor="harbor_A",
        data=sweep.data,
        tags=[],
        settings=sweep.step_settings("generate-harbors"),
    )
    assert generate["image"] == "python:3.11" and "environment" not in generate
    predict = payloads.prediction_execution(
        commit="~c",
        project_id="p",
        training_execution_ids={"harbor_A/epochs-2": "e1"},
        models=[],
        harbors=["harbor_A"],
        data_by_harbor=DATA,
        test_sets={},
        tags=[],
        settings=sweep.step_settings("predict-models"),
    )
    assert predict["environment"] == "local" and predict["time_limit"] == 600


def test_without_settings_payloads_and_keys_are_unchanged(config):
    plain = parse_sweep({"harbors": ["harbor_A"], "epochs": [2]})
    body = payloads.training_pipeline(
        config, commit="~c", project_id="p", cell=Cell("harbor_A", 2), sweep=plain, data=DATA["harbor_A"], tags=[]
    )
    for node in body["nodes"]:
        assert not {"environment", "priority", "time_limit", "environment_variables"} & set(node["template"])
    step = config.steps["train"].serialize()
    assert node_identity(step, {}, {"epochs": 2}, {}, {}) == node_identity(step, {}, {"epochs": 2}, {})
    settings = sweep_with().step_settings("train")
    assert node_key(node_identity(step, {}, {"epochs": 2}, {}, settings)) != node_key(
        node_identity(step, {}, {"epochs": 2}, {})
    )


# --- secret variables: names in `steps`, values in the secret config `secrets` -------------------------

SECRET = "s3cr3t-value-in-no-message"
SECRET_STEPS = {"train": {"secret_environment_variables": ["WANDB_API_KEY"]}, "predict-models": {"image": "x"}}


def test_secret_names_are_settings_and_part_of_the_key_but_values_are_not(config):
    sweep = sweep_with(SECRET_STEPS)
    assert sweep.step_settings("train") == {"secret_environment_variables": ["WANDB_API_KEY"]}
    assert step_settings.secret_names(sweep.steps) == {"train": ["WANDB_API_KEY"]}
    assert sweep_with({"train": {"secret_environment_variables": "B, A"}}).step_settings("train") == {
        "secret_environment_variables": ["A", "B"]
    }
    step = config.steps["train"].serialize()
    keyed = node_identity(step, {}, {"epochs": 2}, {}, sweep.step_settings("train"))
    assert node_key(keyed) != node_key(node_identity(step, {}, {"epochs": 2}, {}))
    assert SECRET not in repr(keyed)
    # the names alone put nothing into a payload: the values come from `add_secrets`
    body = payloads.training_pipeline(
        config, commit="~c", project_id="p", cell=Cell("harbor_A", 2), sweep=sweep, data=DATA["harbor_A"], tags=[]
    )
    assert all("environment_variables" not in n["template"] for n in body["nodes"])


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ({"train": {"secret_environment_variables": ["1BAD"]}}, "steps.train.secret_environment_variables: '1BAD'"),
        ({"train": {"secret_environment_variables": {"A": "x"}}}, "must be a list of variable names"),
        (
            {"train": {"environment_variables": {"A": "1"}, "secret_environment_variables": ["A"]}},
            "steps.train names A both in environment_variables and in secret_environment_variables: keep one",
        ),
        ({"trian": {"secret_environment_variables": ["A"]}}, "steps has unknown step 'trian'"),
    ],
)
def test_bad_secret_names_are_one_line_errors(steps, message):
    with pytest.raises(SweepConfigError) as caught:
        sweep_with(steps)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"WANDB_API_KEY": 12345}, "secrets.WANDB_API_KEY must be a string, got a int"),
        ({"WANDB_API_KEY": {"nested": SECRET}}, "secrets.WANDB_API_KEY must be a string, got a dict"),
        ({"WANDB_API_KEY": SECRET, "bad-name": SECRET}, "secrets: 'bad-name' is not a variable name"),
        ({}, "secrets has no value for WANDB_API_KEY (listed by steps.train): run `pulumi config set --secret"),
        (SECRET, "secrets must be a mapping of NAME: value, got a str"),
    ],
)
def test_bad_secret_values_are_errors_that_never_show_a_value(values, message):
    with pytest.raises(step_settings.StepSettingsError) as caught:
        step_settings.parse_secret_values(values, sweep_with(SECRET_STEPS).steps)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert SECRET not in str(caught.value) and "12345" not in str(caught.value)


def test_only_the_values_some_step_names_are_kept():
    values = {"WANDB_API_KEY": SECRET, "UNUSED": "other"}
    assert step_settings.parse_secret_values(values, sweep_with(SECRET_STEPS).steps) == {"WANDB_API_KEY": SECRET}
    assert step_settings.parse_secret_values(None, sweep_with({}).steps) == {}


def test_secret_values_go_into_their_steps_templates_and_executions_only(config):
    sweep = sweep_with(SECRET_STEPS)
    values = {"train": {"WANDB_API_KEY": SECRET}}
    single = single_pipeline(config, sweep)
    step_settings.add_secrets(single, values)
    for node in single["nodes"]:
        env = node["template"].get("environment_variables")
        if node["template"]["step"] == "train":
            assert env == {"WANDB_API_KEY": {"value": SECRET, "secret": True}}
        else:
            assert not env
    predict = {"step": "predict-models", "environment_variables": {"A": "1"}}
    assert step_settings.add_secrets(predict, {"predict-models": {"B": SECRET}})["environment_variables"] == {
        "A": "1",
        "B": {"value": SECRET, "secret": True},
    }
    assert step_settings.payload_steps(single) == {"preprocess-dataset", "train", "predict-models"}
    mimic = {"nodes": [{"name": "train", "type": "mimic", "execution": "e"}]}
    assert step_settings.add_secrets(mimic, values) == {"nodes": [{"name": "train", "type": "mimic", "execution": "e"}]}
