"""The program's side of reuse: find this stack's completed nodes, plan mimics per pipeline, say so.

Where sources come from, in order:

1. The stack's own state. Before any pipeline is declared, the program reads the stored outputs of this
   stack's resources with the engine's builtin invoke `pulumi:pulumi:readStackResourceOutputs` (the one
   the Node SDK's `listResourceOutputs` calls; pulumi/pulumi pkg/resource/deploy/builtins.go) and takes
   the pipeline id every pipeline resource stores (in its packed `live` output, or as `pipeline_id` in state
   of earlier versions: providers/resources/pipelines.py `stored_ids`; state written before either has none
   until a refresh, and the tag lookup finds those pipelines). Those
   pipelines are read live (a GET and one list request, `providers.resources.polling.PipelineSweepReader`),
   so a pipeline deleted, stopped or failed since the state was written is judged by what it is now.
   Why this and not `pulumi.StackReference` of the stack itself: a stack reference sees only the stack's
   exports, and only as Outputs resolved later, while the payloads must be planned now; the invoke is
   synchronous in the Python SDK, works at preview as at `up`, and sees every resource's outputs (dynamic
   providers store theirs like any other), with no export added for it.
2. The key carried on the tags. Only when a pipeline about to be created has a node whose key the state's
   pipelines do not hold, the project's pipelines tagged `stack:<stack>` are listed once (paged) and
   their completed nodes found by the `vpac-node:` tag their executions carry. A source found in the
   state wins over one found by tag for the same key.

Which nodes may be sources (complete, in a pipeline not deleted; never failed, stopped or unfinished work)
is decided by `providers.sweep.reuse.completed_sources` only: both lookups hand it the pipelines they read.

For each pipeline it declares, every node whose content key is found is planned as a mimic of it, and the
plan says so before anything runs, one line per node (`harbor_A/epochs-2: reuse train from pipeline #7
(same key)`) and a summary (`reuse: N nodes to run, M reused`). The same lines show at `pulumi preview`,
`pulumi up` and in `plan-explain`. A pipeline whose own resource key is carried by a live, not failed
pipeline is not going to be created (unchanged), so it is left out of the lines and counts, and planned
without mimics (its stored payload stays put; `--replace` of it alone re-runs its nodes). Only this
stack's pipelines are sources, so two stacks never feed each other (the lineage rule of
`providers.sweep.identity`).

Turning it off: stack config `reuse: false` (nothing is reused). Forcing one cell to run afresh:
`force_rerun: [harbor_A/epochs-2]` plus `pulumi up --replace <urn>` (see README): the program cannot see
which resources `--replace` targets, so only config can tell it which cells must not be mimicked (in
single mode, where one pipeline holds every cell, the others are then still reused); and since
`force_rerun` changes no key, removing it afterwards re-runs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi

from providers.api.client import ValohaiClient
from providers.api.errors import ValohaiError, ValohaiNotFound
from providers.api.statuses import is_failed
from providers.resources.packed import SPEC
from providers.resources.pipelines import LIVE, stored_ids
from providers.resources.polling import PipelineSweepReader, project_of
from providers.sweep.identity import content_tag, node_tags, stack_tag
from providers.sweep.reuse import (
    Source,
    completed_sources,
    pipeline_label,
    plan_lines,
    plan_reuse,
    summary_line,
)

READ_STATE = "pulumi:pulumi:readStackResourceOutputs"
PIPELINE_TYPES = ("TrainingPipeline", "SweepPipeline")  # providers/resources/pipelines.py
STATE_ID = "pipeline_id"  # the key `read_state_resources` reports each pipeline resource's stored id under


def is_pipeline(resource: Any) -> bool:
    """Whether an entry of `read_state_resources` is one of the pipeline resources."""
    return isinstance(resource, Mapping) and str(resource.get("type", "")).rsplit(":", 1)[-1] in PIPELINE_TYPES


def earlier_pipeline_names(resources: Mapping[str, Any]) -> frozenset[str]:
    """The resource names (`cell-harbor_A-epochs-2`) of the pipeline resources this stack's state holds as an
    earlier version stored them (without the packed `spec` output, providers/resources/pipelines.py): a cell
    made then depends on the code package as well as on its dataset (stacks/program.py `cell_payload`)."""
    return frozenset(
        urn.rsplit("::", 1)[-1]
        for urn, resource in resources.items()
        if is_pipeline(resource) and not resource.get(SPEC)
    )


def state_pipeline_ids(resources: Mapping[str, Any]) -> list[str]:
    """The pipeline ids this stack's pipeline resources stored, from the invoke's `outputs` (urn -> {type,
    outputs}); state written before `pipeline_id` was stored yields none (the tag lookup finds those)."""
    ids = []
    for resource in resources.values():
        if not is_pipeline(resource):
            continue
        pipeline_id = (resource.get("outputs") or {}).get(STATE_ID)
        if isinstance(pipeline_id, str) and pipeline_id:
            ids.append(pipeline_id)
    return sorted(set(ids))


def read_state_resources(warn: bool = True) -> Mapping[str, Any]:
    """This stack's resources as `{urn: {"type": …, "outputs": {STATE_ID: …}, SPEC: …}}` (empty on the first `up`,
    or when the engine cannot say): of the stored outputs, only what `state_pipeline_ids` reads, and whether they
    hold a packed `SPEC` (`earlier_pipeline_names`).

    Why the raw reply rather than `pulumi.runtime.invoke`: the SDK converts every stored output of every resource
    into Python values (`rpc.deserialize_properties`, value by value), and at 1,000 cells the training results,
    the prediction and the cells hold ~2 MB of them: ~0.7 s of the program's start on an idle core of this
    machine (bench/README.md), for one string per pipeline. The reply's protobuf is walked for those instead.
    """
    from google.protobuf import struct_pb2
    from pulumi.runtime import rpc
    from pulumi.runtime.proto import resource_pb2
    from pulumi.runtime.settings import get_monitor

    name = f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"
    args = struct_pb2.Struct()
    args.update({"stackName": name})
    try:
        monitor = get_monitor()
        if monitor is None:
            raise RuntimeError("no engine to ask")
        reply = monitor.Invoke(resource_pb2.ResourceInvokeRequest(tok=READ_STATE, args=args))
        if reply.failures:
            raise RuntimeError(f"{reply.failures[0].reason} ({reply.failures[0].property})")
    except Exception as exc:  # an engine without the builtin: the tag lookup still finds every source
        if warn:
            pulumi.log.warn(f"reuse: cannot read this stack's state ({exc}); finding finished work by tag only")
        return {}

    def plain(value: struct_pb2.Value | None) -> struct_pb2.Value | None:
        """The value with a secret's wrapper (`{sig: secret sig, "value": …}`, `pulumi.runtime.rpc`) taken off."""
        while value is not None and value.WhichOneof("kind") == "struct_value":
            wrapper = value.struct_value.fields
            sig = wrapper.get(rpc._special_sig_key)
            if sig is None or sig.string_value != rpc._special_secret_sig:
                break
            value = wrapper.get("value")
        return value

    def fields(value: struct_pb2.Value | None) -> Mapping[str, struct_pb2.Value]:
        value = plain(value)
        return value.struct_value.fields if value is not None and value.WhichOneof("kind") == "struct_value" else {}

    def text(value: struct_pb2.Value | None) -> str | None:
        value = plain(value)
        return value.string_value if value is not None and value.WhichOneof("kind") == "string_value" else None

    stored = getattr(reply, "return").fields
    resources: dict[str, Any] = {}
    for urn, resource in (fields(stored["outputs"]) if "outputs" in stored else {}).items():
        entry = fields(resource)
        outputs = fields(entry.get("outputs"))
        type_ = text(entry.get("type")) or ""
        pipeline_id = text(outputs.get(STATE_ID))
        if pipeline_id is None and LIVE in outputs and is_pipeline({"type": type_}):
            try:
                pipeline_id = stored_ids({LIVE: text(outputs.get(LIVE))})[0]
            except ValueError:
                pipeline_id = None  # a damaged stored value: the tag lookup still finds the pipeline
        resources[urn] = {"type": type_, "outputs": {STATE_ID: pipeline_id}, SPEC: SPEC in outputs}
    return resources


