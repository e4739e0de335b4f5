"""The toolchain end to end: the built CLI, the language host, a provider unpickled by reference."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from support import ROOT, run_pulumi

from toolchain.environment import AUTOMATIC_LOG_ENV, automatic_log_off, offline_env, pinned_version

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


def test_the_cli_writes_no_automatic_log_unless_asked(tmp_path: Path, monkeypatch):
    """Pulumi's automatic log (every property of every resource, gzipped and encrypted, on every run) is off
    in the homes the project makes; VPAC_PULUMI_AUTOMATIC_LOG=1 brings it back."""
    quiet = offline_env(tmp_path / "quiet", passphrase="test-passphrase")
    subprocess.run(["pulumi", "stack", "ls"], env=quiet, cwd=tmp_path, capture_output=True, check=False)
    logs = Path(quiet["PULUMI_HOME"]) / "logs"
    assert logs.is_file(), "the placeholder that turns the log off is gone"

    monkeypatch.setenv(AUTOMATIC_LOG_ENV, "1")
    kept = offline_env(tmp_path / "kept", passphrase="test-passphrase")
    subprocess.run(["pulumi", "stack", "ls"], env=kept, cwd=tmp_path, capture_output=True, check=False)
    written = list((Path(kept["PULUMI_HOME"]) / "logs").glob("pulumi-*.log"))
    assert written, "with the log asked for, the CLI wrote none: the switch no longer does what it says"

    automatic_log_off(Path(kept["PULUMI_HOME"]))  # a home that logged before: its logs go, the placeholder comes
    assert (Path(kept["PULUMI_HOME"]) / "logs").is_file()


def test_plan_explain_piped_into_a_reader_that_stops_early_exits_with_the_plans_code(tmp_path: Path):
    """`plan-explain --stack s | head -1`: no BrokenPipeError traceback, and the exit code is still the plan's."""
    script = (
        "from toolchain import plan_explain as p\n"
        "reasons = [{'name': f'cell-{i}', 'op': 'replace', 'reason': 'epochs 2 -> 3'} for i in range(20000)]\n"
        "report = {'steps': {r['name']: 'replace' for r in reasons}, 'reasons': reasons, 'reuse': [],"
        " 'reuse_summary': None}\n"
        "p.explain = lambda stack, cwd: (p.EXIT_CHANGES, report, '')\n"
        "p.main(['--stack', 's'])\n"
    )
    done = subprocess.run(
        ["bash", "-c", 'set -o pipefail; python -c "$0" | head -1; echo "rc=${PIPESTATUS[0]}" >&2', script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.startswith("plan for stack s: 20000 resource(s) change")
    assert "Traceback" not in done.stderr, done.stderr[-800:]
    from toolchain.plan_explain import EXIT_CHANGES

    assert f"rc={EXIT_CHANGES}" in done.stderr
