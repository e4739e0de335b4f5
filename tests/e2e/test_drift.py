"""Drift made outside the tool is reported by `drift-check` and repaired by `pulumi up`, cell by cell."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from e2e_support import ops

from bench.stand_in import write_stand_in_project


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory) -> Path:
    """This module's stand-in (bench/stand_in.py): train takes 2 s per epoch, so a pipeline is still running
    when the test stops it from outside the tool (an instant train could end between two polls)."""
    return write_stand_in_project(tmp_path_factory.mktemp("stand-in"), epoch_seconds=2) / "program"


def drift_check(stack, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["drift-check", "--stack", stack.name, "--cwd", str(stack.dir), *extra],
        env=stack.env,
        text=True,
        capture_output=True,
        timeout=300,
    )


def diagnostics(plan: dict) -> str:
    """The engine's info lines of a `preview --json` (where the providers' reason lines land)."""
    return "".join(d.get("message") or "" for d in plan.get("diagnostics") or [])


def wait_for_pipeline(stack, title: str, status: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pipeline in stack.pipelines(title=title):
            if pipeline["status"] == status:
                return pipeline
        time.sleep(0.3)
    raise AssertionError(f"no pipeline {title!r} reached {status!r} in {timeout}s")


def test_deleted_and_stopped_pipelines_are_reported_and_only_they_rerun(make_stack, stand_in):
    stack = make_stack(program=stand_in)
    stack.configure(["hA"], [1, 2])
    stack.up()
    clean = drift_check(stack)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "no drift" in clean.stdout

    # 1. a pipeline deleted outside the tool
    victim = next(p for p in stack.pipelines() if p["title"].endswith("epochs-1"))
    stack.api.delete_pipeline(victim["id"])
    report = drift_check(stack)
    assert report.returncode == 7, report.stdout + report.stderr
    assert "[deleted outside the tool] hA/epochs-1" in report.stdout
    assert "epochs-2" not in report.stdout
    as_json = json.loads(drift_check(stack, "--json").stdout)
    assert as_json["exit_code"] == 7 and [d["kind"] for d in as_json["drift"]] == ["deleted outside the tool"]
    plan = stack.preview()
    planned = {kind: ops(plan, kind) for kind in ("create", "replace", "delete", "update")}
    cells = {kind: [n for n in names if n.startswith("cell-")] for kind, names in planned.items()}
    assert cells == {"create": ["cell-hA-epochs-1"], "replace": [], "delete": [], "update": []}, planned
    assert "hA/epochs-1: re-create: pipeline deleted outside the tool" in diagnostics(plan)
    stack.up()
    assert sorted(p["title"] for p in stack.pipelines()) == [
        "training-pipeline-hA-epochs-1",
        "training-pipeline-hA-epochs-2",
    ]
    assert drift_check(stack).returncode == 0

    # 2. a pipeline stopped outside the tool while `pulumi up` waits for it: the cell is named, the rest kept
    stack.configure(["hA"], [1, 2, 3])
    running = subprocess.Popen(
        ["pulumi", "up", "--yes", "--skip-preview", "--non-interactive"],
        cwd=stack.dir,
        env=stack.env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    stopped = wait_for_pipeline(stack, "training-pipeline-hA-epochs-3", "started")
    stack.api.stop_pipeline(stopped["id"])
    output, _ = running.communicate(timeout=300)
    assert running.returncode != 0
    assert "1 of 3 sweep cells failed" in output and "hA/epochs-3 ended 'stopped'" in output
    # a pointer to the logs: the train execution's, or the pipeline's when it was stopped before train started
    assert "vh execution logs" in output or "before its execution started; see pipeline #" in output

    report = drift_check(stack)
    assert report.returncode == 7 and "[status changed] hA/epochs-3" in report.stdout, report.stdout
    plan = stack.preview()
    assert [r for r in ops(plan, "replace") if r.startswith("cell-")] == ["cell-hA-epochs-3"]
    assert "hA/epochs-3: re-run: last run stopped" in diagnostics(plan)
    assert [r for r in ops(plan, "create") + ops(plan, "delete") if r.startswith("cell-")] == []
    assert "results" in ops(plan, "update") + ops(plan, "create")  # waits again, for the new cell only
    before = {p["title"]: p["id"] for p in stack.pipelines() if p["status"] == "complete"}
    stack.up()
    after = {p["title"]: p["id"] for p in stack.pipelines() if p["status"] == "complete"}
    assert after["training-pipeline-hA-epochs-1"] == before["training-pipeline-hA-epochs-1"]  # finished cells kept
    assert after["training-pipeline-hA-epochs-2"] == before["training-pipeline-hA-epochs-2"]
    assert "training-pipeline-hA-epochs-3" in after
    assert drift_check(stack).returncode == 0
