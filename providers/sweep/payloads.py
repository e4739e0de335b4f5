"""Every request body the providers send, built from `valohai.yaml` with valohai-yaml.

Why here and pure: a payload decides identity (its hash is the cell key), so it must be built in one
place, deterministically, and be testable without a server. Pipelines come from valohai-yaml's
`PipelineConverter`; the single-mode pipeline is a `training-pipeline` replicated per cell plus a
predict node, written in valohai.yaml's own pipeline syntax and converted the same way.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from valohai_yaml.objs import Config, Pipeline
from valohai_yaml.pipelines.conversion import PipelineConverter

from providers.sweep.config import Cell, Sweep
from providers.sweep.step_settings import apply_to
from providers.sweep.yaml_file import parse_config

TRAINING_PIPELINE = "training-pipeline"
GENERATE_STEP = "generate-harbors"
PREDICT_STEP = "predict-models"
PREPROCESS_NODE = "preprocess"
TRAIN_NODE = "train"
PREDICT_NODE = "predict"
REUSED_PARAMETER = "reused_cells"  # predict-models: the cells whose model an earlier pipeline trained


def reused_parameter(reused: Mapping[str, str]) -> list[str]:
    """`{cell: "pipeline #7"}` as predict-models' `reused_cells` values (`harbor_A/epochs-2=pipeline #7`):
    no comma, which separates the values of a `multiple: separate` parameter on the command line."""
    return [f"{cell}={where}" for cell, where in sorted(reused.items())]


class PayloadError(ValueError):
    """valohai.yaml lacks something the sweep needs."""


def load_config(yaml_text: str) -> Config:
    try:
        config = parse_config(yaml_text)
    except Exception as exc:  # valohai-yaml raises several kinds; all mean the same to a user
        raise PayloadError(f"valohai.yaml is invalid: {exc}; run `vh lint` to see every problem") from None
    for step in (GENERATE_STEP, "preprocess-dataset", "train", PREDICT_STEP):
        if step not in config.steps:
            raise PayloadError(
                f"valohai.yaml has no step {step!r}; the sweep needs steps "
                f"generate-harbors, preprocess-dataset, train and predict-models"
            )
    if TRAINING_PIPELINE not in config.pipelines:
        raise PayloadError(f"valohai.yaml has no pipeline {TRAINING_PIPELINE!r} (nodes preprocess -> train)")
    nodes = {n.name for n in config.pipelines[TRAINING_PIPELINE].nodes}
    if not {PREPROCESS_NODE, TRAIN_NODE} <= nodes:
        raise PayloadError(
            f"pipeline {TRAINING_PIPELINE!r} must have nodes 'preprocess' and 'train', has {sorted(nodes)}"
        )
    return config


def _node(payload: Mapping[str, Any], name: str) -> dict:
    return next(n for n in payload["nodes"] if n["name"] == name)


def _apply_step_settings(converted: Mapping[str, Any], sweep: Sweep) -> None:
    """Each node template gets its step's execution settings from stack config (none: unchanged)."""
    for node in converted["nodes"]:
        template = node.get("template") or {}
        settings = sweep.step_settings(template.get("step", ""))
        if settings:
            apply_to(template, settings)


def cell_parameters(cell: Cell, sweep: Sweep) -> dict[str, dict[str, Any]]:
    """The parameters a cell sets on its preprocess and train nodes (the rest are valohai.yaml's defaults)."""
    return {
        PREPROCESS_NODE: {
            "dataset_name": cell.harbor,
            "validation_split": sweep.train["validation_split"],
            "image_size": sweep.data["image_size"],
        },
        TRAIN_NODE: {
            "dataset_name": cell.harbor,
            "epochs": cell.epochs,
            "learning_rate": sweep.train["learning_rate"],
            "batch_size": sweep.train["batch_size"],
        },
    }


def generation_parameters(harbor: str, data: Mapping[str, Any]) -> dict[str, Any]:
    return {"harbors": [harbor], **{k: data[k] for k in sorted(data)}}


