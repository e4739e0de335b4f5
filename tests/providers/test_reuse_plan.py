"""Reuse planning (providers/sweep/reuse.py) and its stack options, without a server."""

from __future__ import annotations

import pytest

from providers.sweep.config import SweepConfigError, parse_sweep
from providers.sweep.identity import node_key, node_tag
from providers.sweep.reuse import (
    completed_sources,
    plan_lines,
    plan_reuse,
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
