"""The stack's resources, declared from the sweep config (called by `stacks/__main__.py`).

Config (project namespace `valohai-sweep`, see stacks/Pulumi.local.yaml):
`harbors`, `epochs`, `mode` (parallel|single), `training` {learning_rate, batch_size, validation_split},
`data` {image_size, images_per_class, test_images_per_harbor, seed}, `wait_timeout_minutes`, `report_dir`
(default reports/<stack>);
`valohai:host`, `valohai:project` (name or id), `valohai:token` (secret; `VALOHAI_API_TOKEN` fallback).

Every config problem, a missing token and an unreachable host stop the program with one message before
any resource is registered, so an invalid stack creates nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pulumi
import requests

from providers import payloads
from providers.base import TOKEN_ENV, missing_token_message
from providers.code_package import CodePackage, build_package, commit_identifier, files_hash
from providers.harbor_dataset import HarborDataset
from providers.pipelines import SweepPipeline, TrainingPipeline
from providers.prediction import Prediction
from providers.sweep import Sweep, SweepConfigError, parse_sweep
from providers.training_results import TrainingResults

GENERATOR_FILES = ("steps/generate_harbors.py", "steps/common.py")
SWEEP_KEYS = ("harbors", "epochs", "mode", "training", "data", "wait_timeout_minutes")


def read_sweep(config: pulumi.Config) -> Sweep:
    raw: dict[str, Any] = {}
    for key in SWEEP_KEYS:
        value = config.get_object(key) if key in ("harbors", "epochs", "training", "data") else config.get(key)
        if value is not None:
            raw[key] = value
    try:
        return parse_sweep(raw)
    except SweepConfigError as exc:
        raise pulumi.RunError(f"invalid stack config: {exc}") from None


def check_host(host: str) -> None:
    """Fail fast, once, with a clear message when the Valohai host cannot be reached at all."""
    try:
        requests.get(host.rstrip("/") + "/api/v0/users/me/", timeout=5)
    except requests.exceptions.RequestException as exc:
        raise pulumi.RunError(f"cannot reach the Valohai API at valohai:host={host} ({exc.__class__.__name__}); "
                              f"start the local backend (`make backend`) or fix the host") from None


def build_stack(root: Path) -> None:
    stack = pulumi.get_stack()
    config = pulumi.Config()
    valohai = pulumi.Config("valohai")
    sweep = read_sweep(config)
    host = valohai.get("host")
    project = valohai.get("project")
    if not host or not host.startswith(("http://", "https://")):
        raise pulumi.RunError(f"valohai:host must be an http(s) URL, got {host!r}: "
                              f"run `pulumi config set valohai:host http://127.0.0.1:8040`")
    if not project:
        raise pulumi.RunError("valohai:project is not set: run `pulumi config set valohai:project <name or id>`")
    if valohai.get_secret("token") is None and not os.environ.get(TOKEN_ENV):
        raise pulumi.RunError(missing_token_message())
    check_host(host)

    try:
        yaml_config = payloads.load_config((root / "valohai.yaml").read_text())
        commit = commit_identifier(build_package(root))
    except (payloads.PayloadError, FileNotFoundError) as exc:
        raise pulumi.RunError(str(exc)) from None

    code = CodePackage("code", host=host, project=project, root=str(root), commit=commit)
    generator_key = files_hash(root, GENERATOR_FILES)
    datasets = {h: HarborDataset(f"data-{h}", host=host, project_id=code.project_id, commit=code.commit, harbor=h,
                                 data=dict(sweep.data), generator_key=generator_key, stack=stack)
                for h in sweep.harbors}
    data_by_harbor = pulumi.Output.all(**{h: pulumi.Output.all(images=d.images, labels=d.labels,
                                                               test_labels=d.test_labels)
                                          for h, d in datasets.items()})
    report_dir = config.get("report_dir") or str(root / "reports" / stack)
    tags = [f"stack:{stack}"]

    if sweep.mode == "parallel":
        cells = {}
        for cell in sweep.cells:
            payload = pulumi.Output.all(code.project_id, datasets[cell.harbor].images, datasets[cell.harbor].labels).apply(
                lambda args, cell=cell: payloads.training_pipeline(
                    yaml_config, commit=commit, project_id=args[0], cell=cell, sweep=sweep,
                    data={"images": args[1], "labels": args[2]}, tags=tags))
            cells[cell.name] = TrainingPipeline(f"cell-{cell.slug}", host=host, payload=payload, stack=stack,
                                                label=cell.name)
        results = TrainingResults("results", host=host, timeout_seconds=sweep.wait_timeout_minutes * 60,
                                  cells={name: {"pipeline": p.id, "node": payloads.TRAIN_NODE} for name, p in cells.items()})
        prediction_payload = pulumi.Output.all(code.project_id, results.training_execution_ids, results.model_uris,
                                               data_by_harbor).apply(
            lambda args: payloads.prediction_execution(
                commit=commit, project_id=args[0], training_execution_ids=args[1],
                models=[uri for name in sorted(args[2]) for uri in args[2][name]], harbors=list(sweep.harbors),
                data_by_harbor=args[3], tags=tags))
        prediction = Prediction("prediction", host=host, stack=stack, report_dir=report_dir, payload=prediction_payload)
        pulumi.export("training_pipelines", {name: p.counter for name, p in cells.items()})
    else:
        payload = pulumi.Output.all(code.project_id, data_by_harbor).apply(
            lambda args: payloads.sweep_pipeline(
                yaml_config, commit=commit, project_id=args[0], cells=sweep.cells, sweep=sweep,
                data_by_harbor=args[1], tags=tags, title=f"sweep-{stack}"))
        big = SweepPipeline("sweep", host=host, payload=payload, stack=stack, label=f"sweep-{stack}")
        results = TrainingResults(
            "results", host=host, timeout_seconds=sweep.wait_timeout_minutes * 60,
            cells={c.name: {"pipeline": big.id, "node": f"{payloads.TRAIN_NODE}-{c.slug}"} for c in sweep.cells},
            predict={"pipeline": big.id, "node": payloads.PREDICT_NODE})
        prediction = Prediction("prediction", host=host, stack=stack, report_dir=report_dir,
                                execution_id_from_pipeline=results.prediction_execution_id)
        pulumi.export("sweep_pipeline", big.counter)

    pulumi.export("commit", code.commit)
    pulumi.export("training_execution_ids", results.training_execution_ids)
    pulumi.export("metrics", results.metrics)
    pulumi.export("prediction_execution_id", prediction.id)
    pulumi.export("predictions", prediction.summary)
    pulumi.export("report", prediction.report_html)
