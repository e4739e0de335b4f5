"""The program's side of reuse: look up this stack's completed nodes once, plan mimics per pipeline, say so.

Before any pipeline is declared, the program lists the project's pipelines tagged `stack:<stack>` (one
paged call) and indexes their completed nodes by the `vpac-node:` tag their executions carry
(`providers.sweep.reuse`). For each pipeline it declares, every node whose content key is found there is
planned as a mimic of it, and the plan says so before anything runs, one line per node
(`harbor_A/epochs-2: reuse train from pipeline #7 (same key)`) and a summary (`reuse: N nodes to run, M
reused`). The same lines show at `pulumi preview` and `pulumi up`.

A pipeline whose own resource key is carried by a live, not failed pipeline is not going to be created
(unchanged), so it is left out of the lines and counts. Only this stack's pipelines are sources, so two
stacks never feed each other (the lineage rule of `providers.sweep.identity`).

Turning it off: stack config `reuse: false` (nothing is reused). Forcing one cell to run afresh:
`force_rerun: [harbor_A/epochs-2]` plus `pulumi up --replace <urn>` (see README): the program cannot see
which resources `--replace` targets, so only config can tell it which cells must not be mimicked; and
since `force_rerun` changes no key, removing it afterwards re-runs nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi

from providers.api.client import ValohaiClient
from providers.api.credentials import TOKEN_ENV
from providers.api.errors import ValohaiError
from providers.api.statuses import is_failed
from providers.sweep.identity import content_tag
from providers.sweep.reuse import Source, completed_sources, plan_lines, plan_reuse, summary_line


@dataclass
class ReusePlanner:
    """Completed nodes of this stack by tag, and the lines and counts of what the run will reuse."""

    enabled: bool
    sources: dict[str, Source] = field(default_factory=dict)
    live_tags: set[str] = field(default_factory=set)
    to_run: int = 0
    reused: int = 0
    plans: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, host: str, project: str, stack: str, valohai: pulumi.Config, enabled: bool) -> ReusePlanner:
        if not enabled:
            return cls(enabled=False)
        api = ValohaiClient(host, valohai.get("token") or os.environ.get(TOKEN_ENV) or "")
        try:
            project_id = api.resolve_project(project)["id"]
            pipelines = api.list_pipelines(project_id, tag=f"stack:{stack}")
        except ValohaiError as exc:
            raise pulumi.RunError(f"cannot list this stack's pipelines to find reusable work: {exc}") from None
        live = {
            tag
            for p in pipelines
            if not p.get("deleted") and not is_failed(p.get("status"))
            for tag in p.get("tags") or []
        }
        return cls(enabled=True, sources=completed_sources(pipelines), live_tags=live)

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
        reuse = plan_reuse(identity, self.sources, skip=skip)
        if content_tag(resource_key) in self.live_tags and not skip:
            return reuse  # unchanged: not created this run (unless --replace'd), so nothing to announce
        for line in plan_lines(label_of, node_of, reuse):
            pulumi.log.info(line)
        self.to_run += len(identity) - len(reuse)
        self.reused += len(reuse)
        for name, source in reuse.items():
            self.plans.setdefault(label_of[name], {})[node_of[name]] = f"pipeline #{source.pipeline_counter}"
        return reuse

    def summarize(self) -> None:
        if self.enabled:
            pulumi.log.info(summary_line(self.to_run, self.reused))
