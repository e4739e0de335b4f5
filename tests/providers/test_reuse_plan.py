"""Reuse planning (providers/sweep/reuse.py) and its stack options, without a server."""

from __future__ import annotations

import pytest

from providers.sweep.config import SweepConfigError, parse_sweep
from providers.sweep.identity import node_key, node_tag
from providers.sweep.payloads import prediction_execution
from providers.sweep.reuse import (
    REUSE_LINE,
    SUMMARY_LINE,
    Source,
    completed_sources,
    plan_lines,
    plan_reuse,
    reused_cells,
    summary_line,
    tag_nodes,
    with_mimics,
)

IDENTITY = {
    "preprocess": {"step": {"name": "preprocess-dataset"}, "parameters": {"x": 1}, "upstream": {}, "files": {}},
    "train": {"step": {"name": "train"}, "parameters": {"epochs": 2}, "upstream": {"dataset": "k"}, "files": {}},
}
TAGS = {name: node_tag(node_key(ident)) for name, ident in IDENTITY.items()}


def payload() -> dict:
    return {
        "title": "harbor_A/epochs-2",
        "nodes": [
            {"name": "preprocess", "type": "execution", "template": {"step": "preprocess-dataset", "tags": ["s"]}},
            {"name": "train", "type": "execution", "template": {"step": "train"}},
        ],
        "edges": [{"source": "preprocess.output.train/*", "target": "train.input.dataset"}],
    }


def pipeline(counter: int, *, status: str = "complete", deleted: bool = False, nodes: dict[str, str]) -> dict:
    """A pipeline as the API lists it; `nodes` maps node name -> its (and its execution's) status."""
    return {
        "id": f"p{counter}",
        "counter": counter,
        "status": status,
        "deleted": deleted,
        "nodes": [
            {
                "id": f"p{counter}-{name}",
                "name": name,
                "status": node_status,
                "execution": {
                    "id": f"e{counter}-{name}",
                    "counter": counter,
                    "status": node_status,
                    "tags": [TAGS[name]],
                },
            }
            for name, node_status in nodes.items()
        ],
    }


def test_tags_ride_on_the_execution_templates_and_mimics_replace_reused_nodes():
    tagged = tag_nodes(payload(), IDENTITY)
    assert tagged["nodes"][0]["template"]["tags"] == ["s", TAGS["preprocess"]]
    assert tagged["nodes"][1]["template"]["tags"] == [TAGS["train"]]
    assert payload()["nodes"][0]["template"]["tags"] == ["s"]  # input untouched

    sources = completed_sources([pipeline(7, nodes={"preprocess": "complete", "train": "complete"})])
    reuse = plan_reuse(IDENTITY, sources, skip={"train"})
    assert list(reuse) == ["preprocess"]
    mimicked = with_mimics(tagged, reuse)
    assert mimicked["nodes"][0] == {"type": "mimic", "name": "preprocess", "source": "p7-preprocess"}
    assert mimicked["nodes"][1] == tagged["nodes"][1]
    assert mimicked["edges"] == payload()["edges"]  # edges from a mimic feed downstream as usual
    assert plan_lines({"preprocess": "harbor_A/epochs-2"}, {"preprocess": "preprocess"}, reuse) == [
        "harbor_A/epochs-2: reuse preprocess from pipeline #7 (same key)"
    ]
    assert summary_line(1, 1) == "reuse: 1 nodes to run, 1 reused"


def test_failed_stopped_deleted_and_unfinished_sources_are_never_reused_and_the_newest_wins():
    listed = [  # newest first, as the API lists them
        pipeline(9, status="error", nodes={"preprocess": "complete", "train": "error"}),
        pipeline(8, status="stopped", nodes={"train": "stopped"}),
        pipeline(6, deleted=True, nodes={"train": "complete"}),
        pipeline(5, status="started", nodes={"train": "started"}),
        pipeline(4, nodes={"preprocess": "complete"}),
    ]
    sources = completed_sources(listed)
    assert sources[TAGS["preprocess"]].pipeline_counter == 9  # a failed pipeline's completed node is fine
    assert TAGS["train"] not in sources
    assert list(plan_reuse(IDENTITY, sources)) == ["preprocess"]


def test_reuse_and_force_rerun_stack_options():
    base = {"harbors": ["harbor_A"], "epochs": [2, 5]}
    assert parse_sweep(base).reuse is True
    assert parse_sweep({**base, "reuse": "false"}).reuse is False
    assert parse_sweep({**base, "reuse": False}).reuse is False
    with pytest.raises(SweepConfigError, match="reuse must be true or false, got 'sometimes'"):
        parse_sweep({**base, "reuse": "sometimes"})
    assert parse_sweep({**base, "force_rerun": ["harbor_A/epochs-5"]}).force_rerun == ("harbor_A/epochs-5",)
    with pytest.raises(SweepConfigError, match="force_rerun names harbor_B/epochs-2, not a cell of this sweep"):
        parse_sweep({**base, "force_rerun": "harbor_B/epochs-2"})


