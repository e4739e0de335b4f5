"""The stack's resources, declared from the sweep config (called by `stacks/__main__.py`).

Config (project namespace `valohai-sweep`, see stacks/Pulumi.local.yaml):
`harbors`, `epochs`, `mode` (parallel|single), `training` {learning_rate, batch_size, validation_split},
`data` {image_size, images_per_class, test_images_per_harbor, seed}, `wait_timeout_minutes`, `report_dir`
(default reports/<stack>), `steps` {<step>: {environment, image, time_limit, priority, environment_variables,
secret_environment_variables}}, `secrets` {NAME: value} (secret config; stacks/preflight.py `step_secrets`);
`valohai:host`, `valohai:project` (name or id), `valohai:token` (secret; `VALOHAI_API_TOKEN` fallback).

Every config problem, a missing token and an unreachable host stop the program with one message before
any resource is registered, so an invalid stack creates nothing. Every resource's content key is
computed here, from values known at preview (`providers.sweep.identity`; see `compute_keys`), and
passed as the `key` and `identity` inputs: the providers' diffs compare keys, never payloads. Resource
names and export names are what state and users see: changing one re-creates the resource or breaks a
consumer of the outputs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from valohai_yaml.objs import Config

from providers.api.client import ValohaiClient, redact_url
from providers.api.credentials import TOKEN_ENV, missing_token_message
from providers.resources.code_package import CodePackage, build_package, commit_identifier
from providers.resources.harbor_dataset import HarborDataset
from providers.resources.pipelines import SweepPipeline, TrainingPipeline
from providers.resources.prediction import Prediction
from providers.resources.training_results import TrainingResults
from providers.sweep import payloads
from providers.sweep.config import Cell, Sweep, SweepConfigError, parse_sweep
from providers.sweep.identity import node_identity, node_key, resource_key, stack_tag
from providers.sweep.reuse import tag_nodes, with_mimics
from providers.sweep.step_files import StepFilesError, step_files
from stacks import estimates, preflight
from stacks.reuse import ReusePlanner, earlier_pipeline_names, read_state_resources
from stacks.sdk_overhead import collect_less, quiet_sdk, wait_for_root

SWEEP_KEYS = (
    "harbors",
    "epochs",
    "mode",
    "training",
    "data",
    "wait_timeout_minutes",
    "steps",
    "poll_interval_seconds",
    "reuse",
    "force_rerun",
    "on_cancel",
    "on_timeout",
    "min_success_ratio",
    "budget_execution_minutes",
)
OBJECT_KEYS = ("harbors", "epochs", "training", "data", "steps", "force_rerun")


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
    keys: StackKeys
    cell_keys: dict[str, str]  # cell name -> its resource key (computed once: 1,000 cells hash a lot of JSON)
    reuse: ReusePlanner
    run_control: dict[str, Any]
    secrets: preflight.StepSecrets  # the steps' secret variables (Pulumi secrets; their names are in `sweep`)
    # names of the pipeline resources the state holds as an earlier version stored them (`cell_payload`)
    earlier_pipelines: frozenset[str] = frozenset()


@dataclass(frozen=True)
class StackKeys:
    """Every resource's identity ({node: node_identity}) and key, known before anything is made."""

    datasets: dict[str, dict]
    cells: dict[str, dict]
    prediction: dict
    sweep: dict  # single mode: every cell's nodes and the predict node


