"""Run control through the real CLI: Ctrl-C ends the wait and the next `up` adopts the running cell; a
changed cell's old pipeline is stopped before its replacement's training starts; `on_cancel: stop`.

One backend, one stack on the stand-in project (bench/stand_in.py, half a second per epoch), one cell
trained for many epochs (so it is still running when we interrupt); the scenarios run in order on the
same stack.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
import uuid

import pytest
from conftest import Stack

from bench.stand_in import write_stand_in_project
from toolchain.environment import offline_env

CELL = "hA/epochs-1000"
SLOW = {"harbors": ["hA"], "epochs": [1000]}


class Running:
    """A `pulumi up` in the background whose output is collected line by line."""

    def __init__(self, stack: Stack) -> None:
        self.proc = subprocess.Popen(
            ["pulumi", "up", "--yes", "--skip-preview", "--non-interactive"],
            cwd=stack.dir,
            env=stack.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, text: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert self.proc.poll() is None, f"up ended early:\n{self.output()[-4000:]}"
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.output()[-4000:]}"
            time.sleep(0.2)

    def interrupt(self) -> float:
        """SIGINT to the CLI alone (as Ctrl-C would reach it); seconds until it exited."""
        sent = time.monotonic()
        os.kill(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
        time.sleep(0.5)  # the reader thread drains the pipe
        return time.monotonic() - sent


def train_of(pipeline: dict) -> dict:
    return next(n for n in pipeline["nodes"] if n["name"] == "train")["execution"] or {}


def wait_until(check, timeout: float = 240, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, backend) -> Stack:
    """The stand-in project (bench/stand_in.py) with 0.5 s per epoch: the 1000-epoch cell runs for minutes,
    the 1- to 3-epoch cells for a few seconds (so their durations still scale with epochs)."""
    home = tmp_path_factory.mktemp("run-control")
    program = write_stand_in_project(home / "project", epoch_seconds=0.5) / "program"
    env = {**offline_env(home, passphrase="test-passphrase"), "VALOHAI_API_TOKEN": backend.token}
    workdir = home / "stack"
    workdir.mkdir()
    return Stack(workdir, env, backend, f"e2e-{uuid.uuid4().hex[:8]}", "runctl", program=program)


def test_ctrl_c_ends_the_wait_and_the_next_up_adopts(stack):
    stack.configure(**SLOW)
    first = Running(stack)
    wait_until(lambda: stack.pipelines() and train_of(stack.pipelines()[0]).get("status") == "started", what="train")
    took = first.interrupt()
    print(f"first up exited {took:.1f}s after SIGINT")
    assert took < 10, f"the CLI took {took:.1f}s to exit after SIGINT"
    assert first.proc.returncode != 0
    assert f"cancelled (pulumi up was interrupted) while waiting for: {CELL}" in first.output()
    assert "keep running" in first.output()
    [pipeline] = stack.pipelines()
    assert pipeline["status"] not in ("stopped", "error", "complete")

    second = Running(stack)  # the same sweep: waits for the running cell instead of starting another
    second.wait_for_line("sweep: 0/1 done")
    assert [p["id"] for p in stack.pipelines()] == [pipeline["id"]], "a duplicate pipeline was made"
    took = second.interrupt()
    print(f"second up exited {took:.1f}s after SIGINT")
    assert took < 10
    assert stack.api.get_pipeline(pipeline["id"])["status"] not in ("stopped", "error", "complete")


def test_changed_cell_is_stopped_before_its_replacement_trains_and_on_cancel_stop(stack):
    [old] = stack.pipelines()
    stack.configure(**SLOW, training={"learning_rate": 0.002, "batch_size": 16}, on_cancel="stop")
    preview = stack.run(["preview", "--non-interactive"])
    assert f"{CELL}: replace: " in preview.stdout and "stopped before its replacement starts" in preview.stdout

    third = Running(stack)

    def replacement() -> dict | None:  # the old pipeline, deleted, is no longer listed
        return next((p for p in stack.pipelines() if p["id"] != old["id"]), None)

    wait_until(
        lambda: train_of(replacement() or {"nodes": [{"name": "train", "execution": None}]}).get("start_time"),
        what="the replacement's train",
    )
    new = replacement()
    assert new is not None
    old_now = stack.api.get_pipeline(old["id"])
    assert old_now["status"] == "stopped"
    old_train = stack.api.get_execution(train_of(old_now)["id"])
    new_train = stack.api.get_execution(train_of(new)["id"])
    assert old_train["status"] == "stopped"
    assert old_train["end_time"] <= new_train["start_time"], (old_train["end_time"], new_train["start_time"])

    third.wait_for_line("sweep: 0/1 done")
    took = third.interrupt()
    print(f"third up (on_cancel: stop) exited {took:.1f}s after SIGINT")
    assert took < 10
    assert f"while waiting for: {CELL}; stopped them (on_cancel: stop)" in third.output()
    wait_until(lambda: stack.api.get_pipeline(new["id"])["status"] == "stopped", timeout=30, what="stopped")
    assert [p["id"] for p in stack.pipelines()] == [new["id"]], "a duplicate pipeline was made"


def test_one_failed_cell_of_four_with_min_success_ratio(stack):
    stack.configure(["hA", "hB"], [1, 2], min_success_ratio=0.75)
    running = Running(stack)
    victim = "training-pipeline-hB-epochs-2"  # the injected fault: this cell's pipeline is stopped at once

    def stop_victim() -> bool:
        found = [p for p in stack.pipelines() if p["title"] == victim]
        if found:
            stack.api.stop_pipeline(found[0]["id"])
        return bool(found)

    wait_until(stop_victim, timeout=240, what="the pipeline to break")
    running.proc.wait(timeout=600)
    time.sleep(0.5)
    assert running.proc.returncode == 0, running.output()[-4000:]
    assert "hB/epochs-2 ended 'stopped'" in running.output()

    out = stack.outputs()
    [failed] = out["failed_cells"]
    assert (failed["name"], failed["node"], failed["status"]) == ("hB/epochs-2", "train", "stopped")
    assert failed["log"]
    assert sorted(out["training_execution_ids"]) == ["hA/epochs-1", "hA/epochs-2", "hB/epochs-1"]
    assert len(out["predictions"]["models"]) == 3
    assert out["predictions"]["missing_cells"] == ["hB/epochs-2"]
    first_prediction = out["prediction_execution_id"]

    plan = stack.run(["preview", "--non-interactive"]).stdout
    assert "hB/epochs-2: re-run: last run stopped" in plan
    stack.up()
    out2 = stack.outputs()
    assert out2["failed_cells"] == []
    for name in ("hA/epochs-1", "hA/epochs-2", "hB/epochs-1"):  # the cells that completed were not re-run
        assert out2["training_execution_ids"][name] == out["training_execution_ids"][name]
    assert len(out2["predictions"]["models"]) == 4 and out2["predictions"]["missing_cells"] == []
    assert out2["prediction_execution_id"] != first_prediction
    titles = sorted(p["title"] for p in stack.pipelines() if p["title"].startswith("training-pipeline-h"))
    assert titles == [f"training-pipeline-{h}-epochs-{e}" for h in ("hA", "hB") for e in (1, 2)], titles


ESTIMATE = re.compile(r"estimate: (\S+): ([\d.]+) min \((.*)\)$", re.MULTILINE)


def test_estimates_from_history_and_a_budget_that_refuses(stack):
    """After the 4-cell sweep above: a new epochs value is estimated from the cells with 1 and 2 epochs."""
    stack.configure(["hA", "hB"], [1, 2, 3], min_success_ratio=0.75)
    plan = stack.run(["preview", "--non-interactive"]).stdout
    found = {m.group(1): (float(m.group(2)), m.group(3)) for m in ESTIMATE.finditer(plan)}
    assert sorted(found) == ["hA/epochs-3", "hB/epochs-3"], plan[-3000:]
    assert all("scaled by epochs" in basis for _, basis in found.values())
    total = sum(minutes for minutes, _ in found.values())
    assert re.search(r"estimate: 2 cell\(s\) to run, [\d.]+ execution-minutes", plan)

    before = sorted(p["id"] for p in stack.pipelines())
    stack.configure(["hA", "hB"], [1, 2, 3], min_success_ratio=0.75, budget_execution_minutes=round(total / 2, 3))
    refused = stack.run(["preview", "--non-interactive"], check=None)
    assert refused.returncode != 0
    assert "over budget_execution_minutes" in refused.stdout + refused.stderr
    assert "hA/epochs-3" in refused.stdout + refused.stderr
    stack.run(["up", "--yes", "--skip-preview", "--non-interactive"], check=None)
    assert sorted(p["id"] for p in stack.pipelines()) == before, "a refused up created something"

    stack.configure(["hA", "hB"], [1, 2, 3], min_success_ratio=0.75)
    stack.up()
    measured: dict[str, float] = {}
    for pipeline in stack.pipelines():
        durations = [stack.api.get_execution(n["execution"]["id"])["duration"] for n in pipeline["nodes"]]
        measured[pipeline["title"].removeprefix("training-pipeline-").replace("-epochs-", "/epochs-")] = (
            sum(durations) / 60
        )
    for name, (estimate, _) in sorted(found.items()):
        harbor = name.split("/")[0]
        history = [measured[f"{harbor}/epochs-{e}"] for e in (1, 2)]
        print(f"{name}: estimated {estimate:.2f} min, measured {measured[name]:.2f} min, history {history}")
    # Not asserted: how close the estimate comes to the new run. On a shared 2-core machine the same cell
    # ran in 0.49 and 0.90 min in one up and the new cell in 0.21-0.33 min in the next, so a line through
    # the history missed the new run by far more than 50% (see the printed figures).
