"""`TrainingPipeline` (one per sweep cell) and `SweepPipeline` (single mode): a Valohai pipeline with a payload.

Create submits and returns at once (the wait is `TrainingResults`' job: the provider server runs at
most 4 calls at a time, so a provider that waited per cell would run at most 4 cells at once).
Identity is content: the key rides along as a pipeline tag, so create adopts a pipeline already made for this key (after a killed
`pulumi up`, or a retried POST) instead of making a duplicate.

The key is computed in the program from values known at preview (`providers.sweep.identity`): the
preprocess and train nodes' content keys, never the ad-hoc commit. The diff compares keys only; the
payload is a plain stored input, so a new commit alone keeps every finished pipeline. The title is
cosmetic: renamed in the UI, the pipeline stays (drift-check still reports the edit). Read reports the live status, and a
pipeline that errored, was stopped, or was deleted outside the tool is planned for re-creation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, ReadResult, Resource

from providers.api.credentials import client
from providers.api.errors import ValohaiError, ValohaiNotFound
from providers.api.statuses import is_terminal
from providers.resources.adoption import create_once, pipeline_finder, retry_transient
from providers.resources.base import ValohaiProvider, input_view, integral_numbers, is_unknown, progress
from providers.resources.packed import SPEC, pack, pack_spec, spec_view, stored_project, unpack
from providers.resources.run_control import settle
from providers.resources.snapshot import forget, read_pipeline
from providers.sweep.identity import TAG_PREFIX, content_tag

RELEASED_TAG = "released"
REFUSED_DELETE = (403, 405)  # what an API that offers no pipeline deletion answers


def statuses_of(pipeline: dict) -> list[Any]:
    """The pipeline's status and its nodes' executions' statuses: stopped means all of them ended."""
    executions = [n.get("execution") for n in pipeline.get("nodes") or []]
    return [pipeline.get("status"), *(e.get("status") for e in executions if isinstance(e, dict))]


def release(api: Any, pipeline_id: str, label: str, refused: int) -> str:
    """When the API refuses DELETE: stop the pipeline, swap its content tag for `released` (so no later
    create adopts it), and return the one line that says so. Failing to stop raises (a pipeline left
    running must not leave the stack); failing to tag is said in the line.

    `DELETE pipelines/{id}/` is called by no valohai-cli 0.37 command (valohai_cli/commands/pipeline/ has
    list, run and stop only), so whether Valohai allows it for a token is unverified; this is the way out.
    """
    pipeline = api.get_pipeline(pipeline_id)
    if not is_terminal(pipeline.get("status")):
        retry_transient(lambda: api.stop_pipeline(pipeline_id), what=f"stopping pipeline {pipeline_id}")
    tags = [t for t in pipeline.get("tags") or [] if not t.startswith(TAG_PREFIX) and t != RELEASED_TAG]
    try:
        api.set_pipeline_tags(pipeline_id, [*tags, RELEASED_TAG])
        tagged = f"tagged it '{RELEASED_TAG}'"
    except ValohaiError as exc:
        tagged = f"could not tag it '{RELEASED_TAG}' (HTTP {exc.status})"
    return (
        f"{label}: the API refused DELETE (HTTP {refused}); stopped pipeline #{pipeline.get('counter')}, "
        f"{tagged} and dropped it from the stack"
    )


def node_executions(pipeline: dict) -> dict[str, dict]:
    """Node name -> {id, counter, status} of its execution (empty dict before it starts)."""
    found = {}
    for node in pipeline.get("nodes", []):
        execution = node.get("execution") or {}
        found[node["name"]] = {
            "id": execution.get("id"),
            "counter": execution.get("counter"),
            "status": execution.get("status") or node.get("status"),
            "detail": execution.get("status_detail"),
        }
    return found


LIVE = "live"  # the output holding the live title, the nodes' executions and the ids, packed