def compute_keys(root: Path, yaml_config: Config, sweep: Sweep) -> StackKeys:
    """The content identities of every node of the stack (see `providers.sweep.identity`)."""
    # Once per step, not per cell: hashing its files and serializing its definition (valohai-yaml walks the
    # whole step each time) cost milliseconds, times 1,000 cells (bench/program_cost.py).
    files: dict[str, dict[str, str]] = {}
    definitions: dict[str, dict] = {}

    def node(step: str, parameters: dict, upstream: dict) -> dict:
        if step not in files:
            definition = yaml_config.steps[step]
            try:
                files[step] = step_files(root, step, definition.command)
            except StepFilesError as exc:
                raise pulumi.RunError(str(exc)) from None
            definitions[step] = definition.serialize()
        return node_identity(definitions[step], files[step], parameters, upstream, sweep.step_settings(step))

    datasets = {
        h: {"generate": node(payloads.GENERATE_STEP, payloads.generation_parameters(h, sweep.data), {})}
        for h in sweep.harbors
    }
    generate = {h: node_key(identity["generate"]) for h, identity in datasets.items()}
    cells: dict[str, dict] = {}
    for cell in sweep.cells:
        values = payloads.cell_parameters(cell, sweep)
        pre = node(
            "preprocess-dataset",
            values[payloads.PREPROCESS_NODE],
            {"dataset": generate[cell.harbor], "labels": generate[cell.harbor]},
        )
        train = node(
            "train",
            values[payloads.TRAIN_NODE],
            {"dataset": node_key(pre), "dataset_name": node_key(pre)},
        )
        cells[cell.name] = {payloads.PREPROCESS_NODE: pre, payloads.TRAIN_NODE: train}
    test_cells = payloads.test_set_cells(sweep.cells)
    predict = node(
        payloads.PREDICT_STEP,
        {"harbours": list(sweep.harbors)},
        {
            "models": {name: node_key(c[payloads.TRAIN_NODE]) for name, c in cells.items()},
            "dataset": {h: node_key(cells[c.name][payloads.PREPROCESS_NODE]) for h, c in test_cells.items()},
            "test_labels": {h: generate[h] for h in sweep.harbors},
        },
    )
    sweep_nodes = {f"{n}-{cell.slug}": identity for cell in sweep.cells for n, identity in cells[cell.name].items()}
    sweep_nodes[payloads.PREDICT_NODE] = predict
    return StackKeys(datasets=datasets, cells=cells, prediction={payloads.PREDICT_NODE: predict}, sweep=sweep_nodes)


def read_sweep(config: pulumi.Config) -> Sweep:
    raw: dict[str, Any] = {}
    for key in SWEEP_KEYS:
        value = read_value(config, key)
        if value is not None:
            raw[key] = value
    try:
        return parse_sweep(raw)
    except SweepConfigError as exc:
        raise pulumi.RunError(f"invalid stack config: {exc}") from None


def read_value(config: pulumi.Config, key: str) -> Any:
    """A list or mapping key as JSON; a plain string (`harbors: harbor_A,harbor_B`) as the string, which
    `parse_sweep` accepts for lists and names as the wrong shape otherwise."""
    if key not in OBJECT_KEYS:
        return config.get(key)
    try:
        return config.get_object(key)
    except pulumi.ConfigTypeError:
        return config.get(key)


def read_connection(valohai: pulumi.Config) -> tuple[str, str]:
    """`valohai:host` (without a trailing slash: cosmetic) and `valohai:project`, checked, with a token
    available and the host reachable."""
    host = valohai.get("host")
    project = valohai.get("project")
    if not host or not host.startswith(("http://", "https://")):
        raise pulumi.RunError(
            f"valohai:host must be an http(s) URL, got {redact_url(host) if host else host!r}: "
            f"run `pulumi config set valohai:host http://127.0.0.1:8040`"
        )
    if not project:
        raise pulumi.RunError("valohai:project is not set: run `pulumi config set valohai:project <name or id>`")
    if valohai.get_secret("token") is None and not os.environ.get(TOKEN_ENV):
        raise pulumi.RunError(missing_token_message())
    preflight.run(host, project, valohai)
    return host.rstrip("/"), project


def read_project_files(root: Path) -> tuple[Config, str]:
    """valohai.yaml (checked for what the sweep needs) and the code package's commit identifier."""
    try:
        yaml_config = payloads.load_config((root / "valohai.yaml").read_text())
        commit = commit_identifier(build_package(root))
    except (payloads.PayloadError, FileNotFoundError) as exc:
        raise pulumi.RunError(str(exc)) from None
    return yaml_config, commit


