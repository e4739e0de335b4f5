"""Creates look for what a killed run left in one listing per provider process (providers/resources/adoption.py),
and a retry, whose own lost POST may have been applied, looks again by title. A fake API counts the calls."""

from __future__ import annotations

from typing import Any

import pytest
from support import FakeClock

from providers.api import waiting
from providers.api.errors import ValohaiTransient
from providers.resources import pipelines
from providers.resources.adoption import StackPipelines
from providers.sweep.identity import content_tag, stack_tag


class Api:
    host = "http://fake"

    def __init__(self, existing: list[dict], fail_posts: int = 0) -> None:
        self.existing = existing
        self.fail_posts = fail_posts
        self.lists: list[dict] = []
        self.posts: list[dict] = []

    def list_pipelines(self, project: str, **filters: Any) -> list[dict]:
        self.lists.append(filters)
        return list(self.existing)

    def create_pipeline(self, payload: dict) -> dict:
        self.posts.append(payload)
        if self.fail_posts:
            self.fail_posts -= 1
            raise ValohaiTransient("502 after the commit", status=502)
        return {
            "id": f"new-{len(self.posts)}",
            "counter": len(self.posts),
            "status": "started",
            "tags": payload["tags"],
        }


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch):
    StackPipelines.forget()
    monkeypatch.setattr(waiting, "clock", FakeClock())
    holder: dict[str, Api] = {}
    monkeypatch.setattr(pipelines, "client", lambda host: holder["api"])
    yield holder
    StackPipelines.forget()


def props(key: str, tags: list[str]) -> dict:
    payload = {"project": "proj", "title": f"cell-{key[:4]}", "tags": tags, "nodes": [{"name": "train"}], "edges": []}
    return {"host": Api.host, "payload": payload, "stack": "s", "label": f"cell-{key[:4]}", "key": key, "identity": {}}


def test_many_creates_share_one_listing_and_adopt_what_a_killed_run_left(fake):
    left = {"id": "left", "counter": 3, "status": "complete", "tags": [stack_tag("s"), content_tag("a" * 64)]}
    fake["api"] = api = Api([left])
    made = [pipelines.PipelineProvider().create(props(k * 64, [stack_tag("s")])) for k in "abc"]
    assert [m.id for m in made] == ["left", "new-1", "new-2"]  # the killed run's pipeline is adopted
    assert api.lists == [{"tag": stack_tag("s")}], "one listing for the whole run, by the stack's tag"
    assert len(api.posts) == 2


def test_a_retry_looks_again_by_title(fake):
    fake["api"] = api = Api([], fail_posts=1)
    made = pipelines.PipelineProvider().create(props("d" * 64, [stack_tag("s")]))
    assert made.id == "new-2"
    assert api.lists == [{"tag": stack_tag("s")}, {"title": "cell-dddd"}]


def test_a_payload_without_the_stack_tag_looks_by_title(fake):
    fake["api"] = api = Api([])
    pipelines.PipelineProvider().create(props("e" * 64, []))
    assert api.lists == [{"title": "cell-eeee"}]
