"""Refresh reads answer from one listing per few seconds (providers/resources/snapshot.py): requests stay
flat in the number of resources, a deleted object still reads as deleted, and no listing outlives
`SNAPSHOT_SECONDS` or a change this process made."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from providers.api.errors import ValohaiNotFound
from providers.resources import snapshot

PROJECT = "project-1"


class FakeApi:
    """Pipelines and executions by counter, served the way the client pages them; counts requests."""

    host = "http://fake.test"

    def __init__(self, pipelines: int = 0, executions: int = 0) -> None:
        self.pipelines = {
            f"p{c}": {"id": f"p{c}", "counter": c, "status": "complete", "nodes": []} for c in range(1, pipelines + 1)
        }
        self.executions = {
            f"e{c}": {"id": f"e{c}", "counter": c, "status": "complete"} for c in range(1, executions + 1)
        }
        self.requests: list[str] = []
        self.lock = threading.Lock()

    def _count(self, what: str) -> None:
        with self.lock:
            self.requests.append(what)

    def paginate(self, path: str, *, page_size: int = 500, **params: Any) -> Iterator[dict]:
        assert params["project"] == PROJECT
        if path == "pipelines/":
            assert params["ordering"] == "-counter"
            rows = sorted(self.pipelines.values(), key=lambda p: -p["counter"])
        else:
            wanted = set(params["counter"])
            rows = [e for e in self.executions.values() if e["counter"] in wanted]
        for start in range(0, max(len(rows), 1), page_size):
            self._count(f"list {path}")
            yield from [dict(r) for r in rows[start : start + page_size]]

    def get_pipeline(self, pipeline_id: str) -> dict:
        self._count("get pipeline")
        if pipeline_id not in self.pipelines:
            raise ValohaiNotFound("gone", status=404)
        return dict(self.pipelines[pipeline_id])

    def get_execution(self, execution_id: str, *, exclude: str = "") -> dict:
        self._count("get execution")
        if execution_id not in self.executions:
            raise ValohaiNotFound("gone", status=404)
        return dict(self.executions[execution_id])


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(snapshot, "clock", lambda: now[0])
    snapshot.forget()
    yield now
    snapshot.forget()


def test_a_thousand_pipeline_reads_cost_one_list_request():
    api = FakeApi(pipelines=1000)
    for c in range(1, 1001):
        assert snapshot.read_pipeline(api, PROJECT, f"p{c}", c)["counter"] == c
    assert api.requests == ["list pipelines/"]


def test_reads_from_four_threads_share_one_listing():
    api = FakeApi(pipelines=400)
    errors: list[BaseException] = []

    def reader(part: int) -> None:
        try:
            for c in range(part + 1, 401, 4):
                assert snapshot.read_pipeline(api, PROJECT, f"p{c}", c)["id"] == f"p{c}"
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and api.requests == ["list pipelines/"]


def test_a_deleted_pipeline_is_read_by_id_and_reads_as_gone():
    api = FakeApi(pipelines=10)
    del api.pipelines["p4"]  # deleted outside the tool: lists no longer show it
    assert snapshot.read_pipeline(api, PROJECT, "p5", 5)["id"] == "p5"
    with pytest.raises(ValohaiNotFound):
        snapshot.read_pipeline(api, PROJECT, "p4", 4)
    assert api.requests == ["list pipelines/", "get pipeline"]


def test_an_old_pipeline_pages_on_only_down_to_its_counter(monkeypatch):
    monkeypatch.setattr(snapshot, "PIPELINE_PAGE", 100)
    api = FakeApi(pipelines=1000)  # the stack's pipeline is #750: 251 newer ones come first
    assert snapshot.read_pipeline(api, PROJECT, "p750", 750)["counter"] == 750
    assert api.requests == ["list pipelines/"] * 3  # 1000..901, 900..801, 800..701; never below
    assert snapshot.read_pipeline(api, PROJECT, "p720", 720)["counter"] == 720
    assert len(api.requests) == 3


def test_a_listing_older_than_the_bound_is_taken_again(fresh):
    api = FakeApi(pipelines=5)
    snapshot.read_pipeline(api, PROJECT, "p1", 1)
    api.pipelines["p1"]["status"] = "error"
    fresh[0] += snapshot.SNAPSHOT_SECONDS / 2
    assert snapshot.read_pipeline(api, PROJECT, "p1", 1)["status"] == "complete"  # still within the bound
    fresh[0] += snapshot.SNAPSHOT_SECONDS
    assert snapshot.read_pipeline(api, PROJECT, "p1", 1)["status"] == "error"
    assert api.requests == ["list pipelines/"] * 2


def test_a_change_made_by_this_process_drops_the_listing():
    api = FakeApi(pipelines=3)
    snapshot.read_pipeline(api, PROJECT, "p2", 2)
    del api.pipelines["p2"]  # e.g. PipelineProvider.delete, which calls forget()
    snapshot.forget()
    with pytest.raises(ValohaiNotFound):
        snapshot.read_pipeline(api, PROJECT, "p2", 2)


def test_without_counter_or_project_a_read_is_one_get():
    api = FakeApi(pipelines=3, executions=3)
    assert snapshot.read_pipeline(api, None, "p1", 1)["id"] == "p1"
    assert snapshot.read_pipeline(api, PROJECT, "p2", None)["id"] == "p2"
    assert snapshot.read_execution(api, PROJECT, "e1", None)["id"] == "e1"
    assert api.requests == ["get pipeline", "get pipeline", "get execution"]


def test_neighbouring_executions_cost_one_request_and_a_deleted_one_is_read_by_id():
    api = FakeApi(executions=300)
    del api.executions["e122"]  # deleted outside the tool: lists no longer show it
    for c in (120, 121, 125, 140, 160, 170):  # datasets made together, the prediction later
        assert snapshot.read_execution(api, PROJECT, f"e{c}", c)["counter"] == c
    assert api.requests == ["list executions/"]
    with pytest.raises(ValohaiNotFound):
        snapshot.read_execution(api, PROJECT, "e122", 122)
    assert snapshot.read_execution(api, PROJECT, "e290", 290)["counter"] == 290  # outside the window
    assert api.requests == ["list executions/", "get execution", "list executions/"]


def test_an_execution_whose_counter_now_names_another_id_is_read_by_id():
    api = FakeApi(executions=5)
    with pytest.raises(ValohaiNotFound):
        snapshot.read_execution(api, PROJECT, "some-other-id", 3)
    assert api.requests == ["list executions/", "get execution"]
