"""Ready for real Valohai, through the real pulumi CLI on one small stack: per-step execution settings
reach the executions, a per-step secret variable (stack config `secrets`, a Pulumi secret) is in no state
file, output, CLI output, log or API answer, and destroy against a backend that refuses DELETE ends with an
empty stack and the pipelines stopped and tagged `released`."""

from __future__ import annotations

import json
from pathlib import Path

from fault_fixtures import make_backend, make_stack_on  # noqa: F401 - fixtures (their uses carry noqa: F811)

SECRET_VALUE = "e2e-secret-value-7f3a91"
STEPS = {
    "train": {
        "environment": "local",
        "image": "tensorflow/tensorflow:2.21.0-gpu",
        "time_limit": 1800,
        "priority": 3,
        "environment_variables": {"TF_CPP_MIN_LOG_LEVEL": "2"},
        "secret_environment_variables": ["E2E_SECRET"],
    },
    "predict-models": {"time_limit": 900},
}


def test_step_settings_reach_executions_and_destroy_survives_a_refused_delete(make_backend, make_stack_on, stand_in):  # noqa: F811
    backend = make_backend(env={"LOCAL_VALOHAI_REFUSE_PIPELINE_DELETE": "1"})
    stack = make_stack_on(backend, program=stand_in)
    stack.configure(["hA"], [1], steps=STEPS, poll_interval_seconds=0.2)
    stack.run(["config", "set", "--secret", "--path", "secrets.E2E_SECRET", SECRET_VALUE])
    runs = [stack.up(), stack.run(["preview", "--diff"]), stack.run(["refresh", "--yes"])]
    seen = [r.stdout + r.stderr for r in runs]
    out = stack.outputs()
    train = stack.api.get_execution(out["training_execution_ids"]["hA/epochs-1"])
    assert train["environment"]["slug"] == "local" and train["image"] == "tensorflow/tensorflow:2.21.0-gpu"
    assert train["time_limit"] == 1800 and train["priority"] == 3
    assert train["environment_variables"]["TF_CPP_MIN_LOG_LEVEL"] == "2"
    assert stack.api.get_execution(out["prediction_execution_id"])["time_limit"] == 900
    assert "E2E_SECRET" not in train["environment_variables"]
    # the secret: in no state file (after a refresh too), output, CLI output, API answer or backend log
    state = Path(stack.env["PULUMI_BACKEND_URL"].removeprefix("file://"))
    files = [f for f in state.rglob("*") if f.is_file()]
    assert any(f.suffix == ".json" for f in files), "no state file to scan"
    seen += [f.read_text(errors="replace") for f in files]
    seen += [
        json.dumps(out),
        stack.run(["stack", "export"]).stdout,
        (stack.dir / f"Pulumi.{stack.name}.yaml").read_text(),
    ]
    seen += [json.dumps(stack.pipelines()), json.dumps(stack.executions()), backend.log_text()]
    assert SECRET_VALUE not in "\n".join(seen)

    destroyed = stack.run(["destroy", "--yes", "--skip-preview"])
    assert "the API refused DELETE (HTTP 405); stopped pipeline #1, tagged it 'released'" in destroyed.stdout
    exported = json.loads(stack.run(["stack", "export"]).stdout)
    assert [
        r["type"] for r in exported["deployment"].get("resources") or [] if r["type"] != "pulumi:pulumi:Stack"
    ] == []
    pipelines = stack.pipelines()
    assert pipelines and all("released" in p["tags"] and p["status"] in ("complete", "stopped") for p in pipelines)
