"""The app factory: FastAPI app + routers + middleware, with the runner started in the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .backend import Backend
from .errors import ApiError
from .middleware import CatchAll, FaultInjection, NormalizePath, TokenAuth, hide_injected_drops
from .routers import data, executions, pipelines, project_variables, projects, users
from .settings import Settings

log = logging.getLogger("local_valohai")
API_PREFIX = "/api/v0"


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
    )
    app.state.backend = backend
    app.state.settings = settings
    for module in (users, projects, project_variables, executions, pipelines, data):
        app.include_router(module.router, prefix=API_PREFIX)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body, status_code=exc.status)

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


def route_table(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) for every route, walking included routers; used by the auth test."""
    table: list[tuple[str, str]] = []

    def walk(routes, prefix: str) -> None:
        for route in routes:
            original = getattr(route, "original_router", None)
            if original is not None:
                walk(original.routes, prefix + route.include_context.prefix)
            elif hasattr(route, "path"):
                for method in sorted(getattr(route, "methods", None) or {"GET"}):
                    table.append((method, prefix + route.path))

    walk(app.routes, "")
    return table
