"""Pipelines: create from PipelineConverter or hand-written payloads, list, detail, stop, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from .. import db
from ..backend import Backend
from ..db import Row, Store, now_iso
from ..errors import ApiError, bad_request
from ..serializers import pipeline_dict
from ..services.pipeline_payload import create_pipeline
from ..services.scheduler import PIPELINE_INCOMPLETE, PIPELINE_TERMINAL
from ..validation import counter, string_list
from .common import (
    API_PREFIX,
    INLINE_ROWS,
    Payload,
    backend,
    base_url,
    bool_param,
    by_ident,
    excluded,
    lookup,
    ordering,
    paginate,
    project_or_400,
    small_read,
    status_param,
    stop_reply,
)

router = APIRouter(prefix=API_PREFIX)

ORDERING = ("counter", "ctime", "mtime", "title", "status")


def _serialized(request: Request, rows: list[Row], exclude: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    return serialized(backend(request).store, base_url(request), rows, exclude)


def serialized(store: Store, base: str, rows: list[Row], exclude: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    related = db.related.for_pipelines(store, rows, outputs="outputs" not in exclude)
    return [pipeline_dict(row, base, related, exclude=exclude) for row in rows]


@router.post("/pipelines/", status_code=201)
def create(request: Request, data: Payload) -> JSONResponse:
    project = project_or_400(request, data.get("project"))
    b = backend(request)
    with b.store.write() as tx:
        pipeline_id = create_pipeline(tx, b.store, project["id"], data, b.settings.limits)
        b.scheduler.advance(tx, pipeline_id, strict=True)
    row = db.pipelines.get(b.store, pipeline_id)
    assert row is not None
    return JSONResponse(_serialized(request, [row])[0], status_code=201)


@router.get("/pipelines/")
def list_pipelines(request: Request) -> Response:
    """A page of pipelines; a page whose pipelines have all finished is kept in the backend's `ReadCache`
    until the next write (a refresh lists a whole stack's pipelines at once)."""
    cache = backend(request).read_cache
    key = ("pipelines", "list", request.url.query, base_url(request))
    body = cache.get(key)
    if body is not None:
        return Response(body, media_type="application/json")
    generation = cache.generation()
    data = _list_page(request)
    response = JSONResponse(data)
    finished = (row["status"] in PIPELINE_TERMINAL and not _clock_driven(row) for row in data["results"])
    if all(finished):
        cache.put(key, generation, bytes(response.body))
    return response


def _list_page(request: Request) -> dict[str, Any]:
    q = request.query_params
    query = db.pipelines.list_query().equals("project_id", q.get("project"))
    query.one_of("status", status_param(request, PIPELINE_INCOMPLETE))
    counters = [counter(c) for c in q.getlist("counter") for c in c.split(",") if c]
    if any(c is None for c in counters):
        raise bad_request("counter", "Expected integer counters (ASCII digits, at most 18)")
    query.one_of("counter", counters).equals("title", q.get("title"))
    for tag in q.getlist("tag"):
        query.tagged(tag)
    query.equals("deleted", 1 if bool_param(request, "deleted") else 0)
    order = ordering(request, ORDERING, "-counter")
    exclude = excluded(q.get("exclude"))  # fields of the nodes' executions (a refresh needs their status only)
    return paginate(request, query, order, lambda rows: _serialized(request, rows, exclude))


@router.get("/pipelines/{ident}/")
async def get_pipeline(ident: str, request: Request) -> Response:
    """`read_pipeline`; local_valohai/fast_reads.py answers it before FastAPI's routing."""
    return await read_pipeline(backend(request), ident, base_url(request))


async def read_pipeline(b: Backend, ident: str, base: str) -> Response:
    """One pipeline's body, on the event loop unless it has many nodes (`small_read`): clients poll this.

    A finished pipeline's body is kept in the backend's `ReadCache` until the next write.
    """
    cache = b.read_cache
    key = ("pipeline", ident, base)
    body = cache.get(key)
    if body is not None:
        return Response(body, media_type="application/json")
    generation = cache.generation()
    row = lookup(b.store, "pipelines", ident, "Pipeline")
    nodes = db.nodes.count_of(b.store, row["id"])
    data = await small_read(nodes, lambda: serialized(b.store, base, [row])[0])
    response = JSONResponse(data)
    if row["status"] in PIPELINE_TERMINAL and nodes <= INLINE_ROWS and not _clock_driven(data):
        cache.put(key, generation, bytes(response.body))
    return response


def _clock_driven(data: dict[str, Any]) -> bool:
    """Whether a node's execution is running: its `duration` grows with the clock, without any write."""
    executions = (node["execution"] for node in data["nodes"] if node["execution"])
    return any(e["start_time"] and not e["end_time"] for e in executions)


@router.post("/pipelines/{ident}/stop/")
def stop(ident: str, request: Request) -> dict:
    b = backend(request)
    row = by_ident(request, "pipelines", ident, "Pipeline")
    with b.store.write() as tx:
        b.scheduler.stop_pipeline(tx, row["id"])
    row = db.pipelines.get(b.store, row["id"]) or row
    return stop_reply(row, "pipeline =")


@router.patch("/pipelines/{ident}/")
def patch(ident: str, request: Request, data: Payload) -> JSONResponse:
    """Set `tags` (the only field that may change; a pipeline's nodes are fixed once created).

    No valohai-cli command changes a pipeline, so whether Valohai's API takes a PATCH of `tags` is
    unverified; providers/resources/pipelines.py uses it only as a best effort when DELETE is refused.
    """
    b = backend(request)
    row = by_ident(request, "pipelines", ident, "Pipeline")
    unknown = sorted(set(data) - {"tags"})
    if unknown:
        raise bad_request(unknown[0], "Only 'tags' of a pipeline can be changed")
    tags = string_list(data.get("tags"), "tags", b.settings.limits.tags, b.settings.limits.tag)
    with b.store.write() as tx:
        db.pipelines.set_tags(tx, row["id"], tags, now_iso())
    return JSONResponse(_serialized(request, [db.pipelines.get(b.store, row["id"]) or row])[0])


@router.delete("/pipelines/{ident}/")
def delete(ident: str, request: Request) -> Response:
    """Stops what still runs, then marks the pipeline deleted (kept for GET by id, hidden from lists)."""
    b = backend(request)
    row = by_ident(request, "pipelines", ident, "Pipeline")
    if b.settings.refuse_pipeline_delete:
        raise ApiError(405, {"detail": 'Method "DELETE" not allowed.'})
    with b.store.write() as tx:
        b.scheduler.stop_pipeline(tx, row["id"], "Pipeline deleted")
        db.pipelines.mark_deleted(tx, row["id"])
    return Response(status_code=204)
