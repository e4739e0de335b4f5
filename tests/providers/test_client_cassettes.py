"""The API client against recorded local-backend traffic: JSON calls, auth errors, 404, pagination, retries.

Replayed from tests/cassettes/test_client_cassettes/ with the network blocked; re-record with
`make record-cassettes` (see docs/testing-cassettes.md).
"""

from __future__ import annotations

import time
import types

import pytest
import urllib3.util.retry

from providers.api import credentials
from providers.api.client import RetryPolicy, ValohaiClient
from providers.api.errors import ValohaiAuthError, ValohaiNotFound
from providers.resources.pipelines import PipelineProvider

pytestmark = [pytest.mark.vcr, pytest.mark.usefixtures("cassette_env")]

WRONG_TOKEN = "wrong-token-feedc0ffee0123456789"
MISSING = "00000000-0000-4000-8000-000000000000"


def test_me_and_create_project_post_json(vh_host, vh_token):
    api = ValohaiClient(vh_host, vh_token)
    assert api.me()["username"]
    project = api.create_project("vcr-client-project", "recorded by the VCR tests")
    assert project["name"] == "vcr-client-project"
    assert api.get_project(project["id"])["id"] == project["id"]


def test_wrong_token_is_an_auth_error_that_never_shows_the_token(vh_host):
    api = ValohaiClient(vh_host, WRONG_TOKEN)
    with pytest.raises(ValohaiAuthError) as caught:
        api.me()
    error = caught.value
    assert error.status == 401 and error.path == "/api/v0/users/me/"
    assert "Invalid token" in str(error) and "check the API token" in str(error)
    assert WRONG_TOKEN not in str(error) and WRONG_TOKEN not in repr(api)


def test_check_reports_a_wrong_token_on_host_without_it(vh_host):
    credentials.set_token(WRONG_TOKEN)
    result = PipelineProvider().check({}, {"host": vh_host, "payload": None})
    assert [f.property for f in result.failures] == ["host"]
    assert "401" in result.failures[0].reason and WRONG_TOKEN not in result.failures[0].reason


def test_missing_objects_are_not_found(vh_host, vh_token):
    api = ValohaiClient(vh_host, vh_token)
    with pytest.raises(ValohaiNotFound) as caught:
        api.get_pipeline(MISSING)
    assert caught.value.status == 404 and MISSING in caught.value.path
    with pytest.raises(ValohaiNotFound):
        api.get_execution(MISSING)


def test_pagination_follows_next_links(vh_host, vh_token):
    api = ValohaiClient(vh_host, vh_token)
    names = [f"vcr-page-{i}" for i in range(3)]
    for name in names:
        api.create_project(name)
    before = api.request_count
    listed = [p["name"] for p in api.paginate("projects/", page_size=2)]
    pages = api.request_count - before
    assert set(names) <= set(listed)
    assert len(listed) == len(set(listed))  # no page twice
    assert pages == -(-len(listed) // 2) and pages >= 2  # one request per page of 2, `next` followed


def test_retries_after_a_recorded_503_and_a_recorded_429(faulty_target, vcr, monkeypatch):
    """The faulty server answers 503, then 200; then 429 (Retry-After: 1), then 200.

    urllib3 retries below requests, and vcrpy patches the connection under urllib3, so every attempt is
    its own recorded interaction and replays in order. urllib3's own sleep is captured, not slept.
    """
    host, token, live = faulty_target
    asked: list[float] = []
    fake_time = types.SimpleNamespace(sleep=asked.append, time=time.time, monotonic=time.monotonic)
    monkeypatch.setattr(urllib3.util.retry, "time", fake_time)
    api = ValohaiClient(host, token, retry=RetryPolicy(total=3, backoff_factor=0.01))

    first = api.me()
    second = api.me()

    assert first == second and first["username"]
    assert api.request_count == 2  # two client calls; the retries happened below requests
    assert [r["status"]["code"] for r in vcr.responses] == [503, 200, 429, 200]
    assert 1.0 in asked  # the 429's Retry-After was honoured (and not really slept here)
    if not live:
        assert vcr.all_played