def valohai_client(host: str) -> ValohaiClient:
    return ValohaiClient(host, pulumi.Config("valohai").get("token") or os.environ.get(TOKEN_ENV) or "")


def project_pipelines(api: ValohaiClient, project: str) -> Callable[[], list[dict]]:
    """The project's current pipelines, shared by reuse and estimates: one listing per run instead of one
    each. The listing (paged) starts now, in a thread of its own with a client of its own, and the returned
    callable waits for it (re-raising its error): at 1,000 cells it takes ~1.5 s, as long as the state read
    that reuse makes meanwhile (stacks/reuse.py), so the two overlap instead of adding up."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="project-pipelines")
    listing = pool.submit(lambda: api.list_pipelines(api.resolve_project(project)["id"]))
    pool.shutdown(wait=False)
    return listing.result


def declare_shared(root: Path) -> StackContext:
    """Read and validate the config, then declare the code package and one dataset per harbor."""
    stack = pulumi.get_stack()
    config = pulumi.Config()
    sweep = read_sweep(config)
    host, project = read_connection(pulumi.Config("valohai"))
    listed = project_pipelines(valohai_client(host), project)
    yaml_config, commit = read_project_files(root)
    secrets = preflight.check_steps(valohai_client(host), config, sweep.steps)

    api = valohai_client(host)
    state = read_state_resources(warn=sweep.reuse)
    planner = ReusePlanner.load(api, project, stack, sweep.reuse, state=lambda: state, current=listed)
    keys = compute_keys(root, yaml_config, sweep)
    cell_keys = {c.name: resource_key("cell", stack, keys.cells[c.name]) for c in sweep.cells}
    # may refuse: before any resource
    estimates.check(api, project, stack, sweep, keys.cells, keys.sweep, cell_keys, listed)
    code = CodePackage("code", host=host, project=project, root=str(root), commit=commit)
    # One deadline for every wait of this `pulumi up` (providers/resources/run_control.py).
    run_control = {
        "deadline": time.time() + sweep.wait_timeout_minutes * 60,
        "on_cancel": sweep.on_cancel,
        "on_timeout": sweep.on_timeout,
    }
    datasets = {
        h: HarborDataset(
            f"data-{h}",
            host=host,
            project_id=code.project_id,
            commit=code.commit,
            harbor=h,
            data=dict(sweep.data),
            stack=stack,
            key=resource_key("harbor-data", stack, keys.datasets[h]),
            identity=keys.datasets[h],
            settings=sweep.step_settings(payloads.GENERATE_STEP),
            secret_environment=secrets.for_step(payloads.GENERATE_STEP),
            run_control=run_control,
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
        tags=[stack_tag(stack)],
        keys=keys,
        cell_keys=cell_keys,
        reuse=planner,
        run_control=run_control,
        secrets=secrets,
        earlier_pipelines=earlier_pipeline_names(state),
    )


def reuse_step(ctx: StackContext, key: str, identity: dict, cell_of: dict[str, str]) -> Callable[[dict], dict]:
    """What turns a payload into the one sent: node tags and, for nodes whose key completed before, mimic nodes
    (stacks/reuse.py). The plan is made now (it logs the plan's lines); the returned function applies it.

    `cell_of` maps a node name to its cell's name (or "prediction"); nodes of `force_rerun` cells (and then the
    predict node they feed) are never reused.
    """
    node_of = {name: name.split("-", 1)[0] for name in identity}  # train-harbor_A-epochs-2 -> train
    skip = {name for name, cell in cell_of.items() if cell in ctx.sweep.force_rerun}
    if skip and payloads.PREDICT_NODE in identity:
        skip.add(payloads.PREDICT_NODE)  # fed by the forced cells' new models: it runs too
    plan = ctx.reuse.plan(key, identity, cell_of, node_of, skip)

    return lambda payload: with_mimics(tag_nodes(payload, identity), plan, cell_of)


def cell_resource_name(cell: Cell) -> str:
    """A cell's resource name, the last part of its URN."""
    return f"cell-{cell.slug}"


