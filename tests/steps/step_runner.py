"""Run ML steps as real subprocesses in valohai-utils local mode (used by conftest and the tests).

Each run gets its own ``VH_CONFIG_DIR`` / ``VH_INPUTS_DIR`` / ``VH_OUTPUTS_DIR``. Inputs and
parameters are handed over either on the command line (``--name=value``, ``--input path``: how a
person runs a step locally) or as ``inputs.json`` / ``parameters.json`` / ``execution.json`` (how
Valohai and the local backend do it), so both paths are exercised.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
STEPS = REPO / "steps"
HARBORS = ["harbor_A", "harbor_B"]
TINY = {"image_size": 32, "images_per_class": 80, "test_images_per_harbor": 12, "seed": 7}
TRAIN_EPOCHS = 2


@dataclass
class StepRun:
    name: str
    proc: subprocess.CompletedProcess
    outputs: Path

    @property
    def metadata(self) -> list[dict[str, Any]]:
        """Every stdout line that is a JSON object: what Valohai records as metadata."""
        rows = []
        for line in self.proc.stdout.splitlines():
            line = line.strip()
            if line.startswith("{") and line.endswith("}"):
                try:
                    value = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(value, dict):
                    rows.append(value)
        return rows


def file_entry(path: Path, metadata: list | None = None) -> dict[str, Any]:
    """One file of an ``inputs.json`` input, as Valohai writes it."""
    return {
        "name": path.name,
        "path": str(path),
        "size": path.stat().st_size,
        "uri": f"file://{path}",
        "metadata": metadata or [],
    }


def step_env(base: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VH_") and k != "VALOHAI_API_TOKEN"}
    env.update(
        VH_CONFIG_DIR=str(base / "config"),
        VH_INPUTS_DIR=str(base / "inputs"),
        VH_OUTPUTS_DIR=str(base / "outputs"),
        TF_NUM_INTRAOP_THREADS="2",
        TF_NUM_INTEROP_THREADS="1",
        PYTHONHASHSEED="0",
    )
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_script(
    base: Path,
    script: str,
    args: list[str] | None = None,
    *,
    inputs: dict[str, list[Path]] | None = None,
    parameters: dict[str, Any] | None = None,
    execution_id: str | None = None,
    extra_env: dict[str, str] | None = None,
    check: bool = True,
    command: str | None = None,
    background: bool = False,
) -> StepRun:
    """Run ``steps/<script>`` (or a shell ``command``) with its own Valohai dirs under ``base``.

    With ``background=True`` it returns a ``PendingRun`` at once (steps of different harbors run
    side by side, as the backend runs them).
    """
    for sub in ("config", "inputs", "outputs"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    if inputs is not None:
        (base / "config" / "inputs.json").write_text(
            json.dumps({name: {"files": [file_entry(p) for p in paths]} for name, paths in inputs.items()})
        )
    if parameters is not None:
        (base / "config" / "parameters.json").write_text(json.dumps(parameters))
    if execution_id is not None:
        (base / "config" / "execution.json").write_text(json.dumps({"valohai.execution-id": execution_id}))
    env = step_env(base)
    env.update(extra_env or {})
    argv = ["sh", "-c", command] if command else [sys.executable, str(STEPS / script), *(args or [])]
    popen = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pending = PendingRun(script, popen, base / "outputs", check)
    return pending if background else pending.wait()


@dataclass
class PendingRun:
    """A step started with ``background=True``; ``wait()`` gives its ``StepRun``."""

    name: str
    popen: subprocess.Popen
    outputs: Path
    check: bool

    def wait(self) -> StepRun:
        stdout, stderr = self.popen.communicate(timeout=600)
        proc = subprocess.CompletedProcess(self.popen.args, self.popen.returncode, stdout, stderr)
        if self.check and proc.returncode != 0:
            raise AssertionError(
                f"{self.name} failed ({proc.returncode}):\nSTDOUT:\n{stdout[-3000:]}\nSTDERR:\n{stderr[-3000:]}"
            )
        return StepRun(self.name, proc, self.outputs)


def yaml_command(step: str, values: dict[str, Any]) -> str:
    """The command valohai-yaml builds for ``step`` (what Valohai and the local backend run)."""
    import valohai_yaml
    from valohai_yaml.commands import join_command

    config = valohai_yaml.parse((REPO / "valohai.yaml").read_text())
    return join_command(config.steps[step].build_command(values), " && ")
