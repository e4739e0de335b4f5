"""`TrainingResults`: waits for every pipeline of the sweep in one loop, then collects what they made.

One resource for the whole sweep (cell resources return at submission, so the sweep runs in parallel
however many cells there are). Its outputs are the seed's final product: the training execution
id per cell, plus each cell's metrics and model datums, and the test sets (`test/*` output datums) of
the preprocess nodes named in `test_sets`, which the prediction reads (this stack's data, never `…/latest`). A failed cell fails this resource with the cell's
name and a pointer to its logs; the cells that finished stay finished, and the next `pulumi up` replaces
only the failed one and waits again. With `min_success_ratio` below 1 and met (parallel mode), the
failed cells are left out instead and listed in `failed_cells` (name, node, status, log); the prediction
runs on the others and again, with every model, once the next `pulumi up` re-ran them.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, ReadResult, Resource, UpdateResult

from providers.api.client import ValohaiClient
from providers.api.credentials import client
from providers.api.errors import ValohaiTransient
from providers.api.statuses import CREATED, DONE, ERROR, is_failed, is_terminal
from providers.api.waiting import WaitCancelled, WaitTimeout, summarize, wait_for
from providers.resources.adoption import retry_transient
from providers.resources.base import ValohaiProvider, input_view, integral_numbers, progress
from providers.resources.executions import failure_message
from providers.resources.packed import open_packed_outputs, pack, unpack
from providers.resources.polling import PipelineSweepReader, backoff_for
from providers.resources.run_control import ended_early, wait_seconds

METRIC_KEYS = ("val_accuracy", "val_loss", "accuracy", "loss")
PREDICT_CELL = "(prediction)"
# Values with an entry per cell, packed (providers/resources/packed.py): the `cells` input (echoed as an output)
# and these outputs. As objects they were ~16,000 values of this one resource at 1,000 cells, which the SDK
# converts one by one at each read, check and diff, in the provider and in the program (~0.6 s of the provider's
# CPU per 1,000-cell no-change preview; bench/README.md, "No-change preview cost"). `TrainingResults` opens them
# again, so the program and the stack's outputs see objects.
PACKED_OUTPUTS = ("training_execution_ids", "metrics", "model_uris")


def cell_state(pipeline: Mapping[str, Any], node_name: str) -> tuple[str, dict | None]:
    """A cell's status is its node's, except that a pipeline that ended takes the unfinished node with it."""
    node = next((n for n in pipeline.get("nodes", []) if n["name"] == node_name), None)
    if node is None:
        return ERROR, None
    execution = node.get("execution")
    status = (execution or {}).get("status") or node.get("status") or CREATED
    if status != DONE and is_terminal(pipeline.get("status")):
        status = pipeline["status"] if is_failed(pipeline["status"]) else ERROR
    return status, execution


def reused_cells(watched: Mapping[str, tuple[str, str]], executions: Mapping[str, dict | None]) -> dict[str, str]:
    """Cell -> `pipeline #N` for cells whose train node is a mimic: its execution ran in an earlier pipeline
    (providers.sweep.reuse), and that execution, not a new one, is the cell's training execution."""
    return {
        name: f"pipeline #{execution.get('pipeline_counter')}"
        for name, execution in sorted(executions.items())
        if name != PREDICT_CELL and execution and execution.get("pipeline") not in (None, watched[name][0])
    }


def partial_success(states: Mapping[str, str], cells: int, ratio: float) -> bool:
    """Whether the sweep may go on without its failed cells: `min_success_ratio` below 1, at least that
    share of the cells completed (at least one), and the prediction (single mode's node) not failed."""
    if ratio >= 1 or states.get(PREDICT_CELL, DONE) != DONE:
        return False
    done = sum(1 for name, status in states.items() if name != PREDICT_CELL and status == DONE)
    return done > 0 and done / cells >= ratio


def carries_results(execution: Mapping[str, Any]) -> bool:
    """Whether a finished node's execution, as its pipeline was read, carries its outputs and metadata in full.

    Why: reading them per execution is two requests per cell, 2,000 for a 1,000-cell sweep after the last cell
    ends. An execution's detail carries `outputs` on Valohai (valohai-cli 0.37,
    valohai_cli/commands/execution/outputs.py, asks for `exclude: outputs` to leave them out) and
    `cumulative_metadata`; the local backend nests that detail in each pipeline node. Whether Valohai's
    pipeline nodes nest the execution in full is unverified: where they do not, each execution is read.
    """
    return isinstance(execution.get("outputs"), list) and isinstance(execution.get("cumulative_metadata"), Mapping)