def cell_payload(ctx: StackContext, cell: Cell) -> pulumi.Output:
    """One cell's pipeline payload, reuse planned (`reuse_step`), once the project and the harbor's data are
    known.

    A new cell takes everything from its harbor's dataset (the dataset's project id is the code package's,
    passed in as an input, so the cell is submitted to the project its data was made in; the commit is known
    here), so it depends on one resource instead of two. The engine stores a resource's dependencies twice (its
    list and the payload's property dependencies) and encodes them at every checkpoint of an `up`: 600 resources
    shaped like cells took 52.2 / 51.2 s with two, 50.9 / 47.4 with one (bench/state_shape.py --deps;
    bench/README.md, "State shape"). The order holds: the dataset depends on the code package. A cell that an
    earlier version made keeps its two (the project id from the package), as the engine rewrites into state a
    resource whose dependencies changed (pulumi/pulumi pkg/backend/snapshot.go `mustWrite`): an upgrade would
    otherwise rewrite every stored cell once, for nothing.
    """
    dataset = ctx.datasets[cell.harbor]
    identity = ctx.keys.cells[cell.name]
    finish = reuse_step(ctx, ctx.cell_keys[cell.name], identity, {name: cell.name for name in identity})

    def build(args: list[Any]) -> dict:
        # built and reuse-planned in one `apply`: the SDK walks every value an apply returns (looking for
        # unknowns), ~150 per payload, and a 1,000-cell preview spent ~1 s of the program's CPU in those walks
        return finish(
            payloads.training_pipeline(
                ctx.yaml_config,
                commit=ctx.commit,
                project_id=args[0],
                cell=cell,
                sweep=ctx.sweep,
                data={"images": args[1], "labels": args[2]},
                tags=ctx.tags,
            )
        )

    earlier = cell_resource_name(cell) in ctx.earlier_pipelines
    project_id = ctx.code.project_id if earlier else dataset.project_id
    inputs = pulumi.Output.all(project_id, dataset.images, dataset.labels)
    return ctx.secrets.added_to(inputs.apply(build))


def prediction_payload(ctx: StackContext, results: TrainingResults) -> pulumi.Output:
    """The predict-models execution's payload, once every cell's training is done."""
    payload = pulumi.Output.all(
        ctx.code.project_id,
        results.training_execution_ids,
        results.model_uris,
        ctx.data_by_harbor,
        results.test_set_uris,
        results.reused_cells,
    ).apply(
        lambda args: payloads.prediction_execution(
            commit=ctx.commit,
            project_id=args[0],
            training_execution_ids=args[1],
            models=[uri for name in sorted(args[2]) for uri in args[2][name]],
            harbors=list(ctx.sweep.harbors),
            data_by_harbor=args[3],
            test_sets=args[4],
            tags=ctx.tags,
            settings=ctx.sweep.step_settings(payloads.PREDICT_STEP),
            reused_cells=args[5],
        )
    )
    return ctx.secrets.added_to(payload)