def read_live(api: ValohaiClient, ids: Iterable[str]) -> list[dict]:
    """The pipelines as they are now, newest first; one that no longer exists is left out."""
    wanted = sorted(set(ids))
    try:
        found = list(PipelineSweepReader(api).read(wanted).values())
    except ValohaiNotFound:  # one of them was deleted: read them one by one
        found = []
        for pipeline_id in wanted:
            try:
                found.append(api.get_pipeline(pipeline_id))
            except ValohaiNotFound:
                continue
    return sorted(found, key=lambda p: p.get("counter") or 0, reverse=True)


def read_listed(api: ValohaiClient, ids: Iterable[str], listed: list[dict]) -> list[dict]:
    """`read_live` answered from a listing of the project's pipelines: one not listed no longer exists (or is
    in another project), one listed without its nodes is read by id."""
    by_id = {p.get("id"): p for p in listed}
    found = []
    for pipeline_id in sorted(set(ids)):
        pipeline = by_id.get(pipeline_id)
        if pipeline is None:
            continue
        if "nodes" not in pipeline:
            try:
                pipeline = api.get_pipeline(pipeline_id)
            except ValohaiNotFound:
                continue
        found.append(pipeline)
    return sorted(found, key=lambda p: p.get("counter") or 0, reverse=True)


