"""Every route needs the token except the signed download; defaults keep the server on loopback."""

from __future__ import annotations

import re
import tempfile

import requests

from local_valohai.app import create_app, route_table
from local_valohai.cli import _parser
from local_valohai.settings import Settings

DUMMY = "00000000-0000-4000-8000-000000000000"


def test_every_route_but_signed_download_requires_the_token(server):
    app = create_app(Settings.load(tempfile.mkdtemp(), token="irrelevant"))
    table = [(m, p) for m, p in route_table(app) if m != "HEAD"]
    assert len(table) > 30
    checked = 0
    for method, path in table:
        url = server.url + re.sub(r"\{[^}]+\}", DUMMY, path)
        for headers in ({}, {"Authorization": "Token wrong"}, {"Authorization": f"Bearer {server.token}"}):
            response = requests.request(method, url, headers=headers, timeout=5)
            if path.endswith("/signed-download/"):
                assert response.status_code == 403, (method, path)  # HMAC instead of token
            else:
                assert response.status_code == 401, (method, path, response.status_code)
                assert "detail" in response.json()
                assert server.token not in response.text
            checked += 1
    assert checked == 3 * len(table)


def test_token_never_appears_in_the_server_log(api, server):
    api.get("users/me/")
    api.get("executions/", params={"limit": 1})
    log = server.log_tail(1000)
    lines = [line for line in log.splitlines() if not line.startswith("token: ")]
    assert all(server.token not in line for line in lines)


def test_default_bind_is_loopback(server):
    assert _parser().parse_args(["serve"]).host == "127.0.0.1"
    assert "local-valohai listening on http://127.0.0.1:" in server.log_tail(1000)
