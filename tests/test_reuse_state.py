"""The program's reuse lookup (stacks/reuse.py): the stack's own state first, the tag lookup only for keys the
state does not resolve, and the selection rules of providers/sweep/reuse.py for both. A fake API stands in
for the server; the engine's state read is a plain function here."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from providers.api.errors import ValohaiNotFound
from providers.sweep.identity import content_tag, node_key, node_tag
from stacks.reuse import ReusePlanner, state_pipeline_ids

IDENTITY = {
    "preprocess": {"step": {"name": "preprocess-dataset"}, "parameters": {"x": 1}, "upstream": {}, "files": {}},
    "train": {"step": {"name": "train"}, "parameters": {"epochs": 2}, "upstream": {"dataset": "k"}, "files": {}},
}
TAGS = {name: node_tag(node_key(ident)) for name, ident in IDENTITY.items()}
LABELS = {"preprocess": "hA/epochs-2", "train": "hA/epochs-2"}
NODES = {"preprocess": "preprocess", "train": "train"}
PIPELINE_TYPE = "pulumi-python:dynamic/valohai:TrainingPipeline"


def pipeline(counter: int, nodes: dict[str, str], *, status: str = "complete", tags: tuple[str, ...] = ()) -> dict:
    """A pipeline as the API shows it; `nodes` maps node name -> its (and its execution's) status."""
    return {
        "id": f"p{counter}",
        "counter": counter,
        "project": {"id": "proj"},
        "status": status,
        "tags": ["stack:s", *tags],
        "nodes": [
            {
                "id": f"p{counter}-{name}",
                "name": name,
                "status": st,
                "execution": {"id": f"e{counter}-{name}", "counter": counter, "status": st, "tags": [TAGS[name]]},
            }
            for name, st in nodes.items()
        ],
    }


def state_of(*ids: str) -> dict[str, Any]:
    """What `pulumi:pulumi:readStackResourceOutputs` hands back: urn -> {type, outputs}."""
    resources: dict[str, Any] = {
        f"urn:pulumi:s::valohai-sweep::{PIPELINE_TYPE}::cell-{i}": {
            "type": PIPELINE_TYPE,
            "outputs": {"pipeline_id": i},
        }
        for i in ids
    }
    resources["urn:pulumi:s::valohai-sweep::pulumi-python:dynamic/valohai:Prediction::prediction"] = {
        "type": "pulumi-python:dynamic/valohai:Prediction",
        "outputs": {"pipeline_id": "not-a-pipeline-resource"},
    }
    return resources


class FakeApi:
    """The few calls the lookup makes; `listed` is the stack's pipelines as the tag lookup returns them."""

    def __init__(self, live: list[dict], listed: list[dict] | None = None) -> None:
        self.live = {p["id"]: p for p in live}
        self.listed = listed if listed is not None else live
        self.tag_lookups = 0

    def resolve_project(self, name: str) -> dict:
        return {"id": "proj"}

    def get_pipeline(self, pipeline_id: str) -> dict:
        if pipeline_id not in self.live:
            raise ValohaiNotFound("gone", status=404)
        return self.live[pipeline_id]

    def paginate(self, path: str, **params: Any) -> list[dict]:
        return sorted(self.live.values(), key=lambda p: -p["counter"])

    def list_pipelines(self, project_id: str, **filters: Any) -> list[dict]:
        assert filters == {"tag": "stack:s"}
        self.tag_lookups += 1
        return self.listed


def planner(api: FakeApi, state: dict[str, Any]) -> ReusePlanner:
    return ReusePlanner.load(api, "proj", "s", True, state=lambda: state)  # type: ignore[arg-type]


def test_state_pipeline_ids_are_the_pipeline_resources_stored_ids():
    assert state_pipeline_ids(state_of("p2", "p1", "p2")) == ["p1", "p2"]
    old = {"urn:x": {"type": PIPELINE_TYPE, "outputs": {"status": "complete"}}}  # written before pipeline_id
    assert state_pipeline_ids(old) == [] and state_pipeline_ids({}) == []


def test_sources_in_the_state_are_used_without_any_tag_lookup():
    api = FakeApi([pipeline(7, {"preprocess": "complete", "train": "complete"})])
    plan = planner(api, state_of("p7")).plan("new-key", IDENTITY, LABELS, NODES, set())
    assert {n: s.node_id for n, s in plan.items()} == {"preprocess": "p7-preprocess", "train": "p7-train"}
    assert api.tag_lookups == 0


def test_a_key_the_state_does_not_resolve_is_looked_up_by_tag_once_and_the_state_source_wins():
    failed = pipeline(9, {"preprocess": "complete", "train": "error"}, status="error")
    older = pipeline(5, {"preprocess": "complete", "train": "complete"})  # no longer in the stack's state
    newer = pipeline(10, {"preprocess": "complete"})  # tagged for the stack, not in its state
    api = FakeApi([failed, older], listed=[newer, failed, older])
    reuse = planner(api, state_of("p9"))
    plan = reuse.plan("new-key", IDENTITY, LABELS, NODES, set())
    assert api.tag_lookups == 1
    assert plan["preprocess"].pipeline_counter == 9  # from the state (a failed pipeline's completed node)
    assert plan["train"].pipeline_counter == 5  # found by its tag: the state's train failed
    reuse.plan("other-key", IDENTITY, LABELS, NODES, {"train"})
    assert api.tag_lookups == 1  # at most once per run
    assert (reuse.to_run, reuse.reused) == (1, 3)
    assert reuse.plans == {"hA/epochs-2": {"preprocess": "pipeline #9", "train": "pipeline #5"}}


def test_failed_stopped_deleted_and_unfinished_state_sources_are_never_reused():
    live = [
        pipeline(8, {"train": "stopped"}, status="stopped"),
        pipeline(6, {"train": "started", "preprocess": "created"}, status="started"),
        {**pipeline(4, {"train": "complete", "preprocess": "complete"}), "deleted": True},
    ]
    api = FakeApi(live, listed=[])
    plan = planner(api, state_of("p8", "p6", "p4", "p3")).plan("new-key", IDENTITY, LABELS, NODES, set())
    assert plan == {}  # p3 is gone (404): left out, not an error
    assert api.tag_lookups == 1


def test_an_unchanged_pipeline_in_the_state_is_neither_announced_nor_looked_up_nor_mimicked():
    key = "the-key"
    api = FakeApi(
        [pipeline(7, {"preprocess": "complete", "train": "error"}, status="complete", tags=(content_tag(key),))]
    )
    reuse = planner(api, state_of("p7"))
    # planned without mimics although its preprocess node completed: its stored payload stays as created
    assert reuse.plan(key, IDENTITY, LABELS, NODES, set()) == {}
    assert (reuse.to_run, reuse.reused, reuse.plans, api.tag_lookups) == (0, 0, {}, 0)
    assert reuse.plan("a-new-key", IDENTITY, LABELS, NODES, set()) != {}  # a new pipeline mimics that node


def test_reuse_off_reads_nothing():
    def no_state() -> dict:
        raise AssertionError("state read with reuse off")

    reuse = ReusePlanner.load(None, "proj", "s", False, state=no_state)  # type: ignore[arg-type]
    assert reuse.plan("k", IDENTITY, LABELS, NODES, set()) == {}


def test_an_unreachable_api_stops_the_program_with_the_reason():
    class Down(FakeApi):
        def get_pipeline(self, pipeline_id: str) -> dict:
            from providers.api.errors import ValohaiTransient

            raise ValohaiTransient("connection refused", status=0)

    with pytest.raises(pulumi.RunError, match=r"cannot read this stack's pipelines .*connection refused"):
        planner(Down([]), state_of("p1"))


def test_with_the_programs_shared_listing_no_request_of_its_own_is_made():
    """`current` (the one listing the program shares with the estimates) answers the state's pipelines and the
    tag lookup; a state pipeline not listed is gone, one listed without nodes is read by id."""
    done = pipeline(7, {"preprocess": "complete", "train": "complete"})
    bare = {k: v for k, v in pipeline(8, {"preprocess": "complete", "train": "complete"}).items() if k != "nodes"}
    api = FakeApi([done, pipeline(8, {"preprocess": "complete", "train": "complete"})])
    calls: list[int] = []

    def current() -> list[dict]:
        calls.append(1)
        return [bare, done]

    api.get_pipeline = lambda pipeline_id: {"p8": api.live["p8"]}[pipeline_id]  # type: ignore[method-assign]
    reuse = ReusePlanner.load(api, "proj", "s", True, state=lambda: state_of("p7", "p8", "p9"), current=current)  # type: ignore[arg-type]
    assert set(reuse.sources) == set(TAGS.values()) and reuse.sources[TAGS["train"]].pipeline_counter == 8
    other = {**IDENTITY, "train": {**IDENTITY["train"], "parameters": {"epochs": 9}}}  # a key nothing holds
    reuse.plan("new-key", other, LABELS, NODES, set())
    assert api.tag_lookups == 0, "the tag lookup asked the API although the shared listing had answered"
    assert len(calls) >= 1


def test_the_state_is_read_from_the_engines_reply_without_converting_every_output(monkeypatch):
    """`read_state_resources` walks the builtin invoke's protobuf reply for each resource's type and stored pipeline
    id only (the training results' and prediction's outputs are never converted); a secret id is unwrapped, a
    failed invoke falls back to the tag lookup with a warning."""
    from google.protobuf import struct_pb2
    from pulumi.runtime import rpc
    from pulumi.runtime.proto import resource_pb2

    import stacks.reuse as reuse
    from providers.resources.packed import pack
    from providers.resources.pipelines import LIVE

    secret = {rpc._special_sig_key: rpc._special_secret_sig, "value": "p2"}
    outputs = {
        "urn:a": {"type": "pulumi-python:dynamic/valohai:TrainingPipeline", "outputs": {"pipeline_id": "p1", "x": [1]}},
        "urn:b": {"type": "pulumi-python:dynamic/valohai:SweepPipeline", "outputs": {"pipeline_id": secret}},
        "urn:c": {"type": "pulumi-python:dynamic/valohai:TrainingResults", "outputs": {"metrics": {"c": {"v": 1}}}},
        "urn:d": {"type": "pulumi-python:dynamic/valohai:TrainingPipeline", "outputs": {"status": "complete"}},
        # the id packed in `live` (state written since the spec), and a `live` of another resource type, ignored
        "urn:e": {
            "type": "pulumi-python:dynamic/valohai:TrainingPipeline",
            "outputs": {LIVE: pack({"pipeline_id": "p3"})},
        },
        "urn:f": {"type": "pulumi-python:dynamic/valohai:Prediction", "outputs": {LIVE: pack({"pipeline_id": "p4"})}},
        "urn:g": {"type": "pulumi-python:dynamic/valohai:TrainingPipeline", "outputs": {LIVE: "zd1:damaged"}},
    }
    reply = struct_pb2.Struct()
    reply.update({"outputs": outputs})
    calls = []

    class Engine:
        def __init__(self, response):
            self.response = response

        def Invoke(self, request):
            calls.append((request.tok, dict(request.args)))
            return self.response

    for name in ("get_organization", "get_project", "get_stack"):
        monkeypatch.setattr(reuse.pulumi, name, lambda name=name: name.split("_")[1])
    monkeypatch.setattr(
        "pulumi.runtime.settings.get_monitor", lambda: Engine(resource_pb2.ResourceInvokeResponse(**{"return": reply}))
    )
    found = reuse.read_state_resources()
    assert calls == [(reuse.READ_STATE, {"stackName": "organization/project/stack"})]
    assert found["urn:c"] == {"type": outputs["urn:c"]["type"], "outputs": {"pipeline_id": None}, "spec": False}
    assert reuse.state_pipeline_ids(found) == ["p1", "p2", "p3"]
    # made by an earlier version (no packed `spec` output): such cells keep their dependency on the code package
    found["urn:h::cell-x"] = {"type": outputs["urn:e"]["type"], "outputs": {"pipeline_id": "p5"}, "spec": True}
    assert reuse.earlier_pipeline_names(found) == {"urn:a", "urn:b", "urn:d", "urn:e", "urn:g"}

    warnings = []
    monkeypatch.setattr(reuse.pulumi.log, "warn", warnings.append)
    failed = resource_pb2.ResourceInvokeResponse(failures=[{"property": "stackName", "reason": "no such stack"}])
    monkeypatch.setattr("pulumi.runtime.settings.get_monitor", lambda: Engine(failed))
    assert reuse.read_state_resources() == {}
    assert warnings and "no such stack" in warnings[0] and "by tag only" in warnings[0]
