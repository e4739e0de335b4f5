"""Cost and time estimates from the project's history: same node, else scaled by epochs, else unknown."""

from __future__ import annotations

import pytest

from providers.sweep.config import parse_sweep
from providers.sweep.estimates import (
    Estimate,
    estimate_cell,
    estimate_node,
    history,
    over_budget,
    scale_by_epochs,
)
from providers.sweep.identity import content_tag, node_tags
from stacks.estimates import cells_to_run

TRAIN = {"step": {"sha256": "t"}, "parameters": {"epochs": 2}}
PRE = {"step": {"sha256": "p"}, "parameters": {}}


def pipeline(tags, train_params, train_seconds, status="complete", pre_seconds=30):
    """A listed pipeline whose node executions carry the node tags in `tags` ({node name: tag})."""
    listed = {
        "status": status,
        "nodes": [
            {
                "name": "preprocess",
                "execution": {
                    "step": "preprocess-dataset",
                    "status": "complete",
                    "parameters": {"dataset_name": "hA"},
                    "duration": pre_seconds,
                },
            },
            {
                "name": "train",
                "execution": {"step": "train", "status": status, "parameters": train_params, "duration": train_seconds},
            },
        ],
    }
    for node in listed["nodes"]:
        if node["name"] in tags:
            node["execution"]["tags"] = ["stack:s", tags[node["name"]]]
    return listed


def test_history_reads_node_keys_from_tags_and_skips_unfinished():
    tags = node_tags({"preprocess": PRE, "train": TRAIN})
    runs = history([pipeline(tags, {"epochs": 2}, 120), pipeline({}, {"epochs": 2}, 60, status="error")])
    assert [(r.step, r.minutes) for r in runs] == [
        ("preprocess-dataset", 0.5),
        ("train", 2.0),
        ("preprocess-dataset", 0.5),
    ]
    assert runs[0].key and runs[1].key and runs[2].key is None


def test_same_node_first_then_scaled_by_epochs_then_unknown():
    tags = node_tags({"train": TRAIN})
    runs = history([pipeline(tags, {"epochs": 2, "lr": 0.1}, 120), pipeline(tags, {"epochs": 2, "lr": 0.1}, 240)])
    same = estimate_node(runs, "train", TRAIN, {"epochs": 2, "lr": 0.1})
    assert same.minutes == 3.0 and "this node" in same.basis  # the median of 2 and 4 minutes
    other = {"step": {"sha256": "t"}, "parameters": {"epochs": 6}}
    scaled = estimate_node(runs, "train", other, {"epochs": 6, "lr": 0.1})
    assert scaled.minutes == pytest.approx(9.0) and "scaled by epochs" in scaled.basis  # 1.5 min/epoch
    assert estimate_node(runs, "train", other, {"epochs": 6, "lr": 0.2}).minutes is None
    assert estimate_node(runs, "predict-models", other, {}).minutes is None


def test_a_line_through_two_epochs_values_keeps_the_startup_cost():
    # 30 s to start, then 10 s per epoch: proportional scaling would say 1.33 min for 4 epochs from (1, 40 s)
    assert scale_by_epochs([(1, 40 / 60), (2, 50 / 60)], 4) == pytest.approx(70 / 60)
    assert scale_by_epochs([(2, 1.0)], 4) == pytest.approx(2.0)
    assert scale_by_epochs([(1, 2.0), (2, 1.0)], 3) >= 0  # never a negative cost


def test_a_cell_is_unknown_when_a_node_is():
    runs = history([pipeline(node_tags({"preprocess": PRE}), {"epochs": 9}, 60)])
    known = estimate_cell(
        runs,
        {"preprocess": ("preprocess-dataset", PRE, {"dataset_name": "hA"}), "train": ("train", TRAIN, {"epochs": 2})},
    )
    assert known.minutes == pytest.approx(0.5 + 60 / 60 / 9 * 2)
    unknown = estimate_cell(runs, {"train": ("train", TRAIN, {"epochs": 2, "lr": 1})})
    assert unknown.minutes is None


