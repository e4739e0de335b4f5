"""The toolchain end to end: the built CLI, the language host, a provider unpickled by reference."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from support import ROOT, run_pulumi

from toolchain.environment import pinned_version

PROGRAM = """
import pulumi
from toolchain.probe import ToolchainProbe
probe = ToolchainProbe("probe", label=pulumi.Config().get("label") or "one")
pulumi.export("python", probe.python)
pulumi.export("sdk", probe.pulumi_sdk)
"""


def test_pulumi_version_is_the_pinned_one(pulumi_env):
    out = subprocess.run(["pulumi", "version"], env=pulumi_env, text=True, capture_output=True, check=True)
    assert out.stdout.strip() == f"v{pinned_version()}"


def test_up_preview_destroy_with_a_dynamic_provider_from_the_package(tmp_path: Path, pulumi_env):
    project = tmp_path / "probe"
    project.mkdir()
    (project / "Pulumi.yaml").write_text("name: probe\nruntime: python\n")
    (project / "__main__.py").write_text(PROGRAM)
    run_pulumi(["stack", "init", "dev"], project, pulumi_env)

    up = run_pulumi(["up", "--yes", "--skip-preview"], project, pulumi_env)
    assert "+ 2 created" in up.stdout
    outputs = json.loads(run_pulumi(["stack", "output", "--json"], project, pulumi_env).stdout)
    assert outputs["python"] == str(ROOT / ".venv" / "bin" / "python")  # the provider ran in the project venv
    assert outputs["sdk"] == pinned_version()

    run_pulumi(["preview", "--expect-no-changes"], project, pulumi_env)  # exit 0 is the assertion

    run_pulumi(["config", "set", "label", "two"], project, pulumi_env)
    changed = run_pulumi(["preview", "--expect-no-changes"], project, pulumi_env, check=None)
    assert changed.returncode != 0 and "replace" in changed.stdout

    run_pulumi(["destroy", "--yes"], project, pulumi_env)
    state = json.loads(run_pulumi(["stack", "export"], project, pulumi_env).stdout)
    assert not state["deployment"].get("resources")
