"""The sweep model: what a valid config becomes, and the one-line message every bad one gets."""

import pytest

from providers.sweep.config import Cell, SweepConfigError, parse_sweep
from providers.sweep.identity import content_key

GOOD = {"harbors": ["harbor_A", "harbor_B"], "epochs": [2, 5]}


def test_cells_are_harbors_times_epochs_in_order():
    sweep = parse_sweep(GOOD)
    assert sweep.cells == [Cell("harbor_A", 2), Cell("harbor_A", 5), Cell("harbor_B", 2), Cell("harbor_B", 5)]
    assert sweep.cells[0].name == "harbor_A/epochs-2"
    assert sweep.cells[0].title == "training-pipeline-harbor_A-epochs-2"
    assert sweep.mode == "parallel" and sweep.train["learning_rate"] == 0.001


def test_comma_separated_strings_are_accepted():
    sweep = parse_sweep({"harbors": "harbor_A, harbor_B", "epochs": "2,5"})
    assert sweep.harbors == ("harbor_A", "harbor_B") and sweep.epochs == (2, 5)


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"epochs": [1]}, "harbors is not set"),
        ({"harbors": [], "epochs": [1]}, "harbors must list at least one value"),
        ({"harbors": ["a b"], "epochs": [1]}, "'a b' is not a valid harbor name"),
        ({"harbors": ["../x"], "epochs": [1]}, "is not a valid harbor name"),
        ({"harbors": ["a", "a"], "epochs": [1]}, "harbors lists a more than once"),
        ({"harbors": ["a"]}, "epochs is not set"),
        ({"harbors": ["a"], "epochs": "abc"}, "epochs must be a whole number"),
        ({"harbors": ["a"], "epochs": [0]}, "epochs must be between 1 and 1000, got 0"),
        ({"harbors": ["a"], "epochs": [2.5]}, "epochs must be a whole number"),
        ({"harbors": ["a"], "epochs": [True]}, "epochs must be a number"),
        ({"harbors": ["a"], "epochs": [2, 2]}, "epochs lists 2 more than once"),
        ({"harbors": ["a"], "epochs": [1], "mode": "serial"}, "mode must be one of parallel, single"),
        (
            {"harbors": ["a"], "epochs": [1], "training": {"learning_rate": "fast"}},
            "training.learning_rate must be a number",
        ),
        ({"harbors": ["a"], "epochs": [1], "training": {"learning_rate": 5}}, "training.learning_rate must be between"),
        ({"harbors": ["a"], "epochs": [1], "training": {"momentum": 1}}, "training has unknown key(s) momentum"),
        ({"harbors": ["a"], "epochs": [1], "data": {"image_size": 100000}}, "data.image_size must be between"),
        ({"harbors": [f"h{i}" for i in range(30)], "epochs": list(range(1, 41))}, "1200 cells"),
        ({"harbors": ["a"], "epochs": [1], "wait_timeout_minutes": -1}, "wait_timeout_minutes must be between"),
    ],
)
def test_bad_configs_name_the_key_and_the_fix(raw, message):
    with pytest.raises(SweepConfigError) as caught:
        parse_sweep(raw)
    assert message in str(caught.value)


def test_content_key_is_stable_and_order_insensitive_for_dicts():
    assert content_key({"a": 1, "b": 2}) == content_key({"b": 2, "a": 1})
    assert content_key({"a": 1}) != content_key({"a": 2})


def test_defaults_come_from_valohai_yaml():
    sweep = parse_sweep(GOOD)
    assert sweep.train == {"batch_size": 16, "learning_rate": 0.001, "validation_split": 0.3}
    assert sweep.data == {"image_size": 64, "images_per_class": 150, "test_images_per_harbor": 50, "seed": 42}


# Shapes a hand-edited stack file can hold: each is one line naming the key and the shape it needs.
SHAPE_CASES = [
    ("training-list", {"training": [0.01, 16]}, "training must be a mapping such as {learning_rate: "),
    ("training-string", {"training": "fast"}, "training must be a mapping such as"),
    ("data-list", {"data": [{"image_size": 16}]}, "data must be a mapping such as {image_size: 64,"),
    ("data-number", {"data": 5}, "data must be a mapping such as"),
    (
        "harbors-mapping",
        {"harbors": {"harbor_A": 1}},
        "harbors must be a list such as [harbor_A, harbor_B], got a mapping",
    ),
    ("harbors-nested", {"harbors": [["harbor_A"]]}, "harbors must be a flat list such as [harbor_A, harbor_B]"),
    ("harbors-number", {"harbors": 5}, "harbors must be a list such as [harbor_A, harbor_B], got a number: 5"),
    ("epochs-nested", {"epochs": [[2, 5]]}, "epochs must be a flat list such as [2, 5]; one item is a list: [2, 5]"),
    ("epochs-mapping", {"epochs": {"2": 5}}, "epochs must be a list such as [2, 5], got a mapping"),
    ("epoch-mapping-item", {"epochs": [{"n": 2}]}, "epochs must be a flat list such as [2, 5]; one item is a mapping"),
    ("epoch-infinite", {"epochs": [float("inf")]}, "epochs must be a whole number between 1 and 1000, got inf"),
    ("epoch-huge-string", {"epochs": ["9" * 5000]}, "(5002 characters)"),
    ("rate-list", {"training": {"learning_rate": [0.1]}}, "training.learning_rate must be a number between"),
    ("batch-mapping", {"training": {"batch_size": {"a": 1}}}, "training.batch_size must be a whole number"),
    ("seed-list", {"data": {"seed": [1, 2]}}, "data.seed must be a whole number"),
    ("mode-list", {"mode": ["single"]}, "mode must be one of parallel, single, got ['single']"),
    ("timeout-list", {"wait_timeout_minutes": [5]}, "wait_timeout_minutes must be a number between 0.1 and 10080"),
]


@pytest.mark.parametrize("case_id,change,message", SHAPE_CASES, ids=[c[0] for c in SHAPE_CASES])
def test_wrong_shapes_are_one_line_errors_naming_the_key(case_id, change, message):
    with pytest.raises(SweepConfigError) as caught:
        parse_sweep({**GOOD, **change})
    text = str(caught.value)
    assert message in text
    assert "\n" not in text and len(text) < 400, f"not one short line: {text!r}"


def test_a_huge_pasted_value_is_cut_short_in_the_message():
    with pytest.raises(SweepConfigError) as caught:
        parse_sweep({**GOOD, "harbors": {f"h{i}": i for i in range(100_000)}})
    assert len(str(caught.value)) < 300 and "characters)" in str(caught.value)
