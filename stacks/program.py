"""The stack's resources, declared from the sweep config (called by `stacks/__main__.py`).

Config (project namespace `valohai-sweep`, see stacks/Pulumi.local.yaml):
`harbors`, `epochs`, `mode` (parallel|single), `training` {learning_rate, batch_size, validation_split},
`data` {image_size, images_per_class, test_images_per_harbor, seed}, `wait_timeout_minutes`, `report_dir`
(default reports/<stack>);
`valohai:host`, `valohai:project` (name or id), `valohai:token` (secret; `VALOHAI_API_TOKEN` fallback).

Every config problem, a missing token and an unreachable host stop the program with one message before
any resource is registered, so an invalid stack creates nothing. Resource names and export names are
what state and users see: changing one re-creates the resource or breaks a consumer of the outputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import requests
from valohai_yaml.objs import Config

from providers.api.credentials import TOKEN_ENV, missing_token_message
from providers.resources.code_package import CodePackage, build_package, commit_identifier, files_hash
from providers.resources.harbor_dataset import HarborDataset
from providers.resources.pipelines import SweepPipeline, TrainingPipeline
from providers.resources.prediction import Prediction
from providers.resources.training_results import TrainingResults
from providers.sweep import payloads
from providers.sweep.config import Cell, Sweep, SweepConfigError, parse_sweep

# What the data generator's output depends on: a change here regenerates every harbor's data.
GENERATOR_FILES = ("steps/generate_harbors.py", "steps/common.py", "steps/harbor_names.py")
SWEEP_KEYS = ("harbors", "epochs", "mode", "training", "data", "wait_timeout_minutes")
OBJECT_KEYS = ("harbors", "epochs", "training", "data")


@dataclass(frozen=True)
class StackContext:
    """What every declaration needs: the validated config and the resources all cells share."""

    stack: str
    host: str
    sweep: Sweep
    yaml_config: Config
    commit: str
    code: CodePackage
    datasets: dict[str, HarborDataset]
    data_by_harbor: pulumi.Output
    report_dir: str
    tags: list[str]


def read_sweep(config: pulumi.Config) -> Sweep:
    raw: dict[str, Any] = {}
    for key in SWEEP_KEYS:
        value = config.get_object(key) if key in OBJECT_KEYS else config.get(key)
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
        raise pulumi.RunError(
            f"cannot reach the Valohai API at valohai:host={host} ({exc.__class__.__name__}); "
            f"start the local backend (`make backend`) or fix the host"
        ) from None


def read_connection(valohai: pulumi.Config) -> tuple[str, str]:
    """`valohai:host` and `valohai:project`, checked, with a token available and the host reachable."""
    host = valohai.get("host")
    project = valohai.get("project")
    if not host or not host.startswith(("http://", "https://")):
        raise pulumi.RunError(
            f"valohai:host must be an http(s) URL, got {host!r}: "
            f"run `pulumi config set valohai:host http://127.0.0.1:8040`"
        )
    if not project:
        raise pulumi.RunError("valohai:project is not set: run `pulumi config set valohai:project <name or id>`")
    if valohai.get_secret("token") is None and not os.environ.get(TOKEN_ENV):
        raise pulumi.RunError(missing_token_message())
    check_host(host)
    return host, project


def read_project_files(root: Path) -> tuple[Config, str]:
    """valohai.yaml (checked for what the sweep needs) and the code package's commit identifier."""
    try:
        yaml_config = payloads.load_config((root / "valohai.yaml").read_text())
        commit = commit_identifier(build_package(root))
    except (payloads.PayloadError, FileNotFoundError) as exc:
        raise pulumi.RunError(str(exc)) from None
    return yaml_config, commit


def declare_shared(root: Path) -> StackContext:
    """Read and validate the config, then declare the code package and one dataset per harbor."""
    stack = pulumi.get_stack()
    config = pulumi.Config()
    sweep = read_sweep(config)
    host, project = read_connection(pulumi.Config("valohai"))
    yaml_config, commit = read_project_files(root)

    code = CodePackage("code", host=host, project=project, root=str(root), commit=commit)
    generator_key = files_hash(root, GENERATOR_FILES)
    datasets = {
        h: HarborDataset(
            f"data-{h}",
            host=host,
            project_id=code.project_id,
            commit=code.commit,
            harbor=h,
            data=dict(sweep.data),
            generator_key=generator_key,
            stack=stack,
        )
        for h in sweep.harbors
    }
    data_by_harbor = pulumi.Output.all(
        **{
            h: pulumi.Output.all(images=d.images, labels=d.labels, test_labels=d.test_labels)
            for h, d in datasets.items()
        }
    )
    report_dir = config.get("report_dir") or str(root / "reports" / stack)
    return StackContext(
        stack=stack,
        host=host,
        sweep=sweep,
        yaml_config=yaml_config,
        commit=commit,
        code=code,
        datasets=datasets,
        data_by_harbor=data_by_harbor,
        report_dir=report_dir,
        tags=[f"stack:{stack}"],
    )