def metadata_of(api: ValohaiClient, execution: Mapping[str, Any]) -> Mapping[str, Any]:
    """A finished execution's cumulative metadata, from the pipeline's read when it carries it."""
    if carries_results(execution):
        return execution["cumulative_metadata"]
    return api.get_execution(execution["id"], exclude="outputs,events").get("cumulative_metadata") or {}


def outputs_of(api: ValohaiClient, execution: Mapping[str, Any]) -> list[dict]:
    """A finished execution's output datums, from the pipeline's read when it carries them."""
    if carries_results(execution):
        return list(execution["outputs"])
    return api.execution_outputs(execution["id"])


def failure_log(api: ValohaiClient, execution: Mapping[str, Any] | None, pipeline_counter: int | None) -> str:
    """Where a failed cell's log is: its execution's events, else its pipeline."""
    if execution and execution.get("id"):
        events = api.url(f"executions/{execution['id']}/events/")
        return f"`vh execution logs {execution.get('counter')}` or {events}"
    return f"pipeline #{pipeline_counter} (`vh pipeline list`)"


class TrainingResultsProvider(ValohaiProvider):
    update_keys = ("cells", "predict", "timeout_seconds", "test_sets")
    replace_keys = ("host",)
    INPUTS = (
        "host",
        "cells",
        "predict",
        "timeout_seconds",
        "test_sets",
        "poll_interval_seconds",
        "run_control",
        "min_success_ratio",
    )

    def label(self, props, id_):
        return "results"

    def check_inputs(self, news):
        cells = unpack(news.get("cells"))
        if isinstance(cells, dict) and not cells:
            return [("cells", "the sweep has no cells: set harbors and epochs")]
        return []

    def create(self, props: dict) -> CreateResult:
        return CreateResult("training-results", self._collect(props))

    def update(self, id_: str, olds: dict, news: dict) -> UpdateResult:
        return UpdateResult(self._collect(news))

    def read(self, id_: str, props: dict) -> ReadResult:
        """Derived from the cells, which refresh themselves; costs no API call."""
        return ReadResult(id_, props, inputs=input_view(props, self.INPUTS))

    def delete(self, id_: str, props: dict) -> None:
        """Nothing remote belongs to this resource."""

    def _collect(self, props: dict) -> dict:
        props = integral_numbers(props)
        api = client(props["host"])
        cells = unpack(props["cells"])
        watched: dict[str, tuple[str, str]] = {name: (c["pipeline"], c["node"]) for name, c in cells.items()}
        if props.get("predict"):
            watched[PREDICT_CELL] = (props["predict"]["pipeline"], props["predict"]["node"])
        executions: dict[str, dict | None] = {}
        pipelines_done: dict[str, dict] = {}
        pipeline_counters: dict[str, int | None] = {}

        reader = PipelineSweepReader(api)

        def poll() -> dict[str, str]:
            """One round: every unfinished pipeline read at once (polling.py: one list request)."""
            fresh = reader.read({p for p, _ in watched.values() if p not in pipelines_done})
            states = {}
            for name, (pipeline_id, node_name) in watched.items():
                pipeline = pipelines_done.get(pipeline_id) or fresh[pipeline_id]
                states[name], executions[name] = cell_state(pipeline, node_name)
            for pipeline_id, pipeline in fresh.items():
                pipeline_counters[pipeline_id] = pipeline.get("counter")
                if is_terminal(pipeline.get("status")):
                    pipelines_done[pipeline_id] = pipeline
            return states

        last_line = {"summary": ""}

        def report(states: Mapping[str, str], elapsed: float) -> None:
            summary = summarize(states)
            if summary != last_line["summary"]:  # node-level moves that change no count stay quiet
                last_line["summary"] = summary
                progress(f"sweep: {summary} ({elapsed:.0f}s)")

        def stop(names: list[str]) -> None:
            for pipeline_id in sorted({watched[n][0] for n in names}):
                retry_transient(partial(api.stop_pipeline, pipeline_id), what=f"stopping pipeline {pipeline_id}")

        try:
            states = wait_for(
                poll,
                timeout=wait_seconds(props, float(props["timeout_seconds"])),
                on_progress=report,
                tolerate=(ValohaiTransient,),
                backoff=backoff_for(props["host"], props.get("poll_interval_seconds")),
            )
        except (WaitTimeout, WaitCancelled) as exc:
            raise ended_early(exc, props, stop) from None
        failed = sorted(n for n, s in states.items() if s != DONE)
        lines = {
            n: failure_message(api, executions[n] or {"status": states[n]}, n, pipeline_counters.get(watched[n][0]))
            for n in failed
        }
        ratio = float(props.get("min_success_ratio") or 1.0)
        if failed and not partial_success(states, len(cells), ratio):
            needs = f" (min_success_ratio {ratio:g} not met)" if ratio < 1 else ""
            raise RuntimeError(
                f"{len(failed)} of {len(states)} sweep cells failed{needs}; finished cells are kept and the "
                f"next `pulumi up` re-runs only these:\n  " + "\n  ".join(lines.values())
            )
        for n in failed:
            progress(f"sweep: {lines[n]} (left out: min_success_ratio {ratio:g} is met)")
        failed_cells = [
            {
                "name": n,
                "node": watched[n][1],
                "status": states[n],
                "log": failure_log(api, executions[n], pipeline_counters.get(watched[n][0])),
            }
            for n in failed
        ]
        executions = {n: e for n, e in executions.items() if n not in failed}
        test_sets = {
            harbor: self._test_set(
                api, pipelines_done.get(where["pipeline"]) or api.get_pipeline(where["pipeline"]), where["node"]
            )
            for harbor, where in sorted((props.get("test_sets") or {}).items())
        }
        return {
            **input_view(props, self.INPUTS),
            **self._results(api, executions),
            "test_set_uris": test_sets,
            "reused_cells": reused_cells(watched, executions),
            "failed_cells": failed_cells,
        }

    @staticmethod
    def _test_set(api: ValohaiClient, pipeline: Mapping[str, Any], node_name: str) -> list[str]:
        """`datum://` URIs of a preprocess node's `test/…` outputs."""
        _, execution = cell_state(pipeline, node_name)
        if not execution:
            raise RuntimeError(f"pipeline #{pipeline.get('counter')} has no execution for node {node_name}")
        return sorted(f"datum://{d['id']}" for d in outputs_of(api, execution) if d["name"].startswith("test/"))

    @staticmethod
    def _results(api: ValohaiClient, executions: Mapping[str, dict | None]) -> dict:
        ids, metrics, models = {}, {}, {}
        for name, execution in sorted(executions.items()):
            if name == PREDICT_CELL or execution is None:
                continue
            ids[name] = execution["id"]
            meta = metadata_of(api, execution)
            metrics[name] = {k: meta[k] for k in METRIC_KEYS if k in meta}
            models[name] = sorted(
                f"datum://{d['id']}" for d in outputs_of(api, execution) if d["name"].endswith((".keras", ".json"))
            )
        predict = executions.get(PREDICT_CELL)
        return {
            "training_execution_ids": pack(ids),
            "metrics": pack(metrics),
            "model_uris": pack(models),
            "prediction_execution_id": predict["id"] if predict else None,
        }


