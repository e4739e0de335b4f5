"""Pipelines: create from PipelineConverter or hand-written payloads, list, detail, stop, delete."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..serializers import pipeline_dict
from ..services.pipelines import create_pipeline
from .common import backend, base_url, bool_param, by_ident, ordering, paginate, project_or_400, read_payload

router = APIRouter()

ORDERING = {"counter": "counter", "ctime": "ctime", "mtime": "mtime", "title": "title", "status": "status"}


@router.post("/pipelines/", status_code=201)
async def create(request: Request) -> JSONResponse:
    data = await read_payload(request)
    project = project_or_400(request, data.get("project"))
    b = backend(request)
    with b.store.write() as tx:
        pipeline_id = create_pipeline(tx, b.store, b.settings.secret, project["id"], data)
        b.scheduler.advance(tx, pipeline_id, strict=True)
    row = b.store.one("SELECT * FROM pipelines WHERE id=?", (pipeline_id,))
    return JSONResponse(pipeline_dict(b.store, row, base_url(request)), status_code=201)


@router.get("/pipelines/")
async def list_pipelines(request: Request) -> JSONResponse:
    q = request.query_params
    where, params = [], []
    if q.get("project"):
        where.append("project_id=?")
        params.append(q["project"])
    statuses = [p for s in q.getlist("status") for p in s.split(",") if p]
    if "incomplete" in statuses:
        statuses = [s for s in statuses if s != "incomplete"] + ["created", "started", "stopping"]
    if statuses:
        where.append(f"status IN ({','.join('?' * len(statuses))})")
        params.extend(statuses)
    counters = [c for c in q.getlist("counter") if c.isdigit()]
    if counters:
        where.append(f"counter IN ({','.join('?' * len(counters))})")
        params.extend(int(c) for c in counters)
    if q.get("title"):
        where.append("title=?")
        params.append(q["title"])
    for tag in q.getlist("tag"):
        where.append("EXISTS (SELECT 1 FROM json_each(pipelines.tags) WHERE json_each.value=?)")
        params.append(tag)
    where.append("deleted=?")
    params.append(1 if bool_param(request, "deleted") else 0)
    order = ordering(request, ORDERING, "-counter")
    b = backend(request)
    base = base_url(request)
    return JSONResponse(paginate(request, f"FROM pipelines WHERE {' AND '.join(where)}", params, order,
                    lambda r: pipeline_dict(b.store, r, base)))


@router.get("/pipelines/{ident}/")
async def get_pipeline(ident: str, request: Request) -> JSONResponse:
    row = by_ident(request, "pipelines", ident, "Pipeline")
    return JSONResponse(pipeline_dict(backend(request).store, row, base_url(request)))


@router.post("/pipelines/{ident}/stop/")
def stop(ident: str, request: Request) -> dict:
    b = backend(request)
    row = by_ident(request, "pipelines", ident, "Pipeline")
    with b.store.write() as tx:
        b.scheduler.stop_pipeline(tx, row["id"])
    row = b.store.one("SELECT id, counter, status FROM pipelines WHERE id=?", (row["id"],))
    return {"message": f"Stop requested for pipeline ={row['counter']} (now {row['status']})",
            "id": row["id"], "counter": row["counter"], "status": row["status"]}


@router.delete("/pipelines/{ident}/")
def delete(ident: str, request: Request) -> Response:
    """Stops what still runs, then marks the pipeline deleted (kept for GET by id, hidden from lists)."""
    b = backend(request)
    row = by_ident(request, "pipelines", ident, "Pipeline")
    with b.store.write() as tx:
        b.scheduler.stop_pipeline(tx, row["id"], "Pipeline deleted")
        tx.execute("UPDATE pipelines SET deleted=1 WHERE id=?", (row["id"],))
    return Response(status_code=204)
