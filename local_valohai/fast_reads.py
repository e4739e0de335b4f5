"""The GETs clients poll, answered before the FastAPI app: everything else falls through to it.

`GET pipelines/{id}/` and `GET executions/{id}/` are what a waiting client (the providers, `vh`) sends
over and over. Through the full stack each also pays for Starlette's middleware chain, FastAPI's routing,
request object and parameter solving (bench/README.md, "Local backend load"). This layer answers them with
the same pieces the app uses, not copies: `normalized_path` and `TokenAuth.authorized` from
local_valohai/middleware.py, `CatchAll` around the read, `read_pipeline` / `read_execution` (lookup, read
cache, serializer, `small_read`) from the routers and `error_response` for their errors. With fault
injection on, every request goes through the app, so the faults' seeded sequence stays the same.
"""

from __future__ import annotations

import re

from fastapi import FastAPI
from starlette.requests import Request

from .backend import Backend
from .errors import ApiError
from .middleware import CatchAll, TokenAuth, normalized_path
from .routers.common import API_PREFIX, base_url, error_response, excluded
from .routers.executions import read_execution
from .routers.pipelines import read_pipeline

POLLED = re.compile(rf"^{API_PREFIX}/(pipelines|executions)/([^/]+)/$")


class FastReads:
    """Pure ASGI, outermost: answers the polled GETs itself and hands every other request to `app`."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.backend: Backend = app.state.backend
        settings = app.state.settings
        self.auth = TokenAuth(None, settings.token)
        self.enabled = settings.fault_rate <= 0
        self.read = CatchAll(self._read)

    async def __call__(self, scope, receive, send) -> None:
        if self.enabled and scope["type"] == "http" and scope["method"] == "GET":
            path = normalized_path(scope["path"])
            if POLLED.match(path):
                if path != scope["path"]:
                    scope = dict(scope, path=path, raw_path=path.encode())
                await self.read(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _read(self, scope, receive, send) -> None:
        if not await self.auth.authorized(scope, send):
            return
        match = POLLED.match(scope["path"])
        assert match is not None
        kind, ident = match.groups()
        request = Request(scope)
        try:
            if kind == "pipelines":
                response = await read_pipeline(self.backend, ident, base_url(request))
            else:
                exclude = excluded(request.query_params.get("exclude"))
                response = await read_execution(self.backend, ident, base_url(request), exclude)
        except ApiError as exc:
            response = error_response(exc)
        await response(scope, receive, send)
