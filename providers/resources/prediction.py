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
from providers.api.errors import ValohaiNotFound
from providers.api.statuses import is_terminal
from providers.resources.adoption import retry_transient
from providers.resources.base import ValohaiProvider, input_view, integral_numbers, is_unknown, progress
from providers.resources.executions import read_execution_backed, submit_or_adopt_execution, wait_for_execution
from providers.sweep.identity import content_tag

PREDICTION_TIMEOUT_SECONDS = 60 * 60


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


class PredictionProvider(ValohaiProvider):
    replace_keys = ("host", "key")
    update_keys = ()
    replace_word = "re-run"
    INPUTS = ("host", "payload", "execution_id_from_pipeline", "stack", "report_dir", "label", "key", "identity")

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
            execution = submit_or_adopt_execution(api, props["payload"], content_tag(key))
            progress(f"prediction: execution #{execution.get('counter')}")
        execution = wait_for_execution(
            api, execution, label="prediction", timeout=PREDICTION_TIMEOUT_SECONDS, report=progress
        )
        report_dir = Path(props["report_dir"])
        summary = download_report(api, execution["id"], report_dir)
        progress(f"prediction: report saved in {report_dir}")
        return CreateResult(
            execution["id"],
            {
                **input_view(props, self.INPUTS),
                "status": execution["status"],
                "counter": execution.get("counter"),
                "summary": summary,
                "report_html": str(report_dir / "report" / "index.html"),
                "heatmap_png": str(report_dir / "report" / "heatmap.png"),
            },
        )

    def read(self, id_: str, props: dict) -> ReadResult:
        return read_execution_backed(id_, props, self.INPUTS)

    def delete(self, id_: str, props: dict) -> None:
        """A finished prediction is a record; a running one is stopped."""
        api = client(props["host"])
        try:
            if not is_terminal(api.get_execution(id_, exclude="outputs,metadata,events")["status"]):
                retry_transient(lambda: api.stop_execution(id_), what=f"stopping execution {id_}")
        except ValohaiNotFound:
            pass


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
                "identity": identity,
                "payload": payload,
                "execution_id_from_pipeline": execution_id_from_pipeline,
                "status": None,
                "counter": None,
                "summary": None,
                "report_html": None,
                "heatmap_png": None,
            },
            opts,
        )
