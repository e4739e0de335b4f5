"""Rows → Valohai-shaped JSON, as the `vh` CLI and the providers read it. URLs use the caller's own host.

The CLI follows server-supplied URLs and sends its token only to the host it logged into, so every `url`
must use the request's scheme, host and port. Nothing here queries: callers pass the related rows, loaded
for a whole page at once with `db.related`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import yaml

from .db import Row, loads
from .db.related import ExecutionRelated, PipelineRelated
from .environments import by_slug
from .services.project_variables import public_view

LOCAL_USER = {"id": 1, "username": "local", "email": "local@localhost"}


def _owner() -> dict[str, Any]:
    return {"id": LOCAL_USER["id"], "username": LOCAL_USER["username"]}


def project_dict(row: Row, base: str, summary: dict[str, int] | None = None) -> dict[str, Any]:
    """With `summary` (status → number of executions), adds the `execution_summary` project lists show."""
    data: dict[str, Any] = {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "owner": _owner(),
        "ctime": row["ctime"] + "Z",
        "mtime": row["mtime"] + "Z",
        "url": f"{base}/api/v0/projects/{row['id']}/",
        "urls": {"display": f"{base}/p/{row['id']}/"},
        "yaml_path": row["yaml_path"],
        "environment_variables": public_view(loads(row["environment_variables"]) or {}),
    }
    if summary is not None:
        data["execution_summary"] = {"count": sum(summary.values()), **{f"{k}_count": v for k, v in summary.items()}}
    return data


def commit_dict(row: Row, base: str, *, include_config: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "identifier": row["identifier"],
        "ref": row["ref"],
        "commit_time": row["ctime"] + "Z",
        "adhoc": bool(row["adhoc"]),
        "url": f"{base}/api/v0/commits/{row['identifier']}/?project={row['project_id']}",
        "repository": None,
        "description": row["description"],
        "yaml_path": row["yaml_path"],
        "project_id": row["project_id"],
        "ref_names": [row["ref"]],
        "urls": {"display": f"{base}/p/{row['project_id']}/commits/{row['identifier']}/"},
    }
    if include_config:
        data["config"] = yaml.safe_load(row["config_yaml"])
    return data


def datum_dict(row: Row, base: str, counter: int | None = None) -> dict[str, Any]:
    output_execution = None
    if row["output_execution_id"]:
        output_execution = {"id": row["output_execution_id"], "counter": counter}
    return {
        "id": row["id"],
        "name": row["name"],
        "size": row["size"],
        "ctime": row["ctime"] + "Z",
        "file_ctime": row["ctime"] + "Z",
        "file_mtime": row["ctime"] + "Z",
        "uri": f"datum://{row['id']}",
        "url": f"{base}/api/v0/data/{row['id']}/",
        "purged": bool(row["purged"]),
        "deleted": bool(row["deleted"]),
        "md5": row["md5"],
        "sha1": row["sha1"],
        "sha256": row["sha256"],
        "project": row["project_id"],
        "metadata": loads(row["metadata"]) or [],
        "tags": loads(row["tags"]) or [],
        "output_execution": output_execution,
    }


def _duration(row: Row) -> float | None:
    if not row["start_time"]:
        return None
    start = datetime.fromisoformat(row["start_time"])
    end = datetime.fromisoformat(row["end_time"]) if row["end_time"] else None
    if end is None:
        end = datetime.now(timezone.utc).replace(tzinfo=None)
    return round((end - start).total_seconds(), 3)


def execution_dict(
    row: Row, base: str, related: ExecutionRelated, *, exclude: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """`exclude` names top-level fields to leave out, and only those (the `?exclude=` the CLI sends).

    `vh exec summarize` asks `exclude=metadata,events,tags` and then reads `cumulative_metadata`, and
    `vh exec info` asks `exclude=metadata,events` (valohai-cli 0.37, valohai_cli/commands/execution/
    summarize.py and info.py): `metadata` names the per-event metadata list, never `cumulative_metadata`.
    Secret project variables live in their own column and are never part of this object.

    Over 50 lines only because it is one literal holding every field of Valohai's execution object.
    """
    eid = row["id"]
    url = f"{base}/api/v0/executions/{eid}/"
    project = related.projects.get(row["project_id"])
    commit = related.commits.get((row["project_id"], row["commit_identifier"]))
    data: dict[str, Any] = {
        "id": eid,
        "counter": row["counter"],
        "status": row["status"],
        "status_detail": row["status_detail"],
        "step": row["step"],
        "title": row["title"] or row["step"],
        "ctime": row["ctime"] + "Z",
        "mtime": row["mtime"] + "Z",
        "start_time": row["start_time"] + "Z" if row["start_time"] else None,
        "end_time": row["end_time"] + "Z" if row["end_time"] else None,
        "duration": _duration(row),
        "project": project_dict(project, base) if project else None,
        "commit": commit_dict(commit, base) if commit else {"identifier": row["commit_identifier"]},
        "environment": by_slug(row["environment"]),
        "image": row["image"],
        "command": row["command"],
        "interpolated_command": row["command"],
        "parameters": loads(row["parameters"]) or {},
        "inputs": [{"name": name, "urls": urls} for name, urls in (loads(row["inputs"]) or {}).items()],
        "environment_variables": loads(row["environment_variables"]) or {},
        "runtime_config": loads(row["runtime_config"]) or {},
        "time_limit": row["time_limit"],
        "tags": loads(row["tags"]) or [],
        "creator": _owner(),
        "deleted": bool(row["deleted"]),
        "priority": row["priority"] or 0,
        "task": None,
        "pipeline": row["pipeline_id"],
        "pipeline_node": row["pipeline_node_id"],
        "pipeline_counter": related.pipeline_counters.get(row["pipeline_id"]) if row["pipeline_id"] else None,
        "exit_code": row["exit_code"],
        "url": url,
        "urls": {
            "display": f"{base}/p/{row['project_id']}/executions/{eid}/",
            "stop": f"{url}stop/",
            "copy": f"{base}/p/{row['project_id']}/executions/create/?from={eid}",
        },
    }
    data["cumulative_metadata"] = loads(row["cumulative_metadata"]) or None
    data["outputs"] = [datum_dict(d, base, row["counter"]) for d in related.outputs.get(eid, [])]
    for name in exclude:
        data.pop(name, None)
    return data


def _node_dict(node: Row, base: str, related: PipelineRelated, exclude: frozenset[str]) -> dict[str, Any]:
    execution_row = related.executions.get(node["execution_id"]) if node["execution_id"] else None
    execution = (
        execution_dict(execution_row, base, related.execution_related, exclude=exclude) if execution_row else None
    )
    return {
        "id": node["id"],
        "name": node["name"],
        "type": node["type"],
        "status": node["status"],
        "pipeline": node["pipeline_id"],
        "on_error": node["on_error"],
        "log": loads(node["log"]) or [],
        "execution": execution,
    }


def _edge_dict(edge: Row) -> dict[str, Any]:
    return {
        "id": edge["id"],
        "pipeline": edge["pipeline_id"],
        "source_node": edge["source_node"],
        "source_type": edge["source_type"],
        "source_key": edge["source_key"],
        "target_node": edge["target_node"],
        "target_type": edge["target_type"],
        "target_key": edge["target_key"],
        "configuration": loads(edge["configuration"]) or {},
    }


def pipeline_dict(
    row: Row, base: str, related: PipelineRelated, *, exclude: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """`exclude` names fields of the nodes' executions to leave out (`GET pipelines/?exclude=`, as `execution_dict`
    takes it; whether Valohai's pipeline list honours it is unverified: a list that ignores it shows more)."""
    pid = row["id"]
    url = f"{base}/api/v0/pipelines/{pid}/"
    project = related.projects.get(row["project_id"])
    return {
        "id": pid,
        "counter": row["counter"],
        "title": row["title"],
        "status": row["status"],
        "tags": loads(row["tags"]) or [],
        "creator": _owner(),
        "ctime": row["ctime"] + "Z",
        "mtime": row["mtime"] + "Z",
        "deleted": bool(row["deleted"]),
        "project": project_dict(project, base) if project else None,
        "parameters": loads(row["parameters"]) or {},
        "url": url,
        "urls": {"display": f"{base}/p/{row['project_id']}/pipelines/{pid}/", "stop": f"{url}stop/"},
        "log": loads(row["log"]) or [],
        "nodes": [_node_dict(n, base, related, exclude) for n in related.nodes.get(pid, [])],
        "edges": [_edge_dict(e) for e in related.edges.get(pid, [])],
    }


def dataset_version_dict(row: Row, dataset: Row, files: list[Row], base: str) -> dict[str, Any]:
    """`files` are the version's datums in order."""
    return {
        "id": row["id"],
        "name": row["name"],
        "uri": f"dataset://{dataset['name']}/{row['name']}",
        "dataset": {"id": dataset["id"], "name": dataset["name"]},
        "ctime": row["ctime"] + "Z",
        "output_execution": row["output_execution_id"],
        "file_count": len(files),
        "url": f"{base}/api/v0/dataset-versions/{row['id']}/",
        "files": [{"datum": datum_dict(f, base)} for f in files],
    }


def dataset_dict(row: Row, versions: list[Row], base: str) -> dict[str, Any]:
    """`versions` are the dataset's versions, oldest first."""
    latest = versions[-1] if versions else None
    return {
        "id": row["id"],
        "name": row["name"],
        "project": row["project_id"],
        "ctime": row["ctime"] + "Z",
        "url": f"{base}/api/v0/datasets/{row['id']}/",
        "latest_version": {"id": latest["id"], "name": latest["name"]} if latest else None,
        "versions": [{"id": v["id"], "name": v["name"], "ctime": v["ctime"] + "Z"} for v in versions],
    }
