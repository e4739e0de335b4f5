"""Where the project's Pulumi CLI is, and the environment that keeps it offline.

One place for both, because the tests, the benchmarks and `scripts/env.sh` all run the CLI the same way:
file backend and home in a directory of their own, passphrase secrets, no update checks, no plugin
downloads, the project venv's Python for the language host and the dynamic providers.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent


def pulumi_bin_dir() -> Optional[Path]:
    """The toolchain `make setup` recorded, else whatever `pulumi` is on PATH, else None."""
    recorded = ROOT / ".pulumi" / "toolchain-dir"
    if recorded.is_file():
        return Path(recorded.read_text().strip())
    found = shutil.which("pulumi")
    return Path(found).parent if found else None


def offline_env(work: Path, passphrase: str) -> dict[str, str]:
    """The current environment plus an offline Pulumi with its own state and home under `work`."""
    bin_dir = pulumi_bin_dir()
    if bin_dir is None:
        raise RuntimeError("pulumi is not installed: run `make setup`")
    (work / "pulumi-state").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update({
        "PATH": f"{bin_dir}{os.pathsep}{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        "PULUMI_HOME": str(work / "pulumi-home"),
        "PULUMI_BACKEND_URL": f"file://{work / 'pulumi-state'}",
        "PULUMI_CONFIG_PASSPHRASE": passphrase,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_PYTHON_CMD": str(ROOT / ".venv" / "bin" / "python"),
        "PULUMI_SKIP_CONFIRMATIONS": "true",
    })
    env.pop("PULUMI_ACCESS_TOKEN", None)
    return env
