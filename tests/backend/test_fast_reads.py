"""local_valohai/fast_reads.py answers the polled GETs byte for byte as the FastAPI routes do."""

from __future__ import annotations

import asyncio
from typing import Any

from local_valohai.app import create_app
from local_valohai.fast_reads import FastReads
from local_valohai.routers.common import INLINE_ROWS
from local_valohai.settings import Settings

Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


def _scope(path: str, query: bytes, token: str | None) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1:8000"), (b"accept", b"*/*")]
    if token is not None:
        headers.append((b"authorization", f"Token {token}".encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }


def _call(asgi: Any, path: str, query: bytes = b"", token: str | None = None) -> Answer:
    """One request to an ASGI app in process, as uvicorn would make it; the status, headers and body."""
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    asyncio.run(asgi(_scope(path, query, token), receive, send))
    start, body = messages[0], b"".join(m.get("body", b"") for m in messages[1:])
    return start["status"], start["headers"], body


class Counting:
    """The app behind the fast path, counting the requests that fall through to it."""

    def __init__(self, app: Any) -> None:
        self.app, self.calls = app, 0

    async def __call__(self, scope, receive, send) -> None:
        self.calls += 1
        await self.app(scope, receive, send)


def test_fast_path_answers_like_the_routes_for_found_missing_deleted_and_bad_tokens(api, project, server):
    nodes = [
        {"name": name, "type": "execution", "template": {"commit": project["commit"], "step": "echo"}}
        for name in ("first", "second")
    ]
    payload = {"project": project["id"], "title": "fast-reads", "nodes": nodes, "edges": []}
    kept = api.wait(api.ok(api.post("pipelines/", json=payload), 201)["url"])
    deleted = api.wait(api.ok(api.post("pipelines/", json=payload), 201)["url"])
    api.ok(api.delete(f"pipelines/{deleted['id']}/"), 204)
    execution = kept["nodes"][0]["execution"]
    lone = api.run(project["id"], project["commit"], "echo")
    api.wait(f"executions/{lone['id']}/")
    api.ok(api.delete(f"executions/{lone['id']}/"), 204)

    app = create_app(Settings.load(server.data_dir, token=server.token, workers=1))
    behind = Counting(app)
    fast = FastReads(app)
    fast.app = behind
    missing = "00000000-0000-4000-8000-000000000000"
    cases: list[tuple[str, bytes, str | None, int]] = [
        (f"/api/v0/pipelines/{kept['id']}/", b"", server.token, 200),
        (f"/api/v0/pipelines/{project['id']}:{kept['counter']}/", b"", server.token, 200),
        (f"/api/v0/pipelines/{deleted['id']}/", b"", server.token, 200),
        (f"/api/v0/pipelines/{missing}/", b"", server.token, 404),
        (f"/api/v0/pipelines/{project['id']}:x/", b"", server.token, 404),
        (f"/api/v0/pipelines/{kept['id']}/", b"", "wrong", 401),
        (f"/api/v0/pipelines/{kept['id']}/", b"", None, 401),
        (f"/api/v0/executions/{execution['id']}/", b"", server.token, 200),
        (f"/api/v0/executions/{execution['id']}/", b"exclude=outputs,%20metadata", server.token, 200),
        (f"/api/v0/executions/{lone['id']}/", b"", server.token, 200),
        (f"/api/v0/executions/{missing}/", b"", server.token, 404),
        (f"/api/v0/executions/{execution['id']}/", b"", "wrong", 401),
        (f"/api/v0//executions/{execution['id']}", b"", server.token, 200),  # normalised like the app does
    ]
    for path, query, token, status in cases:
        routed = _call(app, path, query, token)
        answered = _call(fast, path, query, token)
        assert answered == routed, (path, query, token)
        assert answered[0] == status, (path, answered)
    assert behind.calls == 0  # every one of them was answered in front of the app
    deleted_body = _call(fast, f"/api/v0/pipelines/{deleted['id']}/", b"", server.token)[2]
    assert b'"deleted":true' in deleted_body.replace(b" ", b"")

    assert _call(fast, "/api/v0/projects/", b"", server.token)[0] == 200
    assert _call(fast, f"/api/v0/pipelines/{kept['id']}/stop/", b"", server.token)[0] == 405
    assert behind.calls == 2  # other paths and methods fall through to the app


def test_fast_path_answers_a_pipeline_too_big_for_the_loop_like_the_route(api, project, server):
    """More than INLINE_ROWS nodes: both build the body in the thread pool (`small_read`)."""
    nodes = [
        {"name": f"n{i}", "type": "execution", "template": {"commit": project["commit"], "step": "noop"}}
        for i in range(INLINE_ROWS + 1)
    ]
    payload = {"project": project["id"], "title": "fast-reads-big", "nodes": nodes, "edges": []}
    big = api.wait(api.ok(api.post("pipelines/", json=payload), 201)["url"], timeout=120)
    app = create_app(Settings.load(server.data_dir, token=server.token, workers=1))
    path = f"/api/v0/pipelines/{big['id']}/"
    routed, answered = _call(app, path, token=server.token), _call(FastReads(app), path, token=server.token)
    assert answered == routed and answered[0] == 200
    assert answered[2].count(b'"status":"complete"') > INLINE_ROWS
