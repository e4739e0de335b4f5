"""An execution's directory, laid out as valohai-utils expects, and the environment its step runs with.

`repository/` (the commit unpacked), `inputs/<name>/` (files copied from the blob store), `outputs/`
(collected afterwards) and `config/` (`parameters.json`, `inputs.json`, `execution.json`).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from providers.api.statuses import STARTED

from .. import db
from ..db import Row, Store, loads
from .commits import extract_commit
from .outputs import blob_path


def _copy_inputs(row: Row, inputs_dir: Path, store_dir: Path) -> dict[str, Any]:
    """Copy each input file into place; returns inputs.json (valohai-utils' FileInfo entries)."""
    inputs_json: dict[str, Any] = {}
    for name, files in (loads(row["input_files"]) or {}).items():
        target_dir = inputs_dir / name
        target_dir.mkdir(parents=True, exist_ok=True)
        entries = []
        for f in files:
            target = target_dir / f["name"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(blob_path(store_dir, f["sha256"]), target)
            entries.append(
                {
                    "name": f["name"],
                    "path": str(target),
                    "size": f["size"],
                    "uri": f["uri"],
                    "checksums": f["checksums"],
                    "metadata": f["metadata"],
                    "datum_id": f["datum_id"],
                }
            )
        inputs_json[name] = {"files": entries}
    return inputs_json


def _execution_json(row: Row, project: Row | None) -> dict[str, Any]:
    return {
        "valohai.execution-id": row["id"],
        "valohai.execution-counter": row["counter"],
        "valohai.execution-title": row["title"] or row["step"],
        "valohai.execution-step": row["step"],
        "valohai.execution-status": STARTED,
        "valohai.execution-image": row["image"],
        "valohai.execution-ctime": row["ctime"] + "Z",
        "valohai.execution-tags": loads(row["tags"]) or [],
        "valohai.commit-identifier": row["commit_identifier"],
        "valohai.creator-id": 1,
        "valohai.creator-name": "local",
        "valohai.environment-slug": row["environment"] or "local",
        "valohai.project-id": row["project_id"],
        "valohai.project-name": f"local/{project['name'] if project else ''}",
        "valohai.pipeline-id": row["pipeline_id"],
        "valohai.pipeline-node-id": row["pipeline_node_id"],
    }


@functools.cache
def _server_environment() -> dict[str, str]:
    """The server's environment minus its own settings, read once (the server never changes its own)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LOCAL_VALOHAI_")}


def _environment(row: Row, dirs: dict[str, Path]) -> dict[str, str]:
    """The server's environment (minus its own settings), the execution's variables and the `VH_*` paths."""
    env = dict(_server_environment())
    env.update(loads(row["secret_environment"]) or {})  # the project's secrets nothing overrode
    env.update(loads(row["environment_variables"]) or {})
    env.update(
        {
            "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONUNBUFFERED": "1",
            "VH_CONFIG_DIR": str(dirs["config"]),
            "VH_INPUTS_DIR": str(dirs["inputs"]),
            "VH_OUTPUTS_DIR": str(dirs["outputs"]),
            "VH_REPOSITORY_DIR": str(dirs["repository"]),
            "VH_EXECUTION_ID": row["id"],
            "VH_JOB_ID": f"exec-{row['id']}",
            "VH_PROJECT_ID": row["project_id"],
        }
    )
    env.pop("VIRTUAL_ENV_PROMPT", None)
    if row["pipeline_id"]:
        env["VH_PIPELINE_ID"] = row["pipeline_id"]
        env["VH_PIPELINE_NODE_ID"] = row["pipeline_node_id"] or ""
    return env


def prepare(store: Store, store_dir: Path, row: Row, workdir: Path) -> dict[str, str]:
    """Lay out the execution directory and config files valohai-utils reads; returns the step's environment."""
    if workdir.exists():
        shutil.rmtree(workdir)
    dirs = {n: workdir / n for n in ("repository", "inputs", "outputs", "config")}
    for name in ("inputs", "outputs", "config"):
        dirs[name].mkdir(parents=True)
    commit = db.projects.commit(store, row["project_id"], row["commit_identifier"])
    assert commit is not None, f"commit {row['commit_identifier']} of execution {row['id']} is gone"
    extract_commit(commit, dirs["repository"])
    inputs_json = _copy_inputs(row, dirs["inputs"], store_dir)
    execution_json = _execution_json(row, db.projects.get(store, row["project_id"]))
    (dirs["config"] / "parameters.json").write_text(json.dumps(loads(row["parameters"]) or {}))
    (dirs["config"] / "inputs.json").write_text(json.dumps(inputs_json))
    (dirs["config"] / "execution.json").write_text(json.dumps(execution_json))
    return _environment(row, dirs)