class TrainingResults(Resource, module="valohai", name="TrainingResults"):
    training_execution_ids: pulumi.Output[dict]
    metrics: pulumi.Output[dict]
    model_uris: pulumi.Output[dict]
    prediction_execution_id: pulumi.Output[str]
    test_set_uris: pulumi.Output[dict]
    reused_cells: pulumi.Output[dict]
    failed_cells: pulumi.Output[list]

    def __init__(
        self,
        name: str,
        *,
        host: Any,
        cells: Any,
        timeout_seconds: float,
        predict: Any = None,
        test_sets: Any = None,
        poll_interval_seconds: float | None = None,
        run_control: Any = None,
        min_success_ratio: float = 1.0,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            TrainingResultsProvider(),
            name,
            {
                **({"poll_interval_seconds": poll_interval_seconds} if poll_interval_seconds else {}),
                "host": host,
                "cells": pack(pulumi.Output.from_input(cells)),
                "predict": predict,
                "test_sets": test_sets,
                "timeout_seconds": timeout_seconds,
                "run_control": run_control,
                "min_success_ratio": min_success_ratio,
                "training_execution_ids": None,
                "metrics": None,
                "model_uris": None,
                "prediction_execution_id": None,
                "test_set_uris": None,
                "reused_cells": None,
                "failed_cells": None,
            },
            opts,
        )
        open_packed_outputs(self, PACKED_OUTPUTS)
