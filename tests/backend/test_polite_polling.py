"""A 100-pipeline wait makes at most 2 requests per poll round (counted by the client and in the
backend's access log), the rounds list only as far back as the oldest pipeline still waited for, and the
poll interval's defaults depend on the host."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import Api

from local_valohai.testing import LocalValohai
from providers.api.client import ValohaiClient
from providers.api.statuses import is_terminal
from providers.api.waiting import wait_for
from providers.resources.polling import PAGE_MARGIN, PipelineSweepReader, backoff_for, default_interval

CELLS = 100


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    with LocalValohai(tmp_path_factory.mktemp("polling"), workers=2, access_log=True) as server:
        yield server


def pipeline_requests(server: LocalValohai) -> int:
    return len(re.findall(r'"GET /api/v0/pipelines/', server.log_path.read_text(errors="replace")))


def test_hundred_pipelines_at_most_two_requests_per_round(logged):
    api = Api(logged)
    project = api.create_project("polling")
    commit = api.import_package(project["id"])["identifier"]
    node = {"name": "only", "type": "execution", "template": {"step": "noop", "commit": commit, "command": "sleep 0.3"}}
    ids = [
        api.ok(
            api.post("pipelines/", json={"project": project["id"], "title": f"c{i}", "nodes": [node], "edges": []}), 201
        )["id"]
        for i in range(CELLS)
    ]
    client = ValohaiClient(logged.url, logged.token)
    sent: list[str] = []
    client.session.hooks["response"].append(lambda response, *a, **k: sent.append(response.request.url))
    reader = PipelineSweepReader(client)
    done: dict[str, dict] = {}
    per_round: list[int] = []

    def poll() -> dict[str, str]:
        before = len(sent)
        fresh = reader.read(set(ids) - done.keys())
        per_round.append(len(sent) - before)
        done.update({i: p for i, p in fresh.items() if is_terminal(p["status"])})
        return {i: (done.get(i) or fresh[i])["status"] for i in ids}

    before_log = pipeline_requests(logged)
    states = wait_for(poll, timeout=300, backoff=backoff_for(logged.url, None))
    assert all(s == "complete" for s in states.values()), states
    print(f"\n[polling] {CELLS} pipelines: {len(per_round)} rounds, requests per round {per_round}")
    assert len(per_round) >= 2 and max(per_round) <= 2 and sum(per_round[1:]) == len(per_round) - 1
    time.sleep(0.5)  # the access log is written as requests finish
    assert pipeline_requests(logged) - before_log == sum(per_round)


def test_later_rounds_list_only_back_to_the_oldest_pipeline_still_waited_for(logged):
    """The last rounds of a fresh sweep wait for the newest pipelines: their page reaches from the project's newest
    pipeline down to the oldest one still waited for (plus the margin), not the whole sweep; a pipeline that the
    shorter page misses is still found."""
    api = Api(logged)
    project = api.create_project("polling-tail")
    commit = api.import_package(project["id"])["identifier"]

    def pipeline(i: int, command: str) -> str:
        node = {"name": "only", "type": "execution", "template": {"step": "noop", "commit": commit, "command": command}}
        body = {"project": project["id"], "title": f"t{i}", "nodes": [node], "edges": []}
        return api.ok(api.post("pipelines/", json=body), 201)["id"]

    quick = [pipeline(i, "true") for i in range(40)]
    slow = [pipeline(40 + i, "sleep 2") for i in range(3)]
    client = ValohaiClient(logged.url, logged.token)
    limits: list[int] = []
    client.session.hooks["response"].append(
        lambda r, *a, **k: limits.extend(int(v) for v in parse_qs(urlsplit(r.request.url).query).get("limit", []))
    )
    reader = PipelineSweepReader(client)
    assert set(reader.read(quick + slow)) == set(quick + slow)
    assert limits == [len(quick + slow) + PAGE_MARGIN]  # the first round: the whole sweep
    wait_for(
        lambda: {i: p["status"] for i, p in reader.read(quick).items()},
        timeout=60,
        backoff=backoff_for(logged.url, None),
    )
    limits.clear()
    assert set(reader.read(slow)) == set(slow)
    assert limits == [len(slow) + PAGE_MARGIN]
    limits.clear()
    assert set(reader.read([quick[0], slow[-1]])) == {quick[0], slow[-1]}  # the oldest one: the page spans all
    assert limits == [len(quick + slow) + PAGE_MARGIN]


def test_default_interval_is_fast_only_for_loopback():
    assert default_interval("http://127.0.0.1:8040") < 1 and default_interval("http://localhost:8000") < 1
    assert default_interval("https://app.valohai.com") >= 5 and default_interval("http://10.0.0.5:80") >= 5
    assert backoff_for("https://app.valohai.com", None).next_delay() >= 5
    assert backoff_for("https://app.valohai.com", 20).next_delay() == 20
