"""`projects/{id}/environment_variable/`: the routes `vh project environment-variables` uses.

See local_valohai/services/project_variables.py for the CLI's bodies (valohai-cli 0.37) and why no route
returns a secret's value. Neither route echoes the value it was sent.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from .. import db
from ..db import loads, now_iso
from ..errors import ApiError
from ..services.project_variables import public_view, with_variable, without_variable
from .common import API_PREFIX, Payload, backend, found

router = APIRouter(prefix=API_PREFIX)


@router.post("/projects/{project_id}/environment_variable/", status_code=201)
def create_variable(project_id: str, request: Request, data: Payload) -> JSONResponse:
    store = backend(request).store
    with store.write() as tx:
        project = found(db.projects.get(tx, project_id), "Project")
        name, variables = with_variable(loads(project["environment_variables"]) or {}, data)
        db.projects.set_environment_variables(tx, project_id, variables, now_iso())
    return JSONResponse({"name": name, **public_view(variables)[name]}, status_code=201)


@router.delete("/projects/{project_id}/environment_variable/")
def delete_variable(project_id: str, request: Request, data: Payload) -> Response:
    store = backend(request).store
    with store.write() as tx:
        project = found(db.projects.get(tx, project_id), "Project")
        variables = without_variable(loads(project["environment_variables"]) or {}, data.get("name"))
        if variables is None:
            raise ApiError(404, {"detail": "Environment variable not found."})
        db.projects.set_environment_variables(tx, project_id, variables, now_iso())
    return Response(status_code=204)
