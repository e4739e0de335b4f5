"""Projects and their commits (ad-hoc packages imported by `vh exec run --adhoc`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..errors import bad_request, not_found
from ..serializers import commit_dict, project_dict
from ..services.commits import import_package, resolve_commit
from ..store import dumps, new_id, now_iso
from .common import backend, base_url, bool_param, ordering, paginate, read_payload

router = APIRouter()


def _project(request: Request, project_id: str):
    row = backend(request).store.one("SELECT * FROM projects WHERE id=?", (project_id,))
    if row is None:
        raise not_found("Project")
    return row


@router.post("/projects/", status_code=201)
async def create_project(request: Request) -> JSONResponse:
    data = await read_payload(request)
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise bad_request("name", "This field is required.")
    name = name.strip()
    if "/" in name or len(name) > 200:
        raise bad_request("name", "Project names must not contain '/' and be at most 200 characters.")
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise bad_request("description", "Expected a string")
    store = backend(request).store
    project_id = new_id()
    now = now_iso()
    with store.write() as tx:
        if tx.execute("SELECT 1 FROM projects WHERE name=?", (name,)).fetchone():
            raise bad_request("name", f"A project named {name!r} already exists.")
        tx.execute(
            "INSERT INTO projects (id, name, description, ctime, mtime, yaml_path, environment_variables)"
            " VALUES (?,?,?,?,?,?,?)",
            (project_id, name, description, now, now, data.get("yaml_path") or "valohai.yaml", dumps({})),
        )
    row = _project(request, project_id)
    return JSONResponse(project_dict(store, row, base_url(request), summary=True), status_code=201)


@router.get("/projects/")
async def list_projects(request: Request) -> dict:
    store = backend(request).store
    where, params = ["1=1"], []
    if request.query_params.get("name"):
        where.append("name=?")
        params.append(request.query_params["name"])
    order = ordering(request, {"name": "name", "ctime": "ctime", "mtime": "mtime"}, "name")
    base = base_url(request)
    return paginate(request, f"FROM projects WHERE {' AND '.join(where)}", params, order,
                    lambda r: project_dict(store, r, base, summary=True))


@router.get("/projects/ownership_options/")
async def ownership_options() -> list:
    return ["local"]


@router.get("/projects/{project_id}/")
async def get_project(project_id: str, request: Request) -> dict:
    return project_dict(backend(request).store, _project(request, project_id), base_url(request), summary=True)


@router.get("/projects/{project_id}/commits/")
async def project_commits(project_id: str, request: Request) -> list:
    _project(request, project_id)
    base = base_url(request)
    rows = backend(request).store.all("SELECT * FROM commits WHERE project_id=? ORDER BY ctime DESC", (project_id,))
    return [commit_dict(r, base) for r in rows]


@router.post("/projects/{project_id}/fetch/")
def fetch_repository(project_id: str, request: Request) -> dict:
    _project(request, project_id)
    return {"commits": [], "errors": ["The local backend has no git repository to fetch; use ad-hoc commits."]}


@router.post("/projects/{project_id}/import-package/", status_code=201)
async def import_package_route(project_id: str, request: Request) -> JSONResponse:
    _project(request, project_id)
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise bad_request("data", "Send the package as multipart/form-data with a 'data' file field.")
    form = await request.form()
    upload = form.get("data")
    if upload is None or isinstance(upload, str):
        raise bad_request("data", "This field is required (a .tgz file).")
    data = await upload.read()
    if not data:
        raise bad_request("data", "The uploaded package is empty.")
    b = backend(request)
    identifier = import_package(b.store, b.settings, project_id, data, str(form.get("description") or ""),
                                str(form.get("yaml_path") or ""))
    row = resolve_commit(b.store, project_id, identifier)
    return JSONResponse(commit_dict(row, base_url(request)), status_code=201)


@router.get("/commits/")
async def list_commits(request: Request) -> dict:
    where, params = ["1=1"], []
    if request.query_params.get("project"):
        where.append("project_id=?")
        params.append(request.query_params["project"])
    adhoc = bool_param(request, "adhoc")
    if adhoc is not None:
        where.append("adhoc=?")
        params.append(int(adhoc))
    if request.query_params.get("identifier"):
        where.append("identifier=?")
        params.append(request.query_params["identifier"])
    base = base_url(request)
    return paginate(request, f"FROM commits WHERE {' AND '.join(where)}", params, "ctime DESC",
                    lambda r: commit_dict(r, base))


@router.get("/commits/{identifier}/")
async def get_commit(identifier: str, request: Request) -> dict:
    store = backend(request).store
    project = request.query_params.get("project")
    if project:
        row = store.one("SELECT * FROM commits WHERE project_id=? AND identifier=?", (project, identifier))
    else:
        row = store.one("SELECT * FROM commits WHERE identifier=? ORDER BY ctime DESC", (identifier,))
    if row is None:
        raise not_found("Commit")
    include = (request.query_params.get("include") or "").split(",")
    return commit_dict(row, base_url(request), include_config="config" in include)