def live_outputs(
    pipeline: dict, stored: Mapping[str, Any] | None = None, project_id: str | None = None
) -> dict[str, Any]:
    """What state keeps of the live pipeline: its status and counter as values of their own (the plan and the
    stack's outputs read them), the rest packed as one value (`LIVE`).

    The live title, the nodes' executions, the pipeline's id (which lets the next run find its reusable nodes in
    the stack's own state, stacks/reuse.py, as the resource id is not among the outputs the engine hands back)
    and its project's id are read only by this provider and the program (`live_view`, `stored_ids`): the engine
    re-encodes every value of every resource at each checkpoint of an `up`, and as values of their own the
    title and the nodes were 11 of a cell's ~37 (`pulumi up --profiling` at 300 cells: -8% of the engine's CPU),
    the two ids 2 more (bench/README.md, "State shape"). Outputs stored in an earlier shape keep it when `read`
    refreshes them, so a refresh of unchanged pipelines shows no change (`drift-check` runs
    `--expect-no-changes`): `live_title` and `nodes` as values (and a display `url`), or `pipeline_id` beside a
    packed title and nodes.
    """
    title, nodes = pipeline.get("title"), node_executions(pipeline)
    kept = {"status": pipeline.get("status"), "counter": pipeline.get("counter")}
    if stored is not None and "nodes" in stored and LIVE not in stored:
        return {**kept, "pipeline_id": pipeline.get("id"), "live_title": title, "nodes": nodes}
    if stored is not None and "pipeline_id" in stored:
        return {**kept, "pipeline_id": pipeline.get("id"), LIVE: pack({"title": title, "nodes": nodes})}
    if stored is not None and project_id is None:
        project_id = stored_ids(stored)[1]
    live = {"title": title, "nodes": nodes, "pipeline_id": pipeline.get("id"), "project_id": project_id}
    return {**kept, LIVE: pack(live)}


def _live(outs: Mapping[str, Any]) -> Mapping[str, Any]:
    live = unpack(outs.get(LIVE)) if LIVE in outs else None
    return live if isinstance(live, Mapping) else {}


