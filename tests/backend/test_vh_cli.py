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

    def run(*args: str, ok: bool = True) -> str:
        """`vh args`'s output; asserts it succeeded (or, with ok=False, that it failed)."""
        done = subprocess.run([VH, *args], cwd=project_dir, env=env, capture_output=True, text=True, timeout=60)
        assert (done.returncode == 0) == ok, (
            f"vh {' '.join(args)} exit {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
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


def test_vh_wider_commands(vh, api, server):
    """Parameters on `exec run`, stop, summarize, project environment variables and environments via `vh`."""
    secret = "vh-secret-token-value-93b1"
    assert "Logged in" in vh("login", "--host", server.url, "--token", server.token, "--yes")
    project = api.create_project("cli-wide")
    assert "Linked" in vh("project", "link", "cli-wide", "--yes")
    assert "Added environment variable VALOHAI_API_TOKEN" in vh(
        "project", "environment-variables", "create", "--secret", f"VALOHAI_API_TOKEN={secret}"
    )
    vh("project", "environment-variables", "create", "PUBLIC_FLAG=on")
    listed = vh("project", "environment-variables", "list")
    assert "VALOHAI_API_TOKEN" in listed and "****" in listed and "PUBLIC_FLAG" in listed and secret not in listed
    assert "Successfully deleted" in vh("project", "environment-variables", "delete", "PUBLIC_FLAG")
    assert "PUBLIC_FLAG" not in vh("project", "environment-variables", "list")
    assert "local" in vh("environments")

    out = vh("execution", "run", "produce", "--adhoc", "--harbor=eta", "--count=3", "--environment=local")
    assert "Execution #1 created" in out
    done = api.wait(f"executions/{project['id']}:1/")
    assert done["parameters"] == {"harbor": "eta", "count": 3} and done["environment"]["slug"] == "local"
    summary = vh("execution", "summarize", "1")
    assert "run_for" in summary and "eta" in summary and "progress" in summary
    assert "python produce.py --harbor=eta --count=3" in vh("execution", "info", "1")
    download_dir = Path(server.data_dir).parent / "vh-wide"
    vh("execution", "outputs", "1", "--download", str(download_dir))
    assert (download_dir / "data-eta.txt").read_text() == "row 0\nrow 1\nrow 2\n"

    assert "Execution #2 created" in vh("execution", "run", "sleep", "--adhoc")
    api.wait(f"executions/{project['id']}:2/", lambda o: o["status"] == "started")
    vh("execution", "stop", "2")
    stopped = api.wait(f"executions/{project['id']}:2/")
    assert stopped["status"] == "stopped"
    assert "stopped" in vh("execution", "list")
    logs = vh("execution", "logs", "2")
    assert "sleeping" in logs and secret not in logs

    refused = vh("execution", "run", "noop", "--adhoc", "--environment=gpu-x", ok=False)
    assert "Unknown environment 'gpu-x'" in refused and "vh environments" in refused
