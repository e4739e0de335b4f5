"""The app factory: FastAPI app + routers + middleware, with the runner started in the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .backend import Backend
from .errors import ApiError
from .fast_reads import FastReads
from .middleware import CatchAll, FaultInjection, NormalizePath, TokenAuth, hide_injected_drops
from .routers import data, executions, pipelines, project_variables, projects, users
from .routers.common import API_PREFIX, error_response
from .settings import Settings

log = logging.getLogger("local_valohai")
# Routes are matched in order: the ones clients poll first (no two modules' paths overlap).
ROUTERS = (pipelines, executions, users, projects, project_variables, data)


def create_app(settings: Settings) -> FastAPI:
    backend = Backend(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        backend.start()
        try:
            yield
        finally:
            backend.shutdown()

    app = FastAPI(
        title="local-valohai",
        description="A Valohai-API-compatible server that runs steps on this machine.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=f"{API_PREFIX}/openapi.json",
        # The routes themselves, not `include_router`: FastAPI matches an included router's routes twice per
        # request through per-router wrappers, a third of a small GET's server time (bench/README.md).
        routes=[route for module in ROUTERS for route in module.router.routes],
    )
    app.state.backend = backend
    app.state.settings = settings

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    if settings.fault_rate > 0:
        log.warning(
            "fault injection on: rate %.2f, seed %d, after commit %s",
            settings.fault_rate,
            settings.fault_seed,
            settings.fault_after_commit,
        )
        hide_injected_drops()
    # add_middleware wraps outermost last: CatchAll → NormalizePath → TokenAuth → FaultInjection → routes.
    app.add_middleware(
        FaultInjection, rate=settings.fault_rate, seed=settings.fault_seed, after_commit=settings.fault_after_commit
    )
    app.add_middleware(TokenAuth, token=settings.token)
    app.add_middleware(NormalizePath)
    app.add_middleware(CatchAll)
    return app


def serving_app(settings: Settings) -> FastReads:
    """What the server runs: the polled GETs answered in front of the app (local_valohai/fast_reads.py)."""
    return FastReads(create_app(settings))


def route_table(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) for every route; used by the auth test."""
    return [
        (method, route.path)
        for route in app.routes
        if hasattr(route, "path")
        for method in sorted(getattr(route, "methods", None) or {"GET"})
    ]