def cell_payload(ctx: StackContext, cell: Cell) -> pulumi.Output:
    """One cell's pipeline payload, once the project and the harbor's data are known."""
    dataset = ctx.datasets[cell.harbor]
    return pulumi.Output.all(ctx.code.project_id, dataset.images, dataset.labels).apply(
        lambda args: payloads.training_pipeline(
            ctx.yaml_config,
            commit=ctx.commit,
            project_id=args[0],
            cell=cell,
            sweep=ctx.sweep,
            data={"images": args[1], "labels": args[2]},
            tags=ctx.tags,
        )
    )


def prediction_payload(ctx: StackContext, results: TrainingResults) -> pulumi.Output:
    """The predict-models execution's payload, once every cell's training is done."""
    return pulumi.Output.all(
        ctx.code.project_id, results.training_execution_ids, results.model_uris, ctx.data_by_harbor
    ).apply(
        lambda args: payloads.prediction_execution(
            commit=ctx.commit,
            project_id=args[0],
            training_execution_ids=args[1],
            models=[uri for name in sorted(args[2]) for uri in args[2][name]],
            harbors=list(ctx.sweep.harbors),
            data_by_harbor=args[3],
            tags=ctx.tags,
        )
    )


def declare_parallel(ctx: StackContext) -> tuple[TrainingResults, Prediction]:
    """One TrainingPipeline per cell, the results of all of them, and a prediction execution fed by them."""
    cells = {
        cell.name: TrainingPipeline(
            f"cell-{cell.slug}", host=ctx.host, payload=cell_payload(ctx, cell), stack=ctx.stack, label=cell.name
        )
        for cell in ctx.sweep.cells
    }
    results = TrainingResults(
        "results",
        host=ctx.host,
        timeout_seconds=ctx.sweep.wait_timeout_minutes * 60,
        cells={name: {"pipeline": p.id, "node": payloads.TRAIN_NODE} for name, p in cells.items()},
    )
    prediction = Prediction(
        "prediction",
        host=ctx.host,
        stack=ctx.stack,
        report_dir=ctx.report_dir,
        payload=prediction_payload(ctx, results),
    )
    pulumi.export("training_pipelines", {name: p.counter for name, p in cells.items()})
    return results, prediction


def declare_single(ctx: StackContext) -> tuple[TrainingResults, Prediction]:
    """One SweepPipeline holding every cell and the predict node; the prediction adopts that node's execution."""
    title = f"sweep-{ctx.stack}"
    payload = pulumi.Output.all(ctx.code.project_id, ctx.data_by_harbor).apply(
        lambda args: payloads.sweep_pipeline(
            ctx.yaml_config,
            commit=ctx.commit,
            project_id=args[0],
            cells=ctx.sweep.cells,
            sweep=ctx.sweep,
            data_by_harbor=args[1],
            tags=ctx.tags,
            title=title,
        )
    )
    big = SweepPipeline("sweep", host=ctx.host, payload=payload, stack=ctx.stack, label=title)
    results = TrainingResults(
        "results",
        host=ctx.host,
        timeout_seconds=ctx.sweep.wait_timeout_minutes * 60,
        cells={c.name: {"pipeline": big.id, "node": f"{payloads.TRAIN_NODE}-{c.slug}"} for c in ctx.sweep.cells},
        predict={"pipeline": big.id, "node": payloads.PREDICT_NODE},
    )
    prediction = Prediction(
        "prediction",
        host=ctx.host,
        stack=ctx.stack,
        report_dir=ctx.report_dir,
        execution_id_from_pipeline=results.prediction_execution_id,
    )
    pulumi.export("sweep_pipeline", big.counter)
    return results, prediction


def export_results(ctx: StackContext, results: TrainingResults, prediction: Prediction) -> None:
    pulumi.export("commit", ctx.code.commit)
    pulumi.export("training_execution_ids", results.training_execution_ids)
    pulumi.export("metrics", results.metrics)
    pulumi.export("prediction_execution_id", prediction.id)
    pulumi.export("predictions", prediction.summary)
    pulumi.export("report", prediction.report_html)


def build_stack(root: Path) -> None:
    """Declare the whole stack for the project at `root` (the folder holding valohai.yaml and steps/)."""
    ctx = declare_shared(root)
    declare = declare_parallel if ctx.sweep.mode == "parallel" else declare_single
    results, prediction = declare(ctx)
    export_results(ctx, results, prediction)
