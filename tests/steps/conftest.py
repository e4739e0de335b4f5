"""Fixtures for the ML step tests.

The whole sweep (generate -> preprocess x2 -> train x2 -> predict) runs once per session on a tiny
data set (32 px) as real subprocesses, and the tests inspect its files and output.
"""

from __future__ import annotations

from typing import Any

import pytest
from step_runner import HARBORS, TINY, TRAIN_EPOCHS, run_script, yaml_command


@pytest.fixture(scope="session")
def sweep(tmp_path_factory) -> dict[str, Any]:
    """generate -> preprocess (each harbor) -> train (each harbor, 2 epochs) -> predict, on tiny data."""
    root = tmp_path_factory.mktemp("sweep")
    runs: dict[str, Any] = {}

    # generate-harbors: plain local run, parameters on the command line.
    gen = run_script(
        root / "generate",
        "generate_harbors.py",
        [f"--harbors={','.join(HARBORS)}", *(f"--{k}={v}" for k, v in TINY.items())],
    )
    runs["generate"] = gen

    # preprocess-dataset: harbor_A from the command line, harbor_B the way Valohai hands it over.
    labels = sorted(gen.outputs.glob("train_*.csv"))
    runs["preprocess_harbor_A"] = run_script(
        root / "pre_A",
        "preprocess_dataset.py",
        [
            "--dataset_name=harbor_A",
            "--image_size=32",
            "--dataset",
            str(gen.outputs / "images.zip"),
            "--labels",
            *map(str, labels),
        ],
    )
    runs["preprocess_harbor_B"] = run_script(
        root / "pre_B",
        "preprocess_dataset.py",
        inputs={"dataset": [gen.outputs / "images.zip"], "labels": labels},
        parameters={"dataset_name": "harbor_B", "validation_split": 0.3, "image_size": 32},
        execution_id="exec-pre-b",
        command=yaml_command("preprocess-dataset", {"dataset_name": "harbor_B", "image_size": 32}),
    )

    # train: the command valohai.yaml builds, inputs as inputs.json (as on Valohai / the local backend);
    # both harbors at once, one TensorFlow thread each, as the backend's worker pool would run them.
    pending = {}
    for harbor in HARBORS:
        npz = runs[f"preprocess_{harbor}"].outputs / "train" / f"preprocessed_data_{harbor}.npz"
        values = {"dataset_name": harbor, "epochs": TRAIN_EPOCHS, "learning_rate": 0.002, "batch_size": 8, "seed": 1}
        pending[harbor] = run_script(
            root / f"train_{harbor}",
            "train.py",
            inputs={"dataset": [npz]},
            parameters=values,
            command=yaml_command("train", values),
            extra_env={"TF_NUM_INTRAOP_THREADS": "1"},
            background=True,
        )
    for harbor, run in pending.items():
        runs[f"train_{harbor}"] = run.wait()

    # predict-models: models + metrics, test sets and answers as inputs on the command line.
    models = [p for h in HARBORS for p in sorted(runs[f"train_{h}"].outputs.iterdir())]
    test_sets = [runs[f"preprocess_{h}"].outputs / "test" / h / f"preprocessed_test_data_{h}.npz" for h in HARBORS]
    runs["predict"] = run_script(
        root / "predict",
        "predict_models.py",
        [
            f"--harbours={','.join(HARBORS)}",
            f"--reused_cells={HARBORS[0]}/epochs-{TRAIN_EPOCHS}=pipeline #7",
            "--dataset",
            *map(str, test_sets),
            "--models",
            *map(str, models),
            "--test_labels",
            *map(str, sorted(gen.outputs.glob("test_labels_*.csv"))),
        ],
    )
    runs["root"] = root
    return runs