def live_view(outs: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(live title, {node name: its execution}) from stored outputs of any shape (`live_outputs`)."""
    if LIVE in outs:
        live = _live(outs)
        return live.get("title"), dict(live.get("nodes") or {})
    return outs.get("live_title"), dict(outs.get("nodes") or {})


def stored_ids(outs: Mapping[str, Any]) -> tuple[Any, Any]:
    """(pipeline id, project id) from stored outputs of any shape (`live_outputs`)."""
    live = _live(outs)
    return outs.get("pipeline_id") or live.get("pipeline_id"), stored_project(outs) or live.get("project_id")


class PipelineProvider(ValohaiProvider):
    replace_keys = ("host", "key")
    stop_before_replace = True
    # The inputs: the payload, and the host, label, content key and identity packed as one `SPEC`
    # (providers/resources/packed.py `pack_spec`; state written before holds them as values of their own, and
    # every method reads both shapes through `spec_view`).
    INPUTS = ("payload", SPEC)
    # The stack's name was an input too; its tag is in the payload (stacks/program.py) and nothing read it.
    RETIRED_INPUTS = ("stack",)
    # What the outputs keep of the inputs, in their own `SPEC`: not the payload (only sent to the API; the
    # project id is kept instead, for `read`) nor the identity (the plan's reasons come from the inputs:
    # `note_key_change` in providers/resources/base.py), so each pipeline's state carries them once, as inputs.
    KEPT_INPUTS = ("host", "label", "key")

    def check_inputs(self, news):
        payload = unpack(news.get("payload"))
        problems = []
        if "key" in news and not news["key"]:
            problems.append(("key", "a pipeline needs its content key (computed by stacks/program.py)"))
        if payload is None or is_unknown(payload):
            return problems
        if not isinstance(payload, dict) or not payload.get("nodes"):
            problems.append(("payload", "a pipeline payload needs nodes (built from valohai.yaml's training-pipeline)"))
        elif not payload.get("project"):
            problems.append(("payload", "the pipeline payload names no project"))
        return problems

    def cosmetic_edit(self, stored, live):
        (was, _), (now, _) = live_view(stored), live_view(live)
        if now != was and now is not None:
            return f"title is {now!r} in Valohai, was {was!r}"
        return None

    def problem_reason(self, outs, problem):
        if problem != "status":
            return super().problem_reason(outs, problem)
        failed = [
            f"{name}: {node.get('detail') or node.get('status')}"
            for name, node in sorted(live_view(outs)[1].items())
            if node.get("status") in ("error", "stopped")
        ]
        return f"last run {outs.get('status')}" + (f" ({'; '.join(failed)})" if failed else "")

    def create(self, props: dict) -> CreateResult:
        props = integral_numbers(spec_view(props))
        api = client(props["host"])
        payload = unpack(props["payload"])
        key = props["key"]
        tag = content_tag(key)
        forget()  # a listing taken before this create must not answer a later read
        pipeline, adopted = create_once(
            lambda: api.create_pipeline({**payload, "tags": [*payload.get("tags", []), tag]}),
            pipeline_finder(api, payload, tag),
            what=f"the pipeline for {props['label']}",
        )
        if adopted:
            progress(f"{props['label']}: adopted existing pipeline #{pipeline.get('counter')} ({pipeline['status']})")
        else:
            progress(f"{props['label']}: submitted pipeline #{pipeline.get('counter')}")
        live = live_outputs(pipeline, project_id=payload["project"])
        return CreateResult(pipeline["id"], {SPEC: pack_spec(input_view(props, self.KEPT_INPUTS)), **live})

    def read(self, id_: str, props: dict) -> ReadResult:
        """The live pipeline. No inputs are returned, so the engine keeps the stored ones (nothing outside the
        tool can change what was sent; pulumi/pulumi pkg/resource/deploy/step.go, `RefreshStep.Apply`)."""
        view, project_id = spec_view(props), stored_ids(props)[1]
        try:
            pipeline = read_pipeline(client(view["host"]), project_id, id_, integral_numbers(props.get("counter")))
        except ValohaiNotFound:
            pipeline = {"deleted": True}
        if pipeline.get("deleted"):
            progress(f"{view.get('label', id_)}: re-create: pipeline deleted outside the tool")
            return ReadResult("", {})
        return ReadResult(id_, {**props, **live_outputs(pipeline, stored=props, project_id=project_id)})

    def delete(self, id_: str, props: dict) -> None:
        props = spec_view(props)
        api = client(props["host"])
        forget()  # nor one taken before this delete
        try:
            if not is_terminal(props.get("status")):
                retry_transient(lambda: api.stop_pipeline(id_), what=f"stopping pipeline {id_}")
                settle(lambda: statuses_of(api.get_pipeline(id_)), f"pipeline {props.get('label') or id_}")
            api.delete_pipeline(id_)
        except ValohaiNotFound:
            pass  # already gone: the goal of delete
        except ValohaiError as exc:
            if exc.status not in REFUSED_DELETE:
                raise
            try:
                progress(release(api, id_, props.get("label") or id_, exc.status))
            except ValohaiNotFound:
                pass


class _PipelineResource(Resource):
    status: pulumi.Output[str]
    counter: pulumi.Output[int]

    def __init__(
        self,
        name: str,
        *,
        host: Any,
        payload: Any,
        label: str,
        key: str,
        identity: dict,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            PipelineProvider(),
            name,
            {
                "payload": pack(payload),
                SPEC: pack_spec({"host": host, "label": label, "key": key, "identity": identity}),
                "status": None,
                "counter": None,
            },
            opts,
        )


class TrainingPipeline(_PipelineResource, module="valohai", name="TrainingPipeline"):
    """One sweep cell: preprocess -> train for one harbor and one epochs value."""


class SweepPipeline(_PipelineResource, module="valohai", name="SweepPipeline"):
    """Single mode: every cell's preprocess/train pair and a predict node, in one pipeline."""
