"""Per-step identity and lineage through the real CLI: only what really changed runs, and the plan says why.

One backend, one project copy and one stack for the whole module (the scenarios build on each other, in
order). The program runs on the stand-in project of bench/stand_in.py written to a temp dir (the real
steps' names, parameters, inputs and outputs, each script a few lines of Python), so the tests can edit
step scripts; the program finds its project root from its own file. Every scenario checks that
the operations `plan-explain --json` (= `pulumi preview --json`) plans are those `pulumi up --json` then
performs, and that `pulumi preview --expect-no-changes` exits 0 afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_DATA, Stack, stack_on_copy
from support import ROOT

from toolchain.plan_explain import QUIET_OPS as QUIET

CELLS = ["cell-hA-epochs-1", "cell-hA-epochs-2"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, backend, project_copy) -> Stack:
    return stack_on_copy(tmp_path_factory, backend, project_copy, "e2e-identity")


def plan_explain(stack: Stack) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "toolchain.plan_explain", "--stack", stack.name, "--cwd", str(stack.dir), "--json"],
        env=stack.env,
        text=True,
        capture_output=True,
        timeout=300,
        cwd=ROOT,
    )
    report = json.loads(result.stdout)
    assert result.returncode == report["exit_code"] and report["exit_code"] in (0, 1), report
    return report


def json_documents(text: str) -> list[dict]:
    """`pulumi up --json` prints JSON documents one after another (engine events, one per line)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while at < len(text):
        if text[at].isspace():
            at += 1
            continue
        document, at = decoder.raw_decode(text, at)
        found.append(document)
    return found


def up_ops(stack: Stack) -> dict[str, str]:
    """What `pulumi up --json` did, resource name -> op (changed ones only), from its engine events."""
    result = stack.run(["up", "--yes", "--skip-preview", "--json"])
    done = {}
    for event in json_documents(result.stdout):
        metadata = (event.get("resOutputsEvent") or {}).get("metadata") or {}
        name = metadata.get("urn", "").split("::")[-1]
        if metadata.get("op") not in (None, *QUIET) and not name.startswith(("valohai-sweep-", "default")):
            done[name] = metadata["op"]
    assert done or "resOutputsEvent" in result.stdout, result.stdout[-3000:]
    return dict(sorted(done.items()))


def apply(stack: Stack, plan: dict) -> None:
    """`pulumi up` does exactly what the plan said, and converges."""
    assert up_ops(stack) == plan["steps"]
    stack.run(["preview", "--expect-no-changes"])


def reasons_of(plan: dict) -> dict[str, str]:
    return {r["name"]: f"{r['op']}: {r['reason']}" for r in plan["reasons"]}


def edit(path: Path, line: str) -> None:
    path.write_text(path.read_text() + line)


def test_a_comment_in_the_prediction_script_reruns_only_the_prediction(stack, project_copy):
    stack.run(["preview", "--expect-no-changes"])
    cells_before = {p["id"] for p in stack.pipelines()}
    edit(project_copy / "steps" / "predict_models.py", "# a comment\n")
    plan = plan_explain(stack)
    assert plan["steps"] == {"code": "replace", "prediction": "replace"}, plan
    assert reasons_of(plan)["prediction"] == "re-run: steps/predict_models.py changed"
    apply(stack, plan)
    assert {p["id"] for p in stack.pipelines()} == cells_before  # 0 cells touched


def test_a_comment_in_the_train_script_retrains_every_cell_and_keeps_the_data(stack, project_copy):
    data_before = {e["id"] for e in stack.executions() if e["step"] == "generate-harbors"}
    edit(project_copy / "steps" / "train.sh", "# a comment\n")
    plan = plan_explain(stack)
    assert plan["steps"] == {
        "code": "replace",
        **{c: "replace" for c in CELLS},
        "prediction": "replace",
        "results": "update",
    }, plan
    reasons = reasons_of(plan)
    assert reasons["hA/epochs-1"] == reasons["hA/epochs-2"] == "replace: steps/train.sh changed"
    apply(stack, plan)
    assert {e["id"] for e in stack.executions() if e["step"] == "generate-harbors"} == data_before


def test_a_learning_rate_change_retrains_every_cell_and_says_old_and_new(stack):
    stack.configure(["hA"], [1, 2], training={"learning_rate": 0.01, "batch_size": 16})
    plan = plan_explain(stack)
    assert plan["steps"] == {**{c: "replace" for c in CELLS}, "prediction": "replace", "results": "update"}, plan
    reasons = reasons_of(plan)
    assert reasons["hA/epochs-1"] == "replace: learning_rate 0.005 -> 0.01"
    assert reasons["prediction"] == "re-run: input models of predict changed upstream"
    apply(stack, plan)


def test_an_added_harbor_creates_only_its_dataset_and_cells(stack):
    stack.configure(["hA", "hB"], [1, 2], training={"learning_rate": 0.01, "batch_size": 16})
    plan = plan_explain(stack)
    assert plan["steps"] == {
        "cell-hB-epochs-1": "create",
        "cell-hB-epochs-2": "create",
        "data-hB": "create",
        "prediction": "replace",
        "results": "update",
    }, plan
    assert reasons_of(plan)["prediction"] == 're-run: harbours ["hA"] -> ["hA", "hB"]'
    apply(stack, plan)


def test_two_stacks_with_different_image_sizes_train_on_their_own_data(stack, tmp_path_factory, backend):
    other = Stack.__new__(Stack)
    other.__dict__.update(stack.__dict__, name="two")
    stack.run(["stack", "init", "two"])
    other.configure(["hA"], [1], data={**TINY_DATA, "image_size": 24})
    other.up()
    other.run(["preview", "--expect-no-changes"])

    for current in (stack, other):
        outputs = json.loads(current.run(["stack", "output", "--json", "--stack", current.name]).stdout)
        own_test_sets = set()
        for execution_id in outputs["training_execution_ids"].values():
            train = current.api.get_execution(execution_id)
            pipeline = current.api.get_pipeline(train["pipeline"])
            assert f"stack:{current.name}" in pipeline["tags"]
            preprocess = next(n["execution"] for n in pipeline["nodes"] if n["name"] == "preprocess")
            made = {d["name"]: f"datum://{d['id']}" for d in current.api.execution_outputs(preprocess["id"])}
            inputs = {i["name"]: i["urls"] for i in train["inputs"]}
            assert inputs["dataset"] == [made[n] for n in made if n.startswith("train/")]  # its own preprocess
            own_test_sets |= {uri for n, uri in made.items() if n.startswith("test/")}
            size = current.api.get_execution(preprocess["id"])["parameters"]["image_size"]
            assert size == (24 if current is other else 16)
        prediction = current.api.get_execution(outputs["prediction_execution_id"])
        test_sets = {i["name"]: i["urls"] for i in prediction["inputs"]}["dataset"]
        assert test_sets and set(test_sets) <= own_test_sets
        assert not any("latest" in u for i in prediction["inputs"] for u in i["urls"])
