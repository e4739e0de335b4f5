"""Executions: create (the CLI's payload), list with the CLI's filters, detail, events, outputs, stop."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from providers.api.statuses import INCOMPLETE

from .. import db
from ..backend import Backend
from ..db import Row, Store, loads
from ..errors import bad_request
from ..serializers import datum_dict, execution_dict
from ..services.executions import ExecutionSpec, create_execution
from ..signing import signed_path
from ..validation import counter
from .common import (
    API_PREFIX,
    Payload,
    backend,
    base_url,
    bool_param,
    by_ident,
    excluded,
    int_param,
    list_param,
    lookup,
    ordering,
    paginate,
    project_or_400,
    small_read,
    status_param,
    stop_reply,
)

router = APIRouter(prefix=API_PREFIX)

SPEC_FIELDS = (
    "parameters",
    "inputs",
    "environment_variables",
    "tags",
    "runtime_config",
    "time_limit",
    "title",
    "image",
    "command",
    "environment",
    "priority",
)
ORDERING = ("counter", "ctime", "mtime", "status", "id")


def _exclude(request: Request) -> frozenset[str]:
    return excluded(request.query_params.get("exclude"))


def _serialized(request: Request, row: Row, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    return serialized(backend(request).store, base_url(request), row, exclude)


def serialized(store: Store, base: str, row: Row, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    related = db.related.for_executions(store, [row], outputs="outputs" not in exclude)
    return execution_dict(row, base, related, exclude=exclude)


def _spec(data: dict[str, Any], project_id: str) -> ExecutionSpec:
    """The payload's fields, accepting the hyphenated spellings valohai-yaml's converters use."""
    step = data.get("step")
    if not isinstance(step, str) or not step:
        raise bad_request("step", "This field is required.")
    spec_kwargs = {k: data[k] for k in SPEC_FIELDS if k in data and data[k] is not None}
    if "environment-variables" in data and "environment_variables" not in spec_kwargs:
        spec_kwargs["environment_variables"] = data["environment-variables"]
    if "time-limit" in data and "time_limit" not in spec_kwargs:
        spec_kwargs["time_limit"] = data["time-limit"]
    return ExecutionSpec(project_id=project_id, step=step, commit=data.get("commit"), **spec_kwargs)


@router.post("/executions/", status_code=201)
def create(request: Request, data: Payload) -> JSONResponse:
    project = project_or_400(request, data.get("project"))
    spec = _spec(data, project["id"])
    b = backend(request)
    with b.store.write() as tx:
        execution_id = create_execution(tx, b.store, b.settings.secret, spec, b.settings.limits)
        b.runner.enqueue(tx, execution_id)
    row = db.executions.get(b.store, execution_id)
    assert row is not None
    return JSONResponse(_serialized(request, row), status_code=201)


def _list_query(request: Request) -> db.listing.ListQuery:
    q = request.query_params
    counters = [counter(c) for c in q.getlist("counter") for c in c.split(",") if c]
    if any(c is None for c in counters):
        raise bad_request("counter", "Expected integer counters (ASCII digits, at most 18)")
    query = db.executions.list_query().equals("project_id", q.get("project"))
    query.one_of("status", status_param(request, INCOMPLETE)).one_of("counter", counters)
    if q.get("creator") and q["creator"] != "1":
        query.nothing()
    query.equals("pipeline_id", q.get("pipeline")).equals("step", q.get("step"))
    return query.equals("deleted", 1 if bool_param(request, "deleted") else 0)


@router.get("/executions/")
def list_executions(request: Request) -> JSONResponse:
    query = _list_query(request)
    order = ordering(request, ORDERING, "-counter")
    store, base, exclude = backend(request).store, base_url(request), _exclude(request)

    def serialize(rows: list[Row]) -> list[dict[str, Any]]:
        related = db.related.for_executions(store, rows, outputs="outputs" not in exclude)
        return [execution_dict(r, base, related, exclude=exclude) for r in rows]

    return JSONResponse(paginate(request, query, order, serialize))


@router.get("/executions/{ident}/")
async def get_execution(ident: str, request: Request) -> Response:
    """`read_execution`; local_valohai/fast_reads.py answers it before FastAPI's routing."""
    return await read_execution(backend(request), ident, base_url(request), _exclude(request))


async def read_execution(b: Backend, ident: str, base: str, exclude: frozenset[str]) -> Response:
    """On the event loop unless the execution has many outputs (`small_read`): clients poll this."""
    row = lookup(b.store, "executions", ident, "Execution")
    outputs = 0 if "outputs" in exclude else db.datums.count_outputs(b.store, row["id"])
    return await small_read(outputs, lambda: JSONResponse(serialized(b.store, base, row, exclude)))


@router.post("/executions/{ident}/stop/")
def stop(ident: str, request: Request) -> dict:
    """Short reply like Valohai's: the CLI prints it verbatim."""
    b = backend(request)
    row = by_ident(request, "executions", ident, "Execution")
    b.stop_execution(row["id"])
    if row["pipeline_id"]:
        b.scheduler.execution_finished(row["id"])
    row = db.executions.get(b.store, row["id"]) or row
    return stop_reply(row, "execution #")


@router.delete("/executions/{ident}/")
def delete(ident: str, request: Request) -> Response:
    b = backend(request)
    b.stop_execution(by_ident(request, "executions", ident, "Execution")["id"], delete=True)
    return Response(status_code=204)


@router.get("/executions/{ident}/events/")
def events(ident: str, request: Request) -> JSONResponse:
    """No `limit` → the last 100 events; `limit=0` → all; `limit=N` → the last N (what the CLI expects)."""
    store = backend(request).store
    row = by_ident(request, "executions", ident, "Execution")
    limit = int_param(request, "limit", 100)
    total = db.events.count(store, row["id"])
    rows = db.events.last(store, row["id"], limit or None)
    return JSONResponse(
        {
            "total": total,
            "truncated": len(rows) < total,
            "limit": limit,
            "events": [{"time": r["time"], "stream": r["stream"], "message": r["message"]} for r in rows],
        }
    )


@router.get("/executions/{ident}/status-events/")
def status_events(ident: str, request: Request) -> dict:
    row = by_ident(request, "executions", ident, "Execution")
    rows = db.events.status_events(backend(request).store, row["id"])
    return {"status_events": [{"time": r["time"], "message": r["message"]} for r in rows]}


@router.get("/executions/{ident}/metadata/")
def metadata(ident: str, request: Request) -> dict:
    row = by_ident(request, "executions", ident, "Execution")
    rows = db.events.metadata(backend(request).store, row["id"])
    return {
        "count": len(rows),
        "cumulative": loads(row["cumulative_metadata"]) or {},
        "results": [loads(r["data"]) for r in rows],
    }


@router.get("/executions/{ident}/outputs/")
def outputs(ident: str, request: Request) -> JSONResponse:
    b = backend(request)
    row = by_ident(request, "executions", ident, "Execution")
    base = base_url(request)
    with_url = "download_url" in list_param(request, "include")
    result = []
    for d in db.datums.outputs_of(b.store, row["id"]):
        item = datum_dict(d, base, row["counter"])
        if with_url:
            item["download_url"] = base + signed_path(b.settings.secret, d["id"], b.settings.signed_url_ttl)
        result.append(item)
    return JSONResponse(result)
