"""Projects and their commits (ad-hoc packages imported by `vh exec run --adhoc`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.datastructures import FormData
from fastapi.responses import JSONResponse

from .. import db
from ..db import Row, new_id, now_iso
from ..errors import bad_request
from ..serializers import commit_dict, project_dict
from ..services.commits import import_package, resolve_commit
from ..validation import safe_name, text
from .common import API_PREFIX, Payload, backend, base_url, bool_param, found, list_param, ordering, paginate, read_body

router = APIRouter(prefix=API_PREFIX)


def _project(request: Request, project_id: str) -> Row:
    return found(db.projects.get(backend(request).store, project_id), "Project")


def _with_summaries(request: Request, rows: list[Row]) -> list[dict[str, Any]]:
    counts = db.executions.status_counts(backend(request).store, [row["id"] for row in rows])
    base = base_url(request)
    return [project_dict(row, base, counts.get(row["id"], {})) for row in rows]


@router.post("/projects/", status_code=201)
def create_project(request: Request, data: Payload) -> JSONResponse:
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise bad_request("name", "This field is required.")
    limits = backend(request).settings.limits
    name = name.strip()
    if "/" in name or len(name) > limits.name:
        raise bad_request("name", f"Project names must not contain '/' and be at most {limits.name} characters.")
    description = text(data.get("description"), "description", limits.description)
    yaml_path = safe_name(data.get("yaml_path") or "valohai.yaml", "yaml_path", "yaml_path")
    store = backend(request).store
    project_id = new_id()
    with store.write() as tx:
        if db.projects.name_taken(tx, name):
            raise bad_request("name", f"A project named {name!r} already exists.")
        db.projects.insert(tx, project_id, name, description, yaml_path, now_iso())
    return JSONResponse(_with_summaries(request, [_project(request, project_id)])[0], status_code=201)


@router.get("/projects/")
def list_projects(request: Request) -> dict:
    query = db.projects.list_query().equals("name", request.query_params.get("name"))
    order = ordering(request, ("name", "ctime", "mtime"), "name")
    return paginate(request, query, order, lambda rows: _with_summaries(request, rows))


@router.get("/projects/ownership_options/")
async def ownership_options() -> list:
    return ["local"]


@router.get("/projects/{project_id}/")
def get_project(project_id: str, request: Request) -> dict:
    return _with_summaries(request, [_project(request, project_id)])[0]


@router.get("/projects/{project_id}/commits/")
def project_commits(project_id: str, request: Request) -> list:
    _project(request, project_id)
    base = base_url(request)
    return [commit_dict(r, base) for r in db.projects.project_commits(backend(request).store, project_id)]


@router.post("/projects/{project_id}/fetch/")
def fetch_repository(project_id: str, request: Request) -> dict:
    _project(request, project_id)
    return {"commits": [], "errors": ["The local backend has no git repository to fetch; use ad-hoc commits."]}


async def read_form(request: Request) -> FormData | None:
    """The multipart form of a package upload (read before the handler), or None for another content type."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return None
    limit = backend(request).settings.limits.package_bytes
    request._body = await read_body(request, limit + 64 * 1024, "The package upload", "Limits.package_bytes")
    return await request.form()


@router.post("/projects/{project_id}/import-package/", status_code=201)
def import_package_route(
    project_id: str, request: Request, form: Annotated[FormData | None, Depends(read_form)]
) -> JSONResponse:
    """Unpacking and storing the tarball is blocking work: a plain `def`, run in the thread pool."""
    _project(request, project_id)
    if form is None:
        raise bad_request("data", "Send the package as multipart/form-data with a 'data' file field.")
    upload = form.get("data")
    if upload is None or isinstance(upload, str):
        raise bad_request("data", "This field is required (a .tgz file).")
    data = upload.file.read()
    if not data:
        raise bad_request("data", "The uploaded package is empty.")
    b = backend(request)
    description, yaml_path = (form.get(key) for key in ("description", "yaml_path"))
    identifier = import_package(
        b.store,
        b.settings,
        project_id,
        data,
        description if isinstance(description, str) else "",
        yaml_path if isinstance(yaml_path, str) else "",
    )
    row = resolve_commit(b.store, project_id, identifier)
    return JSONResponse(commit_dict(row, base_url(request)), status_code=201)


@router.get("/commits/")
def list_commits(request: Request) -> dict:
    q = request.query_params
    adhoc = bool_param(request, "adhoc")
    query = db.projects.commit_list_query().equals("project_id", q.get("project"))
    query.equals("adhoc", None if adhoc is None else int(adhoc)).equals("identifier", q.get("identifier"))
    base = base_url(request)
    return paginate(request, query, [("ctime", True)], lambda rows: [commit_dict(r, base) for r in rows])


@router.get("/commits/{identifier}/")
def get_commit(identifier: str, request: Request) -> dict:
    store = backend(request).store
    project = request.query_params.get("project")
    if project:
        row = db.projects.commit(store, project, identifier)
    else:
        row = db.projects.newest_commit_named(store, identifier)
    return commit_dict(
        found(row, "Commit"), base_url(request), include_config="config" in list_param(request, "include")
    )
