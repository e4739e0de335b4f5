"""`Prediction`: runs `predict-models` with every trained model and brings the sweep report home.

Parallel mode posts the execution (the seed's final step, with `exec_ids` and the models as inputs);
single mode adopts the predict node's execution of the sweep pipeline. Either way the report
(`predictions.json`, heatmap, HTML gallery, sample images) is downloaded into `report_dir`, so a user
can open it without any Valohai access.

Its key is the predict node's content key (the step, its files, the harbors, and upstream every cell's
train key and every test set's preprocess key), computed in the program: known at preview, while the
payload (execution ids, model datums) is not. The diff compares keys only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, ReadResult, Resource

from providers.api.client import ValohaiClient
from providers.api.credentials import client
from providers.resources.base import ValohaiProvider, input_view, integral_numbers, is_unknown, progress
from providers.resources.executions import (
    read_execution_backed,
    stop_running_execution,
    submit_or_adopt_execution,
    wait_for_execution,
)
from providers.resources.packed import open_packed_outputs, pack, pack_identity, stored_project, unpack
from providers.resources.polling import project_of
from providers.sweep.identity import content_key, content_tag

PREDICTION_TIMEOUT_SECONDS = 60 * 60
# predictions.json, packed as providers/resources/training_results.py packs its per-cell outputs (~6,000 values at
# 1,000 cells, converted one by one at each read and diff); `Prediction` opens it again for the program.
PACKED_OUTPUTS = ("summary",)


def download_report(api: ValohaiClient, execution_id: str, report_dir: Path) -> dict:
    """Save every output of the prediction under report_dir; return the parsed predictions.json."""
    report_dir.mkdir(parents=True, exist_ok=True)
    summary: dict = {}
    root = report_dir.resolve()
    for datum in api.execution_outputs(execution_id):
        target = (report_dir / datum["name"]).resolve()
        if root not in target.parents:
            raise RuntimeError(f"refusing to write output {datum['name']!r} outside {report_dir}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(api.download(datum["id"]))
        if datum["name"] == "predictions.json":
            summary = json.loads(target.read_text())
    return summary


def prediction_tag(key: str, missing_cells: list[str] | None) -> str:
    """The adoption tag: the key's, plus the cells left out, so a prediction made without them is never
    adopted once they are back (and a full prediction keeps the tag it always had)."""
    if not missing_cells:
        return content_tag(key)
    return content_tag(content_key(key, "without", sorted(missing_cells)))


class PredictionProvider(ValohaiProvider):
    # `missing_cells`: the cells the last run left out (`min_success_ratio`); when they come back, re-run.
    replace_keys = ("host", "key", "missing_cells")
    update_keys = ()
    replace_word = "re-run"
    stop_before_replace = True
    INPUTS = (
        "host",
        "payload",
        "execution_id_from_pipeline",
        "stack",
        "report_dir",
        "label",
        "key",
        "identity",
        "run_control",
        "missing_cells",
    )
    KEPT_INPUTS = tuple(k for k in INPUTS if k != "payload")  # as for pipelines: the payload is kept once

    def diff(self, _id, olds, news):
        """Not known at preview when the results update: a re-run only if the last run left cells out
        (they may be back now); a prediction that had every cell is not planned to re-run for it."""
        if is_unknown(news.get("missing_cells")) and not olds.get("missing_cells"):
            news = {**news, "missing_cells": olds.get("missing_cells")}
        return super().diff(_id, olds, news)

    def normalized(self, key, value):
        if key == "missing_cells" and not value and not is_unknown(value):
            return []  # state written before partial success existed has no value: the same as none missing
        return super().normalized(key, value)

    def check_inputs(self, news):
        payload, adopted = news.get("payload"), news.get("execution_id_from_pipeline")
        if not payload and not adopted and not is_unknown(payload) and not is_unknown(adopted):
            return [("payload", "a prediction needs either a payload or the predict node's execution id")]
        return []

    def create(self, props: dict) -> CreateResult:
        props = integral_numbers(props)
        api = client(props["host"])
        if props.get("execution_id_from_pipeline"):
            execution = api.get_execution(props["execution_id_from_pipeline"], exclude="outputs")
        else:
            key = props["key"]
            execution = submit_or_adopt_execution(
                api, unpack(props["payload"]), prediction_tag(key, props.get("missing_cells"))
            )
            progress(f"prediction: execution #{execution.get('counter')}")
        execution = wait_for_execution(
            api, execution, label="prediction", timeout=PREDICTION_TIMEOUT_SECONDS, report=progress, props=props
        )
        report_dir = Path(props["report_dir"])
        summary = download_report(api, execution["id"], report_dir)
        progress(f"prediction: report saved in {report_dir}")
        return CreateResult(
            execution["id"],
            {
                **input_view(props, self.KEPT_INPUTS),
                "project_id": project_of(execution),
                "status": execution["status"],
                "counter": execution.get("counter"),
                "summary": pack(summary),
                "report_html": str(report_dir / "report" / "index.html"),
                "heatmap_png": str(report_dir / "report" / "heatmap.png"),
            },
        )

    def read(self, id_: str, props: dict) -> ReadResult:
        return read_execution_backed(id_, props, project_id=stored_project(props), counter=props.get("counter"))

    def delete(self, id_: str, props: dict) -> None:
        """A finished prediction is a record; a running one is stopped."""
        stop_running_execution(client(props["host"]), id_, "the prediction")


class Prediction(Resource, module="valohai", name="Prediction"):
    summary: pulumi.Output[dict]
    report_html: pulumi.Output[str]
    heatmap_png: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        host: Any,
        stack: str,
        report_dir: str,
        key: str,
        identity: dict,
        payload: Any = None,
        execution_id_from_pipeline: Any = None,
        run_control: Any = None,
        missing_cells: Any = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            PredictionProvider(),
            name,
            {
                "host": host,
                "stack": stack,
                "report_dir": report_dir,
                "label": "prediction",
                "key": key,
                "identity": pack_identity(identity),
                "payload": pack(payload),
                "execution_id_from_pipeline": execution_id_from_pipeline,
                "run_control": run_control,
                "missing_cells": missing_cells,
                "status": None,
                "counter": None,
                "summary": None,
                "report_html": None,
                "heatmap_png": None,
            },
            opts,
        )
        open_packed_outputs(self, PACKED_OUTPUTS)
