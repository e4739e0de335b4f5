"""The real valohai-cli (`vh`) against the local backend: login, run ad-hoc, list, info, logs, outputs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SAMPLE

VH = str(Path(sys.executable).with_name("vh"))


@pytest.fixture(scope="module")
def vh(server, tmp_path_factory):
    config_dir = tmp_path_factory.mktemp("vh-config")
    project_dir = tmp_path_factory.mktemp("vh-project")
    for path in SAMPLE.iterdir():
        if path.is_file():
            shutil.copy(path, project_dir)
    env = {**os.environ, "VALOHAI_CONFIG_DIR": str(config_dir), "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("VALOHAI_TOKEN", None)

    def run(*args: str) -> str:
        done = subprocess.run([VH, *args], cwd=project_dir, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"vh {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout + done.stderr

    return run


def test_vh_end_to_end(vh, api, server):
    assert "Logged in" in vh("login", "--host", server.url, "--token", server.token)
    api.create_project("cli-project")
    assert "Linked" in vh("project", "link", "cli-project")

    out = vh("execution", "run", "produce", "--adhoc", "--harbor=zeta")
    assert "Execution #1 created" in out
    api.wait(f"executions/{api.ok(api.get('projects/', params={'name': 'cli-project'}))['results'][0]['id']}:1/")

    listing = vh("execution", "list")
    assert "complete" in listing and "produce" in listing
    info = vh("execution", "info", "1")
    assert "python produce.py --harbor=zeta --count=2" in info and "cli-project" in info
    logs = vh("execution", "logs", "1")
    assert '{"run_for": "zeta", "progress": 1.0}' in logs and "Execution complete" in logs
    outputs = vh("execution", "outputs", "1")
    assert "data-zeta.txt" in outputs and "datum://" in outputs
    download_dir = Path(server.data_dir).parent / "vh-downloads"
    vh("execution", "outputs", "1", "--download", str(download_dir), "--filter-download", "*.txt")
    assert (download_dir / "data-zeta.txt").read_text() == "row 0\nrow 1\n"

    assert "No pipelines" in vh("pipeline", "list")
    assert "Pipeline =1 queued" in vh("pipeline", "run", "produce-consume", "--adhoc")
    assert "produce-consume" in vh("pipeline", "list")
    assert "Done" in vh("pipeline", "stop", "1")
