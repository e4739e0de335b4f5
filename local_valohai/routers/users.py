"""`users/me/`, `environments/`, `server/`: what clients ask before doing anything else."""

from __future__ import annotations

from fastapi import APIRouter

from .. import __version__
from ..environments import ENVIRONMENTS
from ..serializers import LOCAL_USER
from .common import API_PREFIX

router = APIRouter(prefix=API_PREFIX)


@router.get("/users/me/")
async def users_me() -> dict:
    return LOCAL_USER


@router.get("/environments/")
async def environments() -> dict:
    return {"count": len(ENVIRONMENTS), "next": None, "previous": None, "results": list(ENVIRONMENTS)}


@router.get("/server/")
async def server() -> dict:
    return {"flavor": "local-valohai", "version": __version__}