def declare_parallel(ctx: StackContext) -> tuple[TrainingResults, Prediction]:
    """One TrainingPipeline per cell, the results of all of them, and a prediction execution fed by them."""
    cells = {
        cell.name: TrainingPipeline(
            cell_resource_name(cell),
            host=ctx.host,
            payload=cell_payload(ctx, cell),
            label=cell.name,
            key=ctx.cell_keys[cell.name],
            identity=ctx.keys.cells[cell.name],
        )
        for cell in ctx.sweep.cells
    }
    results = TrainingResults(
        "results",
        host=ctx.host,
        timeout_seconds=ctx.sweep.wait_timeout_minutes * 60,
        poll_interval_seconds=ctx.sweep.poll_interval_seconds,
        run_control=ctx.run_control,
        min_success_ratio=ctx.sweep.min_success_ratio,
        cells={name: {"pipeline": p.id, "node": payloads.TRAIN_NODE} for name, p in cells.items()},
        test_sets={
            h: {"pipeline": cells[c.name].id, "node": payloads.PREPROCESS_NODE}
            for h, c in payloads.test_set_cells(ctx.sweep.cells).items()
        },
    )
    prediction = Prediction(
        "prediction",
        host=ctx.host,
        stack=ctx.stack,
        report_dir=ctx.report_dir,
        key=resource_key("prediction", ctx.stack, ctx.keys.prediction),
        identity=ctx.keys.prediction,
        run_control=ctx.run_control,
        payload=prediction_payload(ctx, results),
        missing_cells=results.failed_cells.apply(lambda failed: sorted(c["name"] for c in failed or [])),
    )
    pulumi.export("training_pipelines", {name: p.counter for name, p in cells.items()})
    pulumi.export(
        "content_keys", {**ctx.cell_keys, "prediction": resource_key("prediction", ctx.stack, ctx.keys.prediction)}
    )
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
    payload = ctx.secrets.added_to(payload)
    cell_of = {f"{n}-{c.slug}": c.name for c in ctx.sweep.cells for n in ctx.keys.cells[c.name]}
    cell_of[payloads.PREDICT_NODE] = "prediction"
    big = SweepPipeline(
        "sweep",
        host=ctx.host,
        payload=payload.apply(
            reuse_step(ctx, resource_key("sweep", ctx.stack, ctx.keys.sweep), ctx.keys.sweep, cell_of)
        ),
        label=title,
        key=resource_key("sweep", ctx.stack, ctx.keys.sweep),
        identity=ctx.keys.sweep,
    )
    results = TrainingResults(
        "results",
        host=ctx.host,
        timeout_seconds=ctx.sweep.wait_timeout_minutes * 60,
        poll_interval_seconds=ctx.sweep.poll_interval_seconds,
        run_control=ctx.run_control,
        cells={c.name: {"pipeline": big.id, "node": f"{payloads.TRAIN_NODE}-{c.slug}"} for c in ctx.sweep.cells},
        predict={"pipeline": big.id, "node": payloads.PREDICT_NODE},
    )
    prediction = Prediction(
        "prediction",
        host=ctx.host,
        stack=ctx.stack,
        report_dir=ctx.report_dir,
        key=resource_key("prediction", ctx.stack, ctx.keys.prediction),
        identity=ctx.keys.prediction,
        run_control=ctx.run_control,
        execution_id_from_pipeline=results.prediction_execution_id,
    )
    pulumi.export("sweep_pipeline", big.counter)
    pulumi.export(
        "content_keys",
        {
            title: resource_key("sweep", ctx.stack, ctx.keys.sweep),
            "prediction": resource_key("prediction", ctx.stack, ctx.keys.prediction),
        },
    )
    return results, prediction


def export_results(ctx: StackContext, results: TrainingResults, prediction: Prediction) -> None:
    pulumi.export("commit", ctx.code.commit)
    pulumi.export("training_execution_ids", results.training_execution_ids)
    pulumi.export("metrics", results.metrics)
    pulumi.export("reused_cells", results.reused_cells)
    pulumi.export("failed_cells", results.failed_cells)
    pulumi.export("prediction_execution_id", prediction.id)
    pulumi.export("predictions", prediction.summary)
    pulumi.export("report", prediction.report_html)


def build_stack(root: Path) -> None:
    """Declare the whole stack for the project at `root` (the folder holding valohai.yaml and steps/)."""
    quiet_sdk()
    collect_less()
    ctx = declare_shared(root)
    wait_for_root()  # before the cells: stacks/sdk_overhead.py says why
    declare = declare_parallel if ctx.sweep.mode == "parallel" else declare_single
    results, prediction = declare(ctx)
    export_results(ctx, results, prediction)
    pulumi.export("reuse_plan", ctx.reuse.plans)
    ctx.reuse.summarize()