def _set_cell(preprocess: dict, train: dict, cell: Cell, sweep: Sweep, data: Mapping[str, str]) -> None:
    """Point a preprocess/train node pair at one cell: its harbor's data and its epochs.

    Train's `dataset` input comes only through the edge from its own preprocess node (valohai.yaml's
    `preprocess.output.train/* -> train.input.dataset`): the step's `…_train/latest` default is dropped,
    so a cell never reads another stack's (or another data config's) training set. That pipeline edges
    override a step's input default is Valohai's documented behaviour; that real Valohai's output-edge
    glob matches a path with a folder (`train/*`) is unverified (the local backend matches the output's
    path or its file name).
    """
    values = cell_parameters(cell, sweep)
    p = preprocess["template"]
    p["parameters"].update(values[PREPROCESS_NODE])
    p["inputs"].update(dataset=[data["images"]], labels=[data["labels"]])
    t = train["template"]
    t["parameters"].update(values[TRAIN_NODE])
    t["inputs"].pop("dataset", None)


_converted: dict[tuple[int, str], tuple[Config, dict]] = {}


def _converted_training_pipeline(config: Config, commit: str) -> dict:
    """valohai-yaml's conversion of `training-pipeline`, once per config and commit: it is the same for every
    cell (the cell's values are set on a copy) and costs milliseconds (bench/program_cost.py). The config is
    kept with its conversion, so its id cannot be reused by another config while cached."""
    key = (id(config), commit)
    if key not in _converted:
        converter = PipelineConverter(config=config, commit_identifier=commit, parameter_arguments={})
        _converted[key] = (config, dict(converter.convert_pipeline(config.pipelines[TRAINING_PIPELINE])))
    return _converted[key][1]


def training_pipeline(
    config: Config,
    *,
    commit: str,
    project_id: str,
    cell: Cell,
    sweep: Sweep,
    data: Mapping[str, str],
    tags: Sequence[str],
) -> dict:
    """One cell's preprocess -> train pipeline, as the seed's parallel script posts it."""
    converted = copy.deepcopy(_converted_training_pipeline(config, commit))
    _set_cell(_node(converted, PREPROCESS_NODE), _node(converted, TRAIN_NODE), cell, sweep, data)
    _apply_step_settings(converted, sweep)
    return {"project": project_id, "title": cell.title, "tags": list(tags), **converted}


def sweep_pipeline(
    config: Config,
    *,
    commit: str,
    project_id: str,
    cells: Sequence[Cell],
    sweep: Sweep,
    data_by_harbor: Mapping[str, Mapping[str, str]],
    tags: Sequence[str],
    title: str,
) -> dict:
    """The single big pipeline: a preprocess/train pair per cell and one predict node fed by every train node."""
    base = config.pipelines[TRAINING_PIPELINE].serialize()
    nodes: list[dict] = []
    edges: list[dict] = []
    for cell in cells:
        rename = {n["name"]: f"{n['name']}-{cell.slug}" for n in base["nodes"]}
        nodes += [{**copy.deepcopy(n), "name": rename[n["name"]]} for n in base["nodes"]]
        for edge in base["edges"]:
            src_node, src_rest = edge["source"].split(".", 1)
            tgt_node, tgt_rest = edge["target"].split(".", 1)
            edges.append(
                {
                    **copy.deepcopy(edge),
                    "source": f"{rename[src_node]}.{src_rest}",
                    "target": f"{rename[tgt_node]}.{tgt_rest}",
                }
            )
        edges.append({"source": f"{TRAIN_NODE}-{cell.slug}.output.*", "target": f"{PREDICT_NODE}.input.models"})
    for cell in test_set_cells(cells).values():
        edges.append(
            {"source": f"{PREPROCESS_NODE}-{cell.slug}.output.test/*", "target": f"{PREDICT_NODE}.input.dataset"}
        )
    nodes.append({"name": PREDICT_NODE, "type": "execution", "step": PREDICT_STEP, "on-error": "stop-all"})
    pipeline = Pipeline.parse({"name": title, "nodes": nodes, "edges": edges})
    converted = PipelineConverter(config=config, commit_identifier=commit, parameter_arguments={}).convert_pipeline(
        pipeline
    )
    for cell in cells:
        _set_cell(
            _node(converted, f"{PREPROCESS_NODE}-{cell.slug}"),
            _node(converted, f"{TRAIN_NODE}-{cell.slug}"),
            cell,
            sweep,
            data_by_harbor[cell.harbor],
        )
    predict = _node(converted, PREDICT_NODE)["template"]
    harbors = list(dict.fromkeys(c.harbor for c in cells))
    predict["parameters"].update(harbours=harbors)
    predict["parameters"].pop("exec_ids", None)
    predict["parameters"].pop(REUSED_PARAMETER, None)  # set by providers.sweep.reuse.with_mimics when any is
    predict["inputs"].update(prediction_inputs(harbors, data_by_harbor, models=[], test_sets={}))
    predict["inputs"].pop("dataset", None)  # fed by the edges from this sweep's preprocess nodes
    _apply_step_settings(converted, sweep)
    return {"project": project_id, "title": title, "tags": list(tags), **converted}


