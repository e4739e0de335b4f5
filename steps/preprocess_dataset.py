"""Step ``preprocess-dataset``: one harbor's images and labels to training and test arrays.

Inputs: ``dataset`` (``images.zip``, or loose image files) and ``labels`` (``train_<harbor>.csv``
files, columns ``image,category``). Works unchanged on the seed's real dataset.

- Training data: the images labelled in ``train_<dataset_name>.csv``, resized to
  ``image_size`` x ``image_size`` RGB (uint8, as the seed), labels one-hot over the 5 categories, split
  into train/validation (``validation_split``, fixed shuffle seed 42 like the seed's split).
- Test data (up to 1000 images, as in the seed): images that no ``train_*.csv`` in ``labels`` labels.
  When a shared ``images.zip`` holds several harbors' images, a harbor's test images are the
  unlabelled ones named ``<harbor>_<digits>.<ext>`` (the ``generate-harbors`` naming). When no
  unlabelled image carries that harbor's name (the seed's numeric names), every unlabelled image is
  the harbor's test set, exactly as in the seed. Names are sorted, so the set is deterministic.

Outputs, with ``.metadata.json`` sidecars that add them to dataset versions named after this
execution (``dataset://<harbor>_train/<execution id>``, ``dataset://<harbor>_test/<execution id>``):

- ``train/preprocessed_data_<harbor>.npz``: ``x_train``, ``y_train``, ``x_val``, ``y_val``
- ``test/<harbor>/preprocessed_test_data_<harbor>.npz``: ``test_data`` and ``test_names`` (file
  names, so predictions can be checked against ``test_labels_<harbor>.csv``)

Finally prints ``{"run_training_for": "<harbor>"}``: the pipeline edge that sets ``train``'s
``dataset_name`` reads it.
"""

from __future__ import annotations

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
import valohai
from common import (
    NUM_CLASSES,
    StepError,
    as_float,
    as_int,
    check_harbor_name,
    decode_batch,
    execution_id,
    input_files,
    iter_image_bytes,
    output_path,
    parameter,
    print_metadata,
    read_labels_csv,
    run_step,
    write_sidecar,
    yaml_defaults,
)

DEFAULTS = yaml_defaults("preprocess-dataset")
MAX_TEST_IMAGES = 1000  # the seed's cap on a harbor's test set
SPLIT_SEED = 42  # the seed's train/validation split is fixed too (random_state=42)
LABELS_FILE = re.compile(r"^train_(.+)\.csv$")


def harbor_test_names(harbor: str, unlabelled: list[str]) -> list[str]:
    """The harbor's test images among the unlabelled ones (rule in the module docstring)."""
    own = re.compile(rf"^{re.escape(harbor)}_\d+\.[A-Za-z]+$")
    named = [name for name in unlabelled if own.match(name)]
    return sorted(named or unlabelled)[:MAX_TEST_IMAGES]


def one_hot(categories: np.ndarray) -> np.ndarray:
    """Categories 1-5 to one-hot rows; column i is category i+1 (all 5 columns always present)."""
    return np.eye(NUM_CLASSES, dtype=np.float32)[categories - 1]


def split(x: np.ndarray, y: np.ndarray, validation_split: float) -> tuple[np.ndarray, ...]:
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    n_val = min(max(1, round(len(x) * validation_split)), len(x) - 1)
    val, train = order[:n_val], order[n_val:]
    return x[train], y[train], x[val], y[val]


def find_labels(harbor: str) -> tuple[str, dict[str, dict[str, int]]]:
    """Path of ``train_<harbor>.csv`` and the labels of every harbor's CSV in the ``labels`` input."""
    csvs = {m.group(1): p for p in input_files("labels") if (m := LABELS_FILE.match(os.path.basename(p)))}
    if harbor not in csvs:
        known = ", ".join(sorted(csvs)) or "none"
        raise StepError(
            f"no labels file train_{harbor}.csv in input 'labels' (harbors with labels: {known}): "
            f"set dataset_name to one of them or add train_{harbor}.csv to the labels input"
        )
    return csvs[harbor], {name: read_labels_csv(path) for name, path in csvs.items()}


def main() -> None:
    valohai.prepare(
        step="preprocess-dataset", default_parameters=DEFAULTS, default_inputs={"dataset": [], "labels": []}
    )
    harbor = check_harbor_name(str(parameter("dataset_name", DEFAULTS["dataset_name"])).strip(), "dataset_name")
    validation_split = as_float(
        "validation_split", parameter("validation_split", DEFAULTS["validation_split"]), 0.0, 1.0
    )
    size = as_int("image_size", parameter("image_size", DEFAULTS["image_size"]), 8)
    started = time.perf_counter()

    labels_path, all_labels = find_labels(harbor)
    labels = all_labels[harbor]
    if not labels:
        raise StepError(f"{os.path.basename(labels_path)} has no rows: add 'image,category' rows for harbor {harbor}")
    dataset_paths = input_files("dataset")
    if not dataset_paths:
        raise StepError("input 'dataset' has no files: pass --dataset=path/to/images.zip (or set the input in Valohai)")
    images = dict(iter_image_bytes(dataset_paths))
    labelled = sorted(name for name in labels if name in images)
    missing = len(labels) - len(labelled)
    if len(labelled) < 2:
        raise StepError(
            f"only {len(labelled)} of the {len(labels)} images in {os.path.basename(labels_path)} are in input "
            "'dataset': pass the images.zip these labels belong to"
        )
    if missing:
        print(f"warning: {missing} labelled images are not in the dataset input; using the {len(labelled)} found")
    labelled_anywhere = set().union(*all_labels.values())
    test_names = harbor_test_names(harbor, [name for name in images if name not in labelled_anywhere])

    print(f"Preprocessing {harbor}: {len(labelled)} labelled, {len(test_names)} test images -> {size}x{size}")
    x = decode_batch([images[name] for name in labelled], size)
    y = one_hot(np.array([labels[name] for name in labelled], dtype=np.int64))
    x_train, y_train, x_val, y_val = split(x, y, validation_split)
    test_data = decode_batch([images[name] for name in test_names], size)

    exec_id = execution_id()
    train_path = output_path(f"train/preprocessed_data_{harbor}.npz")
    np.savez_compressed(train_path, x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val)
    write_sidecar(train_path, {"valohai.dataset-versions": [f"dataset://{harbor}_train/{exec_id}"]})
    test_path = output_path(f"test/{harbor}/preprocessed_test_data_{harbor}.npz")
    np.savez_compressed(test_path, test_data=test_data, test_names=np.array(test_names, dtype=str))
    write_sidecar(test_path, {"valohai.dataset-versions": [f"dataset://{harbor}_test/{exec_id}"]})

    print(
        f"Saved {len(x_train)} train, {len(x_val)} validation, {len(test_data)} test images "
        f"in {time.perf_counter() - started:.2f} s"
    )
    print_metadata(train_images=len(x_train), val_images=len(x_val), test_images=len(test_data))
    print_metadata(run_training_for=harbor)


if __name__ == "__main__":
    run_step(main)
