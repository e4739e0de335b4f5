"""Executions: create (the CLI's payload), list with the CLI's filters, detail, events, outputs, stop."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..errors import bad_request
from ..serializers import INCOMPLETE, datum_dict, execution_dict
from ..services.executions import ExecutionSpec, create_execution
from ..signing import signed_path
from ..store import loads
from .common import backend, base_url, bool_param, by_ident, int_param, ordering, paginate, project_or_400, read_payload

router = APIRouter()

SPEC_FIELDS = ("parameters", "inputs", "environment_variables", "tags", "runtime_config", "time_limit", "title",
               "image", "command")
ORDERING = {"counter": "counter", "ctime": "ctime", "mtime": "mtime", "status": "status", "id": "id"}


def _exclude(request: Request) -> frozenset[str]:
    return frozenset(filter(None, (request.query_params.get("exclude") or "").split(",")))


@router.post("/executions/", status_code=201)
async def create(request: Request) -> JSONResponse:
    data = await read_payload(request)
    project = project_or_400(request, data.get("project"))
    step = data.get("step")
    if not isinstance(step, str) or not step:
        raise bad_request("step", "This field is required.")
    b = backend(request)
    spec_kwargs = {k: data[k] for k in SPEC_FIELDS if k in data and data[k] is not None}
    if "environment-variables" in data and "environment_variables" not in spec_kwargs:
        spec_kwargs["environment_variables"] = data["environment-variables"]
    if "time-limit" in data and "time_limit" not in spec_kwargs:
        spec_kwargs["time_limit"] = data["time-limit"]
    spec = ExecutionSpec(project_id=project["id"], step=step, commit=data.get("commit") or None, **spec_kwargs)
    with b.store.write() as tx:
        execution_id = create_execution(tx, b.store, b.settings.secret, spec)
        tx.after_commit(lambda: b.runner.submit(execution_id))
    row = b.store.one("SELECT * FROM executions WHERE id=?", (execution_id,))
    return JSONResponse(execution_dict(b.store, row, base_url(request)), status_code=201)


@router.get("/executions/")
async def list_executions(request: Request) -> JSONResponse:
    where, params = [], []
    q = request.query_params
    if q.get("project"):
        where.append("project_id=?")
        params.append(q["project"])
    statuses: list[str] = []
    for s in q.getlist("status"):
        for part in s.split(","):
            statuses.extend(INCOMPLETE if part == "incomplete" else [part] if part else [])
    if statuses:
        where.append(f"status IN ({','.join('?' * len(statuses))})")
        params.extend(statuses)
    counters = [c.lstrip("#=!") for c in q.getlist("counter") for c in c.split(",") if c]
    if counters:
        if not all(c.isdigit() for c in counters):
            raise bad_request("counter", "Expected integer counters")
        where.append(f"counter IN ({','.join('?' * len(counters))})")
        params.extend(int(c) for c in counters)
    if q.get("creator") and q["creator"] != "1":
        where.append("0")
    if q.get("pipeline"):
        where.append("pipeline_id=?")
        params.append(q["pipeline"])
    if q.get("step"):
        where.append("step=?")
        params.append(q["step"])
    deleted = bool_param(request, "deleted")
    where.append("deleted=?")
    params.append(1 if deleted else 0)
    order = ordering(request, ORDERING, "-counter")
    b = backend(request)
    base = base_url(request)
    exclude = _exclude(request)
    return JSONResponse(paginate(request, f"FROM executions WHERE {' AND '.join(where)}", params, order,
                    lambda r: execution_dict(b.store, r, base, exclude=exclude)))


@router.get("/executions/{ident}/")
async def get_execution(ident: str, request: Request) -> JSONResponse:
    b = backend(request)
    row = by_ident(request, "executions", ident, "Execution")
    return JSONResponse(execution_dict(b.store, row, base_url(request), exclude=_exclude(request)))


@router.post("/executions/{ident}/stop/")
def stop(ident: str, request: Request) -> dict:
    """Short reply like Valohai's: the CLI prints it verbatim."""
    b = backend(request)
    row = by_ident(request, "executions", ident, "Execution")
    with b.store.write() as tx:
        b.stop_execution(tx, row["id"])
    if row["pipeline_id"]:
        b.scheduler.execution_finished(row["id"])
    row = b.store.one("SELECT id, counter, status FROM executions WHERE id=?", (row["id"],))
    return {"message": f"Stop requested for execution #{row['counter']} (now {row['status']})",
            "id": row["id"], "counter": row["counter"], "status": row["status"]}


@router.delete("/executions/{ident}/")
def delete(ident: str, request: Request) -> Response:
    b = backend(request)
    row = by_ident(request, "executions", ident, "Execution")
    with b.store.write() as tx:
        b.stop_execution(tx, row["id"])
        tx.execute("UPDATE executions SET deleted=1 WHERE id=?", (row["id"],))
    return Response(status_code=204)


@router.get("/executions/{ident}/events/")
async def events(ident: str, request: Request) -> JSONResponse:
    """No `limit` → the last 100 events; `limit=0` → all; `limit=N` → the last N (what the CLI expects)."""
    b = backend(request)
    row = by_ident(request, "executions", ident, "Execution")
    limit = int_param(request, "limit", 100)
    total = b.store.one("SELECT COUNT(*) AS n FROM events WHERE execution_id=?", (row["id"],))["n"]
    if limit:
        rows = b.store.all(
            "SELECT * FROM (SELECT * FROM events WHERE execution_id=? ORDER BY seq DESC LIMIT ?) ORDER BY seq",
            (row["id"], limit),
        )
    else:
        rows = b.store.all("SELECT * FROM events WHERE execution_id=? ORDER BY seq", (row["id"],))
    return JSONResponse({
        "total": total,
        "truncated": len(rows) < total,
        "limit": limit,
        "events": [{"time": r["time"], "stream": r["stream"], "message": r["message"]} for r in rows],
    })


@router.get("/executions/{ident}/status-events/")
async def status_events(ident: str, request: Request) -> dict:
    b = backend(request)
    row = by_ident(request, "executions", ident, "Execution")
    rows = b.store.all("SELECT * FROM events WHERE execution_id=? AND stream='status' ORDER BY seq", (row["id"],))
    return {"status_events": [{"time": r["time"], "message": r["message"]} for r in rows]}


@router.get("/executions/{ident}/metadata/")
async def metadata(ident: str, request: Request) -> dict:
    b = backend(request)
    row = by_ident(request, "executions", ident, "Execution")
    rows = b.store.all("SELECT data FROM metadata WHERE execution_id=? ORDER BY seq", (row["id"],))
    return {"count": len(rows), "cumulative": loads(row["cumulative_metadata"]) or {},
            "results": [loads(r["data"]) for r in rows]}


@router.get("/executions/{ident}/outputs/")
async def outputs(ident: str, request: Request) -> JSONResponse:
    b = backend(request)
    row = by_ident(request, "executions", ident, "Execution")
    base = base_url(request)
    include = (request.query_params.get("include") or "").split(",")
    result = []
    for d in b.store.all("SELECT * FROM datums WHERE output_execution_id=? ORDER BY name", (row["id"],)):
        item = datum_dict(d, base, row["counter"])
        if "download_url" in include:
            item["download_url"] = base + signed_path(b.settings.secret, d["id"], b.settings.signed_url_ttl)
        result.append(item)
    return JSONResponse(result)
