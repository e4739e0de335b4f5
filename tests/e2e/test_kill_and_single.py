"""A `pulumi up` killed mid-sweep leaves no duplicates; single mode builds the one big pipeline."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path


def language_hosts_of(cli_pid: int) -> list[int]:
    """Pids of the project's language host processes started by the pulumi CLI with this pid."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == cli_pid and b"toolchain.language_host" in cmdline:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_killed_up_then_up_again_converges_without_duplicates(make_stack, stand_in):
    stack = make_stack(program=stand_in)
    stack.configure(["hA"], [1, 2])
    running = subprocess.Popen(
        ["pulumi", "up", "--yes", "--skip-preview", "--non-interactive"],
        cwd=stack.dir,
        env=stack.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while not stack.pipelines() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stack.pipelines(), "the sweep never started"
    hosts = language_hosts_of(running.pid)
    assert hosts, "no language host found under the running CLI"
    os.killpg(running.pid, signal.SIGKILL)  # the CLI; its plugins run in process groups of their own
    running.wait()
    # the language host notices that the engine is gone and exits (with the program it ran): no orphans
    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in hosts) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not any(alive(pid) for pid in hosts), "the language host outlived the killed CLI"

    result = stack.up(check=None)
    if result.returncode != 0 and "locked" in result.stderr + result.stdout:
        stack.run(["cancel", "--yes"])  # the killed CLI left its lock; the README says the same
        result = stack.up(check=None)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]

    titles = Counter(p["title"] for p in stack.pipelines())
    assert titles == Counter({"training-pipeline-hA-epochs-1": 1, "training-pipeline-hA-epochs-2": 1}), titles
    generations = [e for e in stack.executions() if e["step"] == "generate-harbors"]
    assert len(generations) == 1
    out = stack.outputs()
    assert sorted(out["training_execution_ids"]) == ["hA/epochs-1", "hA/epochs-2"]
    assert all(stack.api.get_execution(i)["status"] == "complete" for i in out["training_execution_ids"].values())


def by_node_id(pipeline: dict, name: str) -> str:
    return next(n["execution"]["id"] for n in pipeline["nodes"] if n["name"] == name)


def test_single_mode_builds_one_pipeline_with_two_nodes_per_cell_and_a_predict_node(make_stack, stand_in):
    stack = make_stack(program=stand_in)
    stack.configure(["hA"], [1, 2], mode="single")
    stack.up()
    (pipeline,) = stack.pipelines()
    detail = stack.api.get_pipeline(pipeline["id"])
    names = sorted(n["name"] for n in detail["nodes"])
    assert names == [
        "predict",
        "preprocess-hA-epochs-1",
        "preprocess-hA-epochs-2",
        "train-hA-epochs-1",
        "train-hA-epochs-2",
    ]
    node_ids = {n["id"]: n["name"] for n in detail["nodes"]}
    into_predict = sorted(
        (e["target_key"], node_ids[e["source_node"]])
        for e in detail["edges"]
        if node_ids[e["target_node"]] == "predict"
    )
    # models from every train node; the harbor's test set from one of this sweep's preprocess nodes
    assert into_predict == [
        ("dataset", "preprocess-hA-epochs-1"),
        ("models", "train-hA-epochs-1"),
        ("models", "train-hA-epochs-2"),
    ]
    assert all(n["execution"]["status"] == "complete" for n in detail["nodes"])
    predict_inputs = {i["name"]: i["urls"] for i in stack.api.get_execution(by_node_id(detail, "predict"))["inputs"]}
    test_outputs = stack.api.execution_outputs(by_node_id(detail, "preprocess-hA-epochs-1"))
    assert predict_inputs["dataset"] == [f"datum://{d['id']}" for d in test_outputs if d["name"].startswith("test/")]

    out = stack.outputs()
    by_node = {n["name"]: n["execution"]["id"] for n in detail["nodes"]}
    assert out["training_execution_ids"] == {
        "hA/epochs-1": by_node["train-hA-epochs-1"],
        "hA/epochs-2": by_node["train-hA-epochs-2"],
    }
    assert out["prediction_execution_id"] == by_node["predict"]
    assert len(out["predictions"]["models"]) == 2
