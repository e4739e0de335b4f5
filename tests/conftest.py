"""Fixtures every test folder shares: a private Pulumi environment per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support import ROOT, pulumi_bin_dir

@pytest.fixture
def pulumi_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a pulumi CLI run with its own file backend and home under tmp_path."""
    env = dict(os.environ)
    env.update({
        "PATH": f"{pulumi_bin_dir()}{os.pathsep}{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        "PULUMI_HOME": str(tmp_path / "pulumi-home"),
        "PULUMI_BACKEND_URL": f"file://{tmp_path / 'pulumi-state'}",
        "PULUMI_CONFIG_PASSPHRASE": "test-passphrase",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_PYTHON_CMD": str(ROOT / ".venv" / "bin" / "python"),
        "PULUMI_SKIP_CONFIRMATIONS": "true",
    })
    (tmp_path / "pulumi-state").mkdir(exist_ok=True)
    return env
