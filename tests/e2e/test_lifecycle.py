"""A sweep's life through the real CLI: create, no-op, grow, shrink, change a parameter, destroy.

The API token is a stack secret here (not an env var), so the end of the test also proves it never
reaches the state, the outputs or the CLI's output in plain text.
"""

from __future__ import annotations

import json

from e2e_support import ops


def test_sweep_lifecycle(make_stack, backend):
    stack = make_stack(token_in_config=True)
    stack.configure(["hA"], [1, 2])
    stack.run(["config", "set", "--secret", "valohai:token", backend.token])
    printed = []

    # preview: one create per cell plus the shared resources
    plan = stack.preview()
    assert ops(plan, "create") == sorted(
        ["code", "data-hA", "cell-hA-epochs-1", "cell-hA-epochs-2", "results", "prediction", "valohai-sweep-e2e"]
    )

    # up from empty: every cell trained, the prediction ran with every model
    printed.append(stack.up().stdout)
    out = stack.outputs()
    assert sorted(out["training_execution_ids"]) == ["hA/epochs-1", "hA/epochs-2"]
    for cell, execution_id in out["training_execution_ids"].items():
        execution = stack.api.get_execution(execution_id)
        assert execution["step"] == "train" and execution["status"] == "complete"
        assert execution["parameters"]["epochs"] == int(cell.rsplit("-", 1)[1])
        assert "val_accuracy" in out["metrics"][cell]
    prediction = stack.api.get_execution(out["prediction_execution_id"])
    assert prediction["step"] == "predict-models" and prediction["status"] == "complete"
    assert sorted(prediction["parameters"]["exec_ids"]) == sorted(out["training_execution_ids"].values())
    assert len(out["predictions"]["models"]) == 2
    assert (stack.dir / "report" / "report" / "index.html").is_file()
    assert len(stack.pipelines()) == 2

    # no change: exit 0, nothing planned, nothing created
    counts = (len(stack.pipelines()), len(stack.executions()))
    posts_before = backend.log_path.read_text().count('"POST /api/')
    plan = stack.preview("--expect-no-changes")
    assert backend.log_path.read_text().count('"POST /api/') == posts_before  # the no-op preview made no POST
    assert set(plan["changeSummary"]) == {"same"}
    assert set(s["op"] for s in plan["steps"]) <= {"same", "refresh"}
    assert (len(stack.pipelines()), len(stack.executions())) == counts

    # add a harbor: only its data and cells are created; the results and prediction follow
    stack.configure(["hA", "hB"], [1, 2])
    plan = stack.preview()
    assert ops(plan, "create") == ["cell-hB-epochs-1", "cell-hB-epochs-2", "data-hB"]
    assert ops(plan, "update") == ["results"] and ops(plan, "replace") == ["prediction"]
    printed.append(stack.up().stdout)
    assert len(stack.pipelines()) == 4
    assert sorted(stack.outputs()["training_execution_ids"]) == [
        "hA/epochs-1",
        "hA/epochs-2",
        "hB/epochs-1",
        "hB/epochs-2",
    ]

    # remove an epoch value: only its cells are deleted
    stack.configure(["hA", "hB"], [1])
    plan = stack.preview()
    assert ops(plan, "delete") == ["cell-hA-epochs-2", "cell-hB-epochs-2"]
    assert ops(plan, "create") == []
    printed.append(stack.up().stdout)
    assert sorted(p["title"] for p in stack.pipelines()) == [
        "training-pipeline-hA-epochs-1",
        "training-pipeline-hB-epochs-1",
    ]

    # a shared training parameter replaces every cell (preview only)
    stack.configure(["hA", "hB"], [1], training={"learning_rate": 0.01, "batch_size": 16})
    plan = stack.preview()
    assert ops(plan, "replace") == ["cell-hA-epochs-1", "cell-hB-epochs-1", "prediction"]
    stack.configure(["hA", "hB"], [1])

    # the token never appears in plain text: state, outputs, CLI output
    exported = stack.run(["stack", "export"]).stdout
    state_files = "".join(
        p.read_text(errors="ignore") for p in (stack.dir.parent / "pulumi-state").rglob("*") if p.is_file()
    )
    for text in [exported, state_files, json.dumps(stack.outputs()), *printed]:
        assert backend.token not in text
    # the program declares its resources without the SDK's stack traces (stacks/sdk_overhead.py)
    ours = [r for r in json.loads(exported)["deployment"]["resources"] if "dynamic/valohai" in r["type"]]
    assert ours and not any(r.get("stackTrace") for r in ours)
    # a cell stores two inputs of its own (the payload and the packed spec) and depends on its dataset only, both
    # the first cells and those added later (stacks/program.py `cell_payload`)
    cells = {r["urn"].rsplit("::", 1)[-1]: r for r in ours if r["type"].endswith(":TrainingPipeline")}
    assert sorted(cells) == ["cell-hA-epochs-1", "cell-hB-epochs-1"]
    for name, cell in cells.items():
        assert set(cell["inputs"]) == {"__provider", "payload", "spec"}
        assert [d.rsplit("::", 1)[-1] for d in cell["dependencies"]] == [f"data-{name.split('-')[1]}"]

    # destroy: nothing of the stack is left active in the backend
    stack.run(["destroy", "--yes"])
    assert stack.pipelines() == []
    assert stack.executions(status="incomplete") == []
    assert json.loads(stack.run(["stack", "export"]).stdout)["deployment"].get("resources") in (None, [])
