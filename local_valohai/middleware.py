"""Pure-ASGI middleware: path normalisation, token auth and fault injection.

Pure ASGI (not BaseHTTPMiddleware) keeps the per-request overhead small.
"""

from __future__ import annotations

import hmac
import json
import logging
import random
import re
import threading
import uuid
from typing import Any

log = logging.getLogger("local_valohai")

SIGNED_DOWNLOAD = re.compile(r"^/api/v0/data/[^/]+/signed-download/$")
MULTI_SLASH = re.compile(r"/{2,}")


async def send_json(send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
            + (headers or []),
        }
    )
    await send({"type": "http.response.body", "body": payload})


def normalized_path(path: str) -> str:
    """`//` collapsed (the CLI's pipeline stop URL) and the trailing slash valohai-utils omits added."""
    path = MULTI_SLASH.sub("/", path)
    if not path.endswith("/") and "." not in path.rsplit("/", 1)[-1]:  # not for openapi.json
        path += "/"
    return path


class NormalizePath:
    """`normalized_path` on every HTTP request's path."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            path = normalized_path(scope["path"])
            if path != scope["path"]:
                scope = dict(scope, path=path, raw_path=path.encode())
        await self.app(scope, receive, send)


class TokenAuth:
    """`Authorization: Token <t>` on every path except the signed download (which carries its own HMAC)."""

    def __init__(self, app, token: str) -> None:
        self.app = app
        self.expected = f"Token {token}".encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or SIGNED_DOWNLOAD.match(scope["path"]) or await self.authorized(scope, send):
            await self.app(scope, receive, send)

    async def authorized(self, scope, send) -> bool:
        """True when the request carries the token; else answers the 401 itself and returns False."""
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if header is not None and hmac.compare_digest(header, self.expected):
            return True
        detail = "Invalid token." if header is not None else "Authentication credentials were not provided."
        await send_json(send, 401, {"detail": detail}, [(b"www-authenticate", b"Token")])
        return False


class CatchAll:
    """Turn an unexpected error into a 500 naming a request id, log its traceback, keep the connection.

    Starlette's own last-resort handler answers too but then re-raises, and the server closes the
    keep-alive connection; answering here ends the request normally. Injected drops pass through.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except DroppedConnection:
            raise
        except Exception:
            request_id = uuid.uuid4().hex[:12]
            log.exception("unhandled error (request id %s) on %s %s", request_id, scope["method"], scope["path"])
            if started:
                raise
            body = {"detail": f"Internal server error (request id {request_id}); the server log has the details."}
            await send_json(send, 500, body, [(b"x-request-id", request_id.encode())])


class DroppedConnection(Exception):
    """Raised after a partial response so the server closes the socket: the client sees a broken read."""


class FaultInjection:
    """Seeded random failures for client robustness tests; with `after_commit`, the request runs first."""

    KINDS = ("500", "502", "503", "429", "drop")

    def __init__(self, app, rate: float, seed: int, after_commit: bool) -> None:
        self.app = app
        self.rate = rate
        self.after_commit = after_commit
        self.random = random.Random(seed)
        self.lock = threading.Lock()

    def _draw(self) -> str | None:
        with self.lock:
            if self.random.random() >= self.rate:
                return None
            return self.random.choice(self.KINDS)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or self.rate <= 0 or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        kind = self._draw()
        if kind is None:
            await self.app(scope, receive, send)
            return
        if self.after_commit:

            async def discard(message) -> None:
                return None

            await self.app(scope, receive, discard)
        if kind == "drop":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
                }
            )
            await send({"type": "http.response.body", "body": b'{"injected', "more_body": True})
            raise DroppedConnection("injected fault: dropped connection")
        status = int(kind)
        headers = [(b"retry-after", b"1")] if status == 429 else []
        await send_json(send, status, {"detail": f"Injected fault ({status}) from LOCAL_VALOHAI_FAULT_RATE."}, headers)


class _HideInjectedDrops:
    """uvicorn logs a traceback for every dropped connection; injected ones are expected, so hide them."""

    def filter(self, record) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if isinstance(exc, DroppedConnection):
                return False
            exc = exc.__cause__ or exc.__context__
        return True


def hide_injected_drops() -> None:
    logging.getLogger("uvicorn.error").addFilter(_HideInjectedDrops())
