"""Helpers every router uses: payload parsing, query parameters, pagination, lookups.

Route handlers that touch the database or files are plain `def` functions, which FastAPI runs in its
thread pool; only reading the request body is async, done by the `Payload` dependency before the handler.
The exception are the GETs of one pipeline or execution by id, which clients poll: they read on the event
loop while the object is small (`small_read`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl, urlencode

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from .. import db
from ..backend import Backend
from ..db import Row
from ..db.listing import ListQuery, Order
from ..errors import ApiError, bad_request, not_found
from ..validation import counter, integer, json_body, too_large

T = TypeVar("T")
API_PREFIX = "/api/v0"  # every route's path starts with it (each module's router has it as prefix)
DEFAULT_LIMIT = 100
MAX_LIMIT = 10000
INLINE_ROWS = 100  # nodes of a pipeline or outputs of an execution that `small_read` serializes on the loop


def backend(request: Request) -> Backend:
    return request.app.state.backend


def base_url(request: Request) -> str:
    """Scheme + host:port the client used, so server-supplied URLs carry its token."""
    return str(request.base_url).rstrip("/")


def error_response(exc: ApiError) -> JSONResponse:
    """An `ApiError` as the app answers it, from a route or from local_valohai/fast_reads.py."""
    return JSONResponse(exc.body, status_code=exc.status)


async def read_body(request: Request, limit: int, what: str, setting: str) -> bytes:
    """The request body, refused with a 413 as soon as it exceeds `limit` bytes (declared or streamed)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise too_large(what, limit, setting)
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise too_large(what, limit, setting)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_payload(request: Request) -> dict[str, Any]:
    """JSON (the CLI, our providers) or form data (Valohai docs' examples); DRF-style parse errors."""
    limits = backend(request).settings.limits
    content_type = request.headers.get("content-type", "")
    body = await read_body(request, limits.request_body_bytes, "The request body", "Limits.request_body_bytes")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        request._body = body  # Starlette's form parser re-reads the body from here
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    if not body.strip():
        return {}
    data = await run_in_threadpool(json_body, body, limits.json_depth)  # up to 8 MiB: not on the event loop
    if not isinstance(data, dict):
        raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary (JSON object)."]})
    return data


# The request body, read (async) before a plain `def` handler runs in the thread pool.
Payload = Annotated[dict[str, Any], Depends(read_payload)]


async def small_read(rows: int, build: Callable[[], T]) -> T:
    """`build()` on the event loop when the object has at most INLINE_ROWS related rows, else in the pool.

    Reading one small object is ~1 ms of SQLite and Python, and a trip through the thread pool adds ~0.4 ms
    and two GIL hand-offs (bench/README.md, "Local backend load"). SQLite in WAL mode never makes a reader
    wait for a writer, so the loop is held only for that long; bigger objects still go to the pool.
    """
    if rows > INLINE_ROWS:
        return await run_in_threadpool(build)
    return build()


def found(row: Row | None, what: str) -> Row:
    """The row, or a 404 `{"detail": "<what> not found."}`."""
    if row is None:
        raise not_found(what)
    return row


def int_param(request: Request, name: str, default: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    return integer(raw, name)


def bool_param(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise bad_request(name, f"Expected true or false, got {raw!r}")


def excluded(raw: str | None) -> frozenset[str]:
    """`?exclude=` as field names, spaces trimmed: valohai_cli/utils/ssh.py sends `exclude=metadata, events`."""
    return frozenset(filter(None, (name.strip() for name in (raw or "").split(","))))


def list_param(request: Request, name: str) -> list[str]:
    """`?include=a,b` → ["a", "b"]."""
    return (request.query_params.get(name) or "").split(",")


def status_param(request: Request, incomplete: frozenset[str]) -> list[str]:
    """`?status=a,b&status=c`; the word `incomplete` stands for every status in `incomplete`."""
    statuses: list[str] = []
    for value in request.query_params.getlist("status"):
        for part in value.split(","):
            statuses.extend(sorted(incomplete) if part == "incomplete" else [part] if part else [])
    return statuses


def ordering(request: Request, allowed: Sequence[str], default: str) -> Order:
    """`?ordering=-counter,name` → [("counter", True), ("name", False)], each name checked against `allowed`."""
    raw = request.query_params.get("ordering") or default
    order: Order = []
    for part in raw.split(","):
        name = part.lstrip("-")
        if name not in allowed:
            raise bad_request("ordering", f"Cannot order by {part!r}; use one of {', '.join(sorted(allowed))}")
        order.append((name, part.startswith("-")))
    return order


def paginate(
    request: Request, query: ListQuery, order: Order, serialize: Callable[[list[Row]], list[Any]]
) -> dict[str, Any]:
    """Run `query` with limit/offset and wrap it as `{count, next, previous, results}`."""
    store = backend(request).store
    limit = min(int_param(request, "limit", DEFAULT_LIMIT) or DEFAULT_LIMIT, MAX_LIMIT)
    offset = int_param(request, "offset", 0) or 0
    count = db.listing.count(store, query)
    rows = db.listing.page(store, query, order, limit, offset)

    def page_url(new_offset: int) -> str:
        query = [
            (k, v) for k, v in parse_qsl(request.url.query, keep_blank_values=True) if k not in ("offset", "limit")
        ]
        query += [("limit", str(limit)), ("offset", str(new_offset))]
        return f"{base_url(request)}{request.url.path}?{urlencode(query)}"

    return {
        "count": count,
        "next": page_url(offset + limit) if offset + limit < count else None,
        "previous": page_url(max(0, offset - limit)) if offset > 0 else None,
        "results": serialize(rows),
    }


def stop_reply(row: Row, label: str) -> dict[str, Any]:
    """The short reply to a stop, like Valohai's (the CLI prints it verbatim); `label` is e.g. "execution #"."""
    return {
        "message": f"Stop requested for {label}{row['counter']} (now {row['status']})",
        "id": row["id"],
        "counter": row["counter"],
        "status": row["status"],
    }


def project_or_400(request: Request, project_id: Any, field: str = "project") -> Row:
    if not project_id or not isinstance(project_id, str):
        raise bad_request(field, "This field is required.")
    row = db.projects.by_id_or_name(backend(request).store, project_id)
    if row is None:
        raise bad_request(field, f"Project {project_id!r} not found.")
    return row


def by_ident(request: Request, table: db.listing.Counted, ident: str, what: str) -> Row:
    """`lookup` in the request's backend."""
    return lookup(backend(request).store, table, ident, what)


def lookup(store: db.Store, table: db.listing.Counted, ident: str, what: str) -> Row:
    """Look up by uuid or by `{project}:{counter|latest}` (the CLI's counter addressing); 404 if absent."""
    if ":" not in ident:
        return found(db.listing.by_id(store, table, ident), what)
    project_id, raw = ident.rsplit(":", 1)
    number = counter(raw)
    if raw != "latest" and number is None:
        raise not_found(what)
    return found(db.listing.by_counter(store, table, project_id, number), what)
