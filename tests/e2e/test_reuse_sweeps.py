"""Reuse of finished work through the real CLI: switching mode, adding a cell, changing the train script,
re-running a failed train and `reuse: false` run only the nodes whose content key never completed.

One backend, one stand-in project (bench/stand_in.py: the real steps' names, parameters, inputs and
outputs, no ML) and one stack for the whole module; the scenarios build on each other in order (harbor hA). New work is counted on the backend, by step, after each `pulumi up`.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from conftest import Stack, stack_on_copy

from toolchain.plan_explain import parse_preview


@pytest.fixture(scope="module")
def stack(tmp_path_factory, backend, project_copy) -> Stack:
    return stack_on_copy(tmp_path_factory, backend, project_copy, "e2e-reuse")


class Runs:
    """Executions the backend made, by step, since the last `new()`."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.seen = self.counts()

    def counts(self) -> Counter:
        return Counter(e["step"] for e in self.stack.executions())

    def new(self) -> dict[str, int]:
        now = self.counts()
        made = {step: now[step] - self.seen[step] for step in now if now[step] != self.seen[step]}
        self.seen = now
        return made


@pytest.fixture(scope="module")
def runs(stack) -> Runs:
    return Runs(stack)


def up(stack: Stack, check: int | None = 0) -> str:
    result = stack.up(check=check)
    return result.stdout + result.stderr


def test_parallel_to_single_runs_only_predict_and_back(stack, runs):
    trained = stack.outputs()["training_execution_ids"]
    stack.configure(["hA"], [1, 2], mode="single")
    plan = parse_preview(stack.preview())  # what plan-explain reports: the plan says it before anything runs
    assert {(r["name"], r["node"]) for r in plan["reuse"]} == {
        (f"hA/epochs-{e}", node) for e in (1, 2) for node in ("preprocess", "train")
    }
    assert plan["reuse_summary"] == {"to_run": 1, "reused": 4}
    out = up(stack)
    assert "reuse: 1 nodes to run, 4 reused" in out
    assert "cannot read this stack's state" not in out  # the sources came from the stack's own state
    assert runs.new() == {"predict-models": 1}  # 0 new train (or preprocess) executions
    (big,) = [p for p in stack.pipelines() if p["title"] == "sweep-one"]
    types = {n["name"]: n["type"] for n in big["nodes"]}
    assert types.pop("predict") == "execution" and set(types.values()) == {"mimic"}
    outputs = stack.outputs()
    assert outputs["training_execution_ids"] == trained  # the executions that actually trained
    assert set(outputs["reused_cells"]) == {"hA/epochs-1", "hA/epochs-2"}
    predict = next(n for n in big["nodes"] if n["name"] == "predict")["execution"]["id"]
    (report,) = [d for d in stack.api.execution_outputs(predict) if d["name"] == "predictions.json"]
    assert json.loads(stack.api.download(report["id"]))["reused_cells"] == outputs["reused_cells"]  # the report says so
    assert set(outputs["metrics"]["hA/epochs-1"]) >= {"val_accuracy"}

    stack.configure(["hA"], [1, 2], mode="parallel")
    up(stack)
    assert "train" not in runs.new()
    assert stack.outputs()["training_execution_ids"] == trained


def test_single_mode_one_epoch_added_runs_only_the_new_cell_and_predict(stack, runs):
    stack.configure(["hA"], [1, 2], mode="single")
    up(stack)
    runs.new()
    stack.configure(["hA"], [1, 2, 3], mode="single")
    out = up(stack)
    assert "hA/epochs-2: reuse train from pipeline #" in out
    # epochs-3's preprocess has the same key as the other cells' (epochs is not one of its inputs): reused too
    assert "hA/epochs-3: reuse preprocess from pipeline #" in out and "hA/epochs-3: reuse train" not in out
    assert "reuse: 2 nodes to run, 5 reused" in out  # train of epochs-3, and predict
    assert runs.new() == {"train": 1, "predict-models": 1}
    report = stack.outputs()["predictions"]  # the stack's report: epochs-1 and -2 were not trained again
    assert set(report["reused_cells"]) == {"hA/epochs-1", "hA/epochs-2"}
    assert {name: model.get("reused_from") for name, model in report["models"].items()} == {
        "model-hA-epochs-1": report["reused_cells"]["hA/epochs-1"],
        "model-hA-epochs-2": report["reused_cells"]["hA/epochs-2"],
        "model-hA-epochs-3": None,  # trained in this pipeline (a null value leaves the output's map)
    }


def test_train_script_change_reuses_every_preprocess_and_a_failed_train_reruns_alone(stack, runs, project_copy):
    stack.configure(["hA"], [1, 2, 3])  # back to parallel: nothing new trains
    up(stack)
    runs.new()
    marker = project_copy / "fail-epochs-2"
    marker.write_text("")
    train = project_copy / "steps" / "train.sh"  # POSIX shell (bench/stand_in.py); fails while the marker exists
    train.write_text(
        train.read_text()
        + f"if [ -e '{marker}' ] && [ \"$n\" = 2 ]; then echo 'failing on purpose (test marker)' >&2; exit 1; fi\n"
    )
    out = up(stack, check=None)
    assert "1 of 3 sweep cells failed" in out
    assert runs.new() == {"train": 3}  # every preprocess reused, every train ran, epochs-2's failed

    marker.unlink()
    out = up(stack)
    assert "hA/epochs-2: reuse preprocess from pipeline #" in out and "reuse: 1 nodes to run, 1 reused" in out
    assert runs.new() == {"train": 1, "predict-models": 1}  # only the failed train (and the prediction)


def test_reuse_false_runs_everything_in_the_changed_pipelines(stack, runs, project_copy):
    train = project_copy / "steps" / "train.sh"
    train.write_text(train.read_text() + "# another change\n")
    stack.configure(["hA"], [1, 2, 3], reuse=False)
    out = up(stack)
    assert "reused" not in out.split("Outputs:")[0]
    assert runs.new() == {"preprocess-dataset": 3, "train": 3, "predict-models": 1}
