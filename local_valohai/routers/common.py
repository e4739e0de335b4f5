"""Helpers every router uses: payload parsing, pagination, filters, lookups."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import Request

from ..backend import Backend
from ..errors import ApiError, bad_request, not_found

DEFAULT_LIMIT = 100
MAX_LIMIT = 10000


def backend(request: Request) -> Backend:
    return request.app.state.backend


def base_url(request: Request) -> str:
    """Scheme + host:port the client used, so server-supplied URLs carry its token."""
    return str(request.base_url).rstrip("/")


async def read_payload(request: Request) -> dict[str, Any]:
    """JSON (the CLI, our providers) or form data (Valohai docs' examples); DRF-style parse errors."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        return {k: v for k, v in form.items()}
    body = await request.body()
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, {"detail": f"JSON parse error - {exc}"}) from exc
    if not isinstance(data, dict):
        raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary (JSON object)."]})
    return data


def int_param(request: Request, name: str, default: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise bad_request(name, f"Expected an integer, got {raw!r}") from exc
    if value < 0:
        raise bad_request(name, "Must not be negative")
    return value


def bool_param(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise bad_request(name, f"Expected true or false, got {raw!r}")


def ordering(request: Request, allowed: dict[str, str], default: str) -> str:
    raw = request.query_params.get("ordering") or default
    clauses = []
    for part in raw.split(","):
        desc = part.startswith("-")
        column = allowed.get(part.lstrip("-"))
        if column is None:
            raise bad_request("ordering", f"Cannot order by {part!r}; use one of {', '.join(sorted(allowed))}")
        clauses.append(f"{column} {'DESC' if desc else 'ASC'}")
    return ", ".join(clauses)


def paginate(request: Request, sql_from: str, params: list[Any], order_by: str, serialize) -> dict[str, Any]:
    """Run `SELECT * {sql_from}` with limit/offset and wrap it as `{count, next, previous, results}`."""
    store = backend(request).store
    limit = int_param(request, "limit", DEFAULT_LIMIT) or DEFAULT_LIMIT
    limit = min(limit, MAX_LIMIT)
    offset = int_param(request, "offset", 0) or 0
    count = store.one(f"SELECT COUNT(*) AS n {sql_from}", params)["n"]
    rows = store.all(f"SELECT * {sql_from} ORDER BY {order_by} LIMIT ? OFFSET ?", [*params, limit, offset])

    def page_url(new_offset: int) -> str:
        query = [(k, v) for k, v in parse_qsl(request.url.query, keep_blank_values=True) if k not in ("offset", "limit")]
        query += [("limit", str(limit)), ("offset", str(new_offset))]
        return f"{base_url(request)}{request.url.path}?{urlencode(query)}"

    return {
        "count": count,
        "next": page_url(offset + limit) if offset + limit < count else None,
        "previous": page_url(max(0, offset - limit)) if offset > 0 else None,
        "results": [serialize(r) for r in rows],
    }


def project_or_400(request: Request, project_id: Any, field: str = "project"):
    if not project_id or not isinstance(project_id, str):
        raise bad_request(field, "This field is required.")
    row = backend(request).store.one("SELECT * FROM projects WHERE id=? OR name=?", (project_id, project_id))
    if row is None:
        raise bad_request(field, f"Project {project_id!r} not found.")
    return row


def by_ident(request: Request, table: str, ident: str, what: str):
    """Look up by uuid or by `{project}:{counter|latest}` (the CLI's counter addressing)."""
    store = backend(request).store
    if ":" in ident:
        project_id, counter = ident.rsplit(":", 1)
        counter = counter.lstrip("#=!")
        if counter == "latest":
            row = store.one(f"SELECT * FROM {table} WHERE project_id=? ORDER BY counter DESC LIMIT 1", (project_id,))
        elif counter.isdigit():
            row = store.one(f"SELECT * FROM {table} WHERE project_id=? AND counter=?", (project_id, int(counter)))
        else:
            raise not_found(what)
    else:
        row = store.one(f"SELECT * FROM {table} WHERE id=?", (ident,))
    if row is None:
        raise not_found(what)
    return row