def sweep_payload() -> dict:
    """A single-mode payload: two cells' preprocess/train nodes and the predict node."""
    nodes = [
        {"name": f"{n}-{c}", "type": "execution", "template": {"step": n, "parameters": {}}}
        for c in ("hA-epochs-1", "hA-epochs-2")
        for n in ("preprocess", "train")
    ]
    nodes.append({"name": "predict", "type": "execution", "template": {"step": "predict-models", "parameters": {}}})
    return {"nodes": nodes, "edges": []}


SWEEP_CELLS = {
    **{f"{n}-hA-epochs-{e}": f"hA/epochs-{e}" for n in ("preprocess", "train") for e in (1, 2)},
    "predict": "prediction",
}


def source(counter: int, name: str) -> Source:
    return Source(f"p{counter}-{name}", name, f"p{counter}", counter, f"e{counter}-{name}", counter)


def test_the_predict_node_is_told_which_cells_were_reused_only_when_a_train_node_is_a_mimic():
    reuse = {
        "preprocess-hA-epochs-1": source(3, "preprocess"),
        "train-hA-epochs-1": source(3, "train"),
        "preprocess-hA-epochs-2": source(4, "preprocess"),  # its train runs: not a reused cell
    }
    out = with_mimics(sweep_payload(), reuse, SWEEP_CELLS)
    predict = next(n for n in out["nodes"] if n["name"] == "predict")
    assert predict["template"]["parameters"] == {"reused_cells": ["hA/epochs-1=pipeline #3"]}
    assert reused_cells(reuse, SWEEP_CELLS) == {"hA/epochs-1": "pipeline #3"}

    nothing = with_mimics(sweep_payload(), {"preprocess-hA-epochs-2": source(4, "preprocess")}, SWEEP_CELLS)
    assert "reused_cells" not in next(n for n in nothing["nodes"] if n["name"] == "predict")["template"]["parameters"]
    mimicked_predict = with_mimics(sweep_payload(), {**reuse, "predict": source(5, "predict")}, SWEEP_CELLS)
    assert next(n for n in mimicked_predict["nodes"] if n["name"] == "predict") == {
        "type": "mimic",
        "name": "predict",
        "source": "p5-predict",
    }


def test_the_parallel_prediction_carries_the_reused_cells_parameter_only_when_some_are():
    common = {
        "commit": "c",
        "project_id": "p",
        "training_execution_ids": {"hA/epochs-1": "e3-train"},
        "models": [],
        "harbors": ["hA"],
        "data_by_harbor": {"hA": {}},
        "test_sets": {},
        "tags": [],
    }
    assert "reused_cells" not in prediction_execution(**common)["parameters"]
    assert "reused_cells" not in prediction_execution(**common, reused_cells={})["parameters"]
    body = prediction_execution(**common, reused_cells={"hA/epochs-2": "pipeline #4", "hA/epochs-1": "pipeline #3"})
    assert body["parameters"]["reused_cells"] == ["hA/epochs-1=pipeline #3", "hA/epochs-2=pipeline #4"]
    assert body["parameters"]["exec_ids"] == ["e3-train"]  # the execution that trained, reused or not


def test_plan_explain_reads_back_the_lines_the_plan_prints():
    line = plan_lines({"train": "hA/epochs-2"}, {"train": "train"}, {"train": source(7, "train")})[0]
    assert REUSE_LINE.match(line).groupdict() == {"name": "hA/epochs-2", "node": "train", "source": "pipeline #7"}
    assert SUMMARY_LINE.match(summary_line(3, 4)).groupdict() == {"to_run": "3", "reused": "4"}


def test_the_backend_accepts_the_reused_cells_parameter_and_renders_it_as_one_argument():
    """The prediction's parameters as the local backend checks them against the real valohai.yaml, and the
    command line the step then gets (valohai-yaml's build_command quotes the value)."""
    from pathlib import Path

    from local_valohai.services.executions import _command, validate_parameters
    from providers.sweep.payloads import load_config

    step = load_config((Path(__file__).resolve().parents[2] / "valohai.yaml").read_text()).steps["predict-models"]
    body = prediction_execution(
        commit="c",
        project_id="p",
        training_execution_ids={"hA/epochs-1": "e1", "hA/epochs-2": "e2"},
        models=[],
        harbors=["hA"],
        data_by_harbor={"hA": {}},
        test_sets={},
        tags=[],
        reused_cells={"hA/epochs-1": "pipeline #3", "hA/epochs-2": "pipeline #4"},
    )
    values = validate_parameters(step, body["parameters"])
    assert values["reused_cells"] == ["hA/epochs-1=pipeline #3", "hA/epochs-2=pipeline #4"]
    assert "'--reused_cells=hA/epochs-1=pipeline #3,hA/epochs-2=pipeline #4'" in _command(step, values, None)
