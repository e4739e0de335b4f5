"""Helpers shared by every test folder: the project root and running the real pulumi CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Mapping, Optional

import pytest

from providers.toolchain import ROOT, offline_env  # noqa: F401 - re-exported for the test folders


def run_pulumi(args: list[str], cwd: Path, env: Mapping[str, str], *, timeout: float = 600,
               check: Optional[int] = 0) -> subprocess.CompletedProcess:
    """Run the real pulumi CLI; fail with its output when the exit code is not `check`."""
    result = subprocess.run(["pulumi", *args, "--non-interactive"], cwd=cwd, env=dict(env), text=True,
                            capture_output=True, timeout=timeout)
    if check is not None and result.returncode != check:
        pytest.fail(f"pulumi {' '.join(args)} exited {result.returncode} (expected {check})\n"
                    f"--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-4000:]}")
    return result