def test_set_cells(cells: Sequence[Cell]) -> dict[str, Cell]:
    """Harbor -> the cell whose preprocess node's test set the prediction reads (the first cell of the harbor)."""
    chosen: dict[str, Cell] = {}
    for cell in cells:
        chosen.setdefault(cell.harbor, cell)
    return chosen


def prediction_inputs(
    harbors: Iterable[str],
    data_by_harbor: Mapping[str, Mapping[str, str]],
    models: Sequence[str],
    test_sets: Mapping[str, Sequence[str]],
) -> dict[str, list[str]]:
    """The exact test sets (datum URIs of this stack's preprocess outputs, harbor -> URIs), never `…/latest`."""
    harbors = list(harbors)
    inputs = {
        "dataset": [uri for h in harbors for uri in test_sets.get(h, [])],
        "test_labels": [data_by_harbor[h]["test_labels"] for h in harbors if data_by_harbor[h].get("test_labels")],
    }
    if models:
        inputs["models"] = list(models)
    return inputs


def generation_execution(
    *,
    commit: str,
    project_id: str,
    harbor: str,
    data: Mapping[str, Any],
    tags: Sequence[str],
    settings: Mapping[str, Any] | None = None,
) -> dict:
    body = {
        "project": project_id,
        "commit": commit,
        "step": GENERATE_STEP,
        "title": f"generate-harbors-{harbor}",
        "parameters": generation_parameters(harbor, data),
        "inputs": {},
        "tags": list(tags),
    }
    return apply_to(body, settings or {})


def prediction_execution(
    *,
    commit: str,
    project_id: str,
    training_execution_ids: Mapping[str, str],
    models: Sequence[str],
    harbors: Sequence[str],
    data_by_harbor: Mapping[str, Mapping[str, str]],
    test_sets: Mapping[str, Sequence[str]],
    tags: Sequence[str],
    settings: Mapping[str, Any] | None = None,
    reused_cells: Mapping[str, str] | None = None,
) -> dict:
    """The seed's final POST: predict-models with the training execution ids (and the models as inputs),
    and the cells whose training execution an earlier pipeline ran (`reused_cells`, for the report)."""
    body = {
        "project": project_id,
        "commit": commit,
        "step": PREDICT_STEP,
        "title": "predict-models",
        "parameters": {
            "exec_ids": [training_execution_ids[k] for k in sorted(training_execution_ids)],
            "harbours": list(harbors),
            **({REUSED_PARAMETER: reused_parameter(reused_cells)} if reused_cells else {}),
        },
        "inputs": prediction_inputs(harbors, data_by_harbor, models, test_sets),
        "tags": list(tags),
    }
    return apply_to(body, settings or {})