def live_tags(pipelines: Iterable[Mapping[str, Any]]) -> set[str]:
    """The tags of pipelines that stand (not deleted, not failed): a resource key among them is unchanged."""
    return {
        tag for p in pipelines if not p.get("deleted") and not is_failed(p.get("status")) for tag in p.get("tags") or []
    }


@dataclass
class ReusePlanner:
    """Completed nodes of this stack by tag (state first, then by tag), and the lines and counts of what the
    run will reuse."""

    enabled: bool
    sources: dict[str, Source] = field(default_factory=dict)
    live_tags: set[str] = field(default_factory=set)
    list_by_tag: Callable[[], list[dict]] | None = None  # the fallback, called at most once
    to_run: int = 0
    reused: int = 0
    plans: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        api: ValohaiClient,
        project: str,
        stack: str,
        enabled: bool,
        state: Callable[[], Mapping[str, Any]] = read_state_resources,
        current: Callable[[], list[dict]] | None = None,
    ) -> ReusePlanner:
        """The state's sources, read now; the tag lookup kept for when a node's key is not among them.

        `current`, when given, lists the project's pipelines (the program shares one listing with the
        estimates, `stacks/program.py`): the state's pipelines and the tag lookup are then read from it, with
        no request of their own."""
        if not enabled:
            return cls(enabled=False)
        try:
            project_id = api.resolve_project(project)["id"]
            ids = state_pipeline_ids(state())
            read = read_listed(api, ids, current()) if current is not None and ids else read_live(api, ids)
        except ValohaiError as exc:
            raise pulumi.RunError(f"cannot read this stack's pipelines to find reusable work: {exc}") from None
        pipelines = [p for p in read if project_of(p) == project_id]  # valohai:project may have changed since

        def list_by_tag() -> list[dict]:
            tag = stack_tag(stack)
            try:
                if current is not None:
                    return [p for p in current() if tag in (p.get("tags") or [])]
                return api.list_pipelines(project_id, tag=tag)
            except ValohaiError as exc:
                raise pulumi.RunError(f"cannot list this stack's pipelines to find reusable work: {exc}") from None

        return cls(
            enabled=True, sources=completed_sources(pipelines), live_tags=live_tags(pipelines), list_by_tag=list_by_tag
        )

    def _fall_back_to_tags(self) -> None:
        """Add what the tag lookup finds; a key the state already resolved keeps its state source."""
        if self.list_by_tag is None:
            return
        listed, self.list_by_tag = self.list_by_tag(), None
        self.sources = {**completed_sources(listed), **self.sources}
        self.live_tags |= live_tags(listed)

    def plan(
        self,
        resource_key: str,
        identity: Mapping[str, Mapping[str, Any]],
        label_of: Mapping[str, str],
        node_of: Mapping[str, str],
        skip: set[str],
    ) -> dict[str, Source]:
        """Node name -> source to mimic for one pipeline resource; logs its lines unless it is unchanged."""
        if not self.enabled:
            return {}
        unchanged = content_tag(resource_key) in self.live_tags and not skip
        if not unchanged and any(t not in self.sources for n, t in node_tags(identity).items() if n not in skip):
            self._fall_back_to_tags()
            unchanged = content_tag(resource_key) in self.live_tags and not skip
        if unchanged:
            # Not created this run, so nothing to announce; and planned without mimics, so that its payload (an
            # input stored in state) does not change each time other work completes: Pulumi rewrites the whole
            # state file for every resource whose inputs changed, even in a no-op `up` (bench/README.md).
            # `pulumi up --replace` of it therefore re-runs its nodes.
            return {}
        reuse = plan_reuse(identity, self.sources, skip=skip)
        for line in plan_lines(label_of, node_of, reuse):
            pulumi.log.info(line)
        self.to_run += len(identity) - len(reuse)
        self.reused += len(reuse)
        for name, source in reuse.items():
            self.plans.setdefault(label_of[name], {})[node_of[name]] = pipeline_label(source.pipeline_counter)
        return reuse

    def summarize(self) -> None:
        if self.enabled:
            pulumi.log.info(summary_line(self.to_run, self.reused))
