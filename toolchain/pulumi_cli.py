"""The one way the project runs the `pulumi` CLI from Python (drift-check, the tests, the benchmarks).

Always `--non-interactive` with the output captured as text: these callers parse what pulumi prints and
must never wait on a prompt. The environment is the caller's (see `toolchain.environment`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path


def pulumi_command(args: list[str]) -> list[str]:
    """The command line for `pulumi <args>`, for callers that need a process of their own (Popen)."""
    return ["pulumi", *args, "--non-interactive"]


def run_pulumi(
    args: list[str], cwd: str | Path, env: Mapping[str, str] | None = None, *, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `pulumi <args>` in `cwd` and return its exit code and output; `env` None means this process's."""
    return subprocess.run(
        pulumi_command(args),
        cwd=cwd,
        env=None if env is None else dict(env),
        text=True,
        capture_output=True,
        timeout=timeout,
    )