def test_budget_refusal_names_the_biggest_cells():
    estimates = {"a": Estimate(5.0, "x"), "b": Estimate(1.0, "x"), "c": Estimate(None, "unknown")}
    assert over_budget(estimates, 6.0) is None
    message = over_budget(estimates, 5.5)
    assert message and "6.0 execution-minutes" in message and message.index("a (5.0 min)") < message.index("b (1.0")
    assert "Nothing was created" in message


def test_cells_to_run_are_those_without_a_live_pipeline():
    sweep = parse_sweep({"harbors": ["hA"], "epochs": [1, 2]})
    keys = {"hA/epochs-1": "1" * 64, "hA/epochs-2": "2" * 64}
    pipelines = [
        {"status": "complete", "tags": [content_tag("1" * 64)]},
        {"status": "error", "tags": [content_tag("2" * 64)]},
    ]
    assert cells_to_run(pipelines, sweep, keys, "s" * 64) == ["hA/epochs-2"]


def test_budget_config():
    assert parse_sweep({"harbors": ["a"], "epochs": [1]}).budget_execution_minutes is None
    assert parse_sweep({"harbors": ["a"], "epochs": [1], "budget_execution_minutes": 30}).budget_execution_minutes == 30
    with pytest.raises(ValueError, match="budget_execution_minutes must be between"):
        parse_sweep({"harbors": ["a"], "epochs": [1], "budget_execution_minutes": 0})


def test_a_run_that_creates_nothing_lists_no_deleted_pipelines():
    """The program's shared listing answers which cells run; the deleted history is asked for only when some do."""
    from providers.sweep.identity import resource_key
    from stacks.estimates import check

    sweep = parse_sweep({"harbors": ["hA"], "epochs": [2]})
    identity = {"hA/epochs-2": {"preprocess": PRE, "train": TRAIN}}
    key = resource_key("cell", "s", identity["hA/epochs-2"])

    class Api:
        def __init__(self) -> None:
            self.calls: list[dict] = []

        def resolve_project(self, name):
            return {"id": "proj"}

        def list_pipelines(self, project_id, **filters):
            self.calls.append(filters)
            return []

    api = Api()
    unchanged = check(
        api,
        "proj",
        "s",
        sweep,
        identity,
        {},
        {"hA/epochs-2": key},
        lambda: [{"status": "complete", "tags": [content_tag(key)]}],
    )
    assert unchanged == {} and api.calls == []
    to_run = check(api, "proj", "s", sweep, identity, {}, {"hA/epochs-2": key}, lambda: [])
    assert list(to_run) == ["hA/epochs-2"] and api.calls == [{"deleted": "true"}]


def test_large_sweeps_show_the_longest_cells_and_count_the_rest():
    """Up to 25 cells: one line each. Beyond: the 10 longest, one line for the other estimated cells, one per reason
    the rest are unknown (a 1,000-cell sweep printed 1,000 lines)."""
    from providers.sweep.estimates import Estimate
    from stacks.estimates import LONGEST_SHOWN, PER_CELL_LINES, estimate_lines

    few = {"hA/epochs-1": Estimate(1.5, "median of 2 runs of this node"), "hA/epochs-2": Estimate(None, "no history")}
    assert estimate_lines(few) == [
        "estimate: hA/epochs-1: 1.50 min (median of 2 runs of this node)",
        "estimate: hA/epochs-2: unknown (no history)",
    ]
    many = {f"h/epochs-{e}": Estimate(float(e), "scaled") for e in range(1, 41)}
    many |= {f"g/epochs-{e}": Estimate(None, "no history for train") for e in range(1, 961)}
    lines = estimate_lines(many)
    assert len(many) > PER_CELL_LINES and len(lines) == LONGEST_SHOWN + 2
    assert lines[0] == "estimate: h/epochs-40: 40.00 min (scaled)" and lines[LONGEST_SHOWN - 1].startswith(
        "estimate: h/epochs-31:"
    )
    assert lines[LONGEST_SHOWN] == f"estimate: 30 other cell(s): {sum(range(1, 31)):.2f} min in all"
    assert lines[-1] == "estimate: 960 cell(s): unknown (no history for train)"
