"""The rows a page of executions or pipelines refers to, loaded with one query per kind of row.

The serializers query nothing: a route loads a page, then its related rows here, then serializes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from . import datums, executions, nodes, pipelines, projects
from .store import Db, Row


@dataclass
class ExecutionRelated:
    projects: dict[str, Row]
    commits: dict[tuple[str, str], Row]
    pipeline_counters: dict[str, int]
    outputs: dict[str, list[Row]]


@dataclass
class PipelineRelated:
    projects: dict[str, Row]
    nodes: dict[str, list[Row]]
    edges: dict[str, list[Row]]
    executions: dict[str, Row]  # the nodes' executions
    execution_related: ExecutionRelated


def for_executions(
    db: Db,
    rows: Sequence[Row],
    *,
    outputs: bool = True,
    known_projects: Mapping[str, Row] | None = None,
    known_pipelines: Sequence[Row] = (),
) -> ExecutionRelated:
    """Projects, commits, pipeline counters and (unless excluded) outputs of these executions.

    Rows the caller already holds (`known_projects` by id, `known_pipelines`) are not queried again: a
    pipeline's GET would otherwise read its project and its own counter twice.
    """
    project_rows = dict(known_projects or {})
    project_rows.update(projects.get_many(db, {row["project_id"] for row in rows} - project_rows.keys()))
    counters = {row["id"]: row["counter"] for row in known_pipelines}
    counters.update(
        pipelines.counters(db, {row["pipeline_id"] for row in rows if row["pipeline_id"]} - counters.keys())
    )
    return ExecutionRelated(
        projects=project_rows,
        commits=projects.commits_of(db, ((row["project_id"], row["commit_identifier"]) for row in rows)),
        pipeline_counters=counters,
        outputs=datums.outputs_of_many(db, (row["id"] for row in rows)) if outputs else {},
    )


def for_pipelines(db: Db, rows: Sequence[Row], *, outputs: bool = True) -> PipelineRelated:
    """Projects, nodes, edges and the nodes' executions (with what those refer to, their outputs unless
    excluded) of these pipelines."""
    ids = [row["id"] for row in rows]
    node_rows = nodes.of_pipelines(db, ids)
    execution_ids = [n["execution_id"] for group in node_rows.values() for n in group if n["execution_id"]]
    node_executions = executions.get_many(db, execution_ids)
    project_ids = {row["project_id"] for row in rows} | {row["project_id"] for row in node_executions.values()}
    project_rows = projects.get_many(db, project_ids)
    return PipelineRelated(
        projects=project_rows,
        nodes=node_rows,
        edges=nodes.edges_of_pipelines(db, ids),
        executions=node_executions,
        execution_related=for_executions(
            db, list(node_executions.values()), outputs=outputs, known_projects=project_rows, known_pipelines=rows
        ),
    )
