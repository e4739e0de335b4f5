"""Client hygiene over real sockets: the token goes only to the configured host, credentials in a host URL
are refused and never shown, and a project name is resolved as valohai-cli resolves it, with an error
instead of a silent pick when it is ambiguous.

Two kinds of server: the real local backend (`LocalValohai`) for what it can show, and small stdlib HTTP
servers for what no honest backend does on request: a list whose `next` link points at another host, and
projects of the same name under two owners (the local backend has one user). They answer canned
`{count, next, previous, results}` pages in Valohai's shape and record every request they get.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from local_valohai.testing import LocalValohai
from providers.api.client import RetryPolicy, ValohaiClient, redact_url
from providers.api.errors import ValohaiError, ValohaiNotFound

TOKEN = "hygiene-token-0123456789abcdef"


class Recorder(ThreadingHTTPServer):
    """Answers `pages[path?query]` as JSON (404 otherwise) and records (path, Authorization) per request."""

    def __init__(self, pages: dict[str, Any]) -> None:
        self.pages = pages
        self.seen: list[tuple[str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.seen.append((self.path, self.headers.get("Authorization")))
                body = outer.pages.get(self.path)
                data = json.dumps(body if body is not None else {"detail": "Not found."}).encode()
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.fixture
def servers() -> Iterator[list[Recorder]]:
    started: list[Recorder] = []
    yield started
    for server in started:
        server.shutdown()
        server.server_close()


def serve(servers: list[Recorder], pages: dict[str, Any] | None = None) -> Recorder:
    server = Recorder(pages or {})
    servers.append(server)
    return server


def page(results: list[dict], next_url: str | None = None) -> dict:
    return {"count": len(results), "next": next_url, "previous": None, "results": results}


def project(name: str, owner: str, project_id: str) -> dict:
    return {"id": project_id, "name": name, "owner": {"id": hash(owner) % 1000, "username": owner}}


FIRST = "/api/v0/projects/?limit=500"


# --- the token goes only to the configured host ----------------------------------------------------------


def test_a_next_link_to_another_host_is_refused_and_that_host_gets_nothing(servers):
    elsewhere = serve(servers, {"/api/v0/projects/?offset=1": page([project("p2", "eve", "2")])})
    api_server = serve(
        servers, {FIRST: page([project("p1", "alice", "1")], f"{elsewhere.url}/api/v0/projects/?offset=1")}
    )
    api = ValohaiClient(api_server.url, TOKEN, retry=RetryPolicy(total=0))
    with pytest.raises(ValohaiError) as caught:
        api.list_projects()
    message = str(caught.value)
    assert f"refusing to follow {elsewhere.url}/api/v0/projects/?offset=1" in message
    assert "the token is sent only to valohai:host" in message and TOKEN not in message
    assert elsewhere.seen == [], "a request went to the other host"
    assert api_server.seen == [(FIRST, f"Token {TOKEN}")]


@pytest.mark.parametrize(
    "next_link",
    [
        "{url}/api/v0/projects/?offset=1",  # absolute, same host
        "{upper}/api/v0/projects/?offset=1",  # same host, other spelling of it
        "/api/v0/projects/?offset=1",  # relative to the host
    ],
)
def test_next_links_on_the_same_host_are_followed(servers, next_link):
    server = serve(servers)
    upper = server.url.replace("http://", "HTTP://")
    server.pages.update(
        {
            FIRST: page([project("p1", "alice", "1")], next_link.format(url=server.url, upper=upper)),
            "/api/v0/projects/?offset=1": page([project("p2", "alice", "2")]),
        }
    )
    api = ValohaiClient(server.url, TOKEN, retry=RetryPolicy(total=0))
    assert [p["name"] for p in api.list_projects()] == ["p1", "p2"]
    assert [path for path, _auth in server.seen] == [FIRST, "/api/v0/projects/?offset=1"]


@pytest.mark.parametrize("scheme_or_port", ["https://127.0.0.1:{port}", "http://127.0.0.1:{other}", "//evil.test"])
def test_another_scheme_port_or_host_is_another_host(servers, scheme_or_port):
    server = serve(servers)
    port = urlsplit(server.url).port
    target = scheme_or_port.format(port=port, other=port + 1) + "/api/v0/projects/"
    server.pages[FIRST] = page([], target)
    with pytest.raises(ValohaiError, match="refusing to follow"):
        ValohaiClient(server.url, TOKEN, retry=RetryPolicy(total=0)).list_projects()
    assert len(server.seen) == 1


# --- credentials in a host URL --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host, shown",
    [
        ("http://user:hunter2@127.0.0.1:8040", "http://***@127.0.0.1:8040"),
        ("https://hunter2@app.valohai.com", "https://***@app.valohai.com"),
        ("https://user:hun@ter2/x@app.valohai.com", "https://***@app.valohai.com"),
        ("ftp://user:hunter2@files.example", "ftp://***@files.example"),
    ],
)
def test_a_host_with_credentials_is_refused_and_they_are_not_shown(host, shown):
    with pytest.raises(ValueError) as caught:
        ValohaiClient(host, TOKEN)
    assert shown in str(caught.value) and "must not hold credentials" in str(caught.value)
    assert "hunter2" not in str(caught.value) and "ter2" not in str(caught.value)
    assert redact_url(host) == shown


# --- project names, as valohai-cli resolves them ------------------------------------------------------------


@pytest.fixture
def two_owners(servers) -> ValohaiClient:
    server = serve(
        servers,
        {
            FIRST: page(
                [
                    project("shared", "alice", "id-a"),
                    project("shared", "bob", "id-b"),
                    project("Solo", "alice", "id-s"),
                    project("case", "alice", "id-c1"),
                    project("Case", "alice", "id-c2"),
                ]
            )
        },
    )
    return ValohaiClient(server.url, TOKEN, retry=RetryPolicy(total=0))


def test_a_name_under_two_owners_is_an_error_listing_the_candidates(two_owners):
    with pytest.raises(ValohaiError) as caught:
        two_owners.resolve_project("shared")
    assert "valohai:project 'shared' is ambiguous: 2 projects visible with this token match it " in str(caught.value)
    assert "(alice/shared, bob/shared)" in str(caught.value)


@pytest.mark.parametrize(
    "spec, found",
    [
        ("bob/shared", "id-b"),
        ("ALICE/shared", "id-a"),  # case-insensitive, as `vh project link` matches
        ("id-a", "id-a"),
        ("solo", "id-s"),
        ("Case", "id-c2"),  # two case-insensitive matches: the exact-case one wins
        ("case", "id-c1"),
    ],
)
def test_owner_name_id_and_unique_names_resolve(two_owners, spec, found):
    assert two_owners.resolve_project(spec)["id"] == found


def test_a_case_insensitive_tie_without_an_exact_match_is_ambiguous(two_owners):
    with pytest.raises(ValohaiError, match=r"ambiguous.*\(alice/Case, alice/case\)"):
        two_owners.resolve_project("CASE")


def test_an_unknown_project_lists_the_visible_ones(two_owners):
    with pytest.raises(ValohaiNotFound) as caught:
        two_owners.resolve_project("nope")
    assert "(visible: alice/Case, alice/Solo, alice/case, alice/shared, bob/shared)" in str(caught.value)


def test_the_local_backend_resolves_and_lists_as_well(tmp_path):
    with LocalValohai(tmp_path / "backend") as server:
        api = ValohaiClient(server.url, server.token)
        made = api.create_project("hygiene-one")
        assert api.resolve_project("HYGIENE-ONE")["id"] == made["id"]
        assert api.resolve_project(made["id"])["id"] == made["id"]
        with pytest.raises(ValohaiNotFound) as caught:
            api.resolve_project("hygiene-two")
        assert "hygiene-one" in str(caught.value) and "visible: " in str(caught.value)
        assert server.token not in str(caught.value)
