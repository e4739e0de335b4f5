"""Helpers shared by every test folder: the project root, running the real pulumi CLI, a fake clock."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from toolchain import pulumi_cli
from toolchain.environment import ROOT  # noqa: F401 - re-exported for the test folders


def run_pulumi(
    args: list[str], cwd: Path, env: Mapping[str, str], *, timeout: float = 600, check: int | None = 0
) -> subprocess.CompletedProcess[str]:
    """Run the real pulumi CLI; fail with its output when the exit code is not `check`."""
    result = pulumi_cli.run_pulumi(args, cwd, env, timeout=timeout)
    if check is not None and result.returncode != check:
        pytest.fail(
            f"pulumi {' '.join(args)} exited {result.returncode} (expected {check})\n"
            f"--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-4000:]}"
        )
    return result


class FakeClock:
    """A clock for `providers.api.waiting.clock`: time moves only when the code under test sleeps, and
    nothing really sleeps (replayed waits, settle loops)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


# Data URIs of two generated harbors, as the program hands them to the payload builders.
HARBOR_DATA = {
    h: {"images": f"datum://img-{h}", "labels": f"datum://lab-{h}", "test_labels": f"datum://tl-{h}"}
    for h in ("harbor_A", "harbor_B")
}


def single_pipeline(config, sweep) -> dict:
    """The single-mode pipeline payload of `sweep` over HARBOR_DATA."""
    from providers.sweep import payloads

    return payloads.sweep_pipeline(
        config,
        commit="~c",
        project_id="p",
        cells=sweep.cells,
        sweep=sweep,
        data_by_harbor=HARBOR_DATA,
        tags=[],
        title="sweep-t",
    )
