"""Step ``train``: the seed's small CNN on one harbor's preprocessed data (Keras 3, TensorFlow CPU).

Reads top to bottom like a Keras example: data, model, fit, save. Valohai sees:

- one metadata line per epoch: ``epoch`` (1-based), ``accuracy``, ``loss``, ``val_accuracy``, ``val_loss``;
- outputs ``model-<harbor>-epochs-<n>.keras`` and ``metrics-<harbor>-epochs-<n>.json`` (harbor, epochs,
  hyper-parameters, final metrics, per-epoch history, training throughput in images/s).

Input ``dataset`` is ``train/preprocessed_data_<harbor>.npz`` from ``preprocess-dataset`` (in
valohai.yaml it defaults to ``dataset://{parameter:dataset_name}_train/latest``). Parameters are
checked before TensorFlow is imported, so a bad value fails fast with one line on stderr.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
import valohai
from common import (
    NUM_CLASSES,
    StepError,
    as_float,
    as_int,
    check_harbor_name,
    configure_tensorflow,
    input_files,
    output_path,
    parameter,
    run_step,
    write_json,
    yaml_defaults,
)

DEFAULTS = yaml_defaults("train")
MAX_FLAT_SIDE = 16  # the flattened feature map is pooled down to at most 16x16 (keeps the dense layer small)


def find_dataset_file(harbor: str) -> str:
    """``preprocessed_data_<harbor>.npz`` in input ``dataset`` (or its only ``.npz``)."""
    npz = [p for p in input_files("dataset") if p.endswith(".npz")]
    wanted = f"preprocessed_data_{harbor}.npz"
    exact = [p for p in npz if os.path.basename(p) == wanted]
    if exact:
        return exact[0]
    if len(npz) == 1:
        return npz[0]
    found = ", ".join(os.path.basename(p) for p in npz) or "no .npz files"
    raise StepError(
        f"input 'dataset' has no {wanted} ({found}): pass --dataset=path/to/{wanted} "
        f"or run preprocess-dataset with dataset_name={harbor} first"
    )


def load_dataset(path: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as data:
            arrays = {key: data[key] for key in ("x_train", "y_train", "x_val", "y_val")}
    except (KeyError, ValueError, OSError) as exc:
        raise StepError(
            f"{os.path.basename(path)} is not a preprocess-dataset training file ({exc}): rerun preprocess-dataset"
        ) from None
    if arrays["x_train"].ndim != 4 or arrays["y_train"].shape[1:] != (NUM_CLASSES,) or not len(arrays["x_train"]):
        raise StepError(f"{os.path.basename(path)} has unexpected shapes: rerun preprocess-dataset")
    return arrays


def build_model(input_shape: tuple[int, int, int], learning_rate: float):
    """The seed's CNN: two conv+pool blocks, a dense layer, softmax over the 5 categories.

    Pixels arrive as uint8 (as the seed stores them) and are rescaled to [-1, 1] inside the model,
    so the saved model takes raw images. For images larger than 64 px an extra pooling keeps the flattened
    features at most 16x16x64, so the dense layer stays small whatever ``image_size`` is.
    """
    import keras
    from keras import layers

    side_after_blocks = input_shape[0] // 4
    extra_pool = -(-side_after_blocks // MAX_FLAT_SIDE)  # ceil
    model = keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Rescaling(1.0 / 127.5, offset=-1.0),  # to [-1, 1]: centred inputs learn much faster
            layers.Conv2D(32, 3, activation="relu", padding="same"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu", padding="same"),
            layers.MaxPooling2D(2),
            *([layers.MaxPooling2D(extra_pool)] if extra_pool > 1 else []),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ],
        name="ship_cnn",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.CategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    return model


def make_epoch_callback():
    """A callback that prints Valohai metadata per epoch and times the training part of each epoch."""
    import keras

    class EpochMetadata(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.train_seconds = 0.0
            self.history: list[dict[str, float]] = []
            self._epoch_start: float | None = None
            self._train_end: float | None = None

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._epoch_start, self._train_end = time.perf_counter(), None

        def on_test_begin(self, logs: Any = None) -> None:  # validation starts: training part of the epoch is over
            if self._epoch_start is not None and self._train_end is None:
                self._train_end = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            assert self._epoch_start is not None  # set by on_epoch_begin
            self.train_seconds += (self._train_end or time.perf_counter()) - self._epoch_start
            row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items() if k in METRIC_KEYS}}
            self.history.append(row)
            with valohai.logger() as logger:
                logger.log(**row)

    return EpochMetadata()


METRIC_KEYS = ("accuracy", "loss", "val_accuracy", "val_loss")


def fit(model, data: dict[str, np.ndarray], epochs: int, batch_size: int):
    """Train with per-epoch validation and metadata; returns the metadata callback (history, timing)."""
    callback = make_epoch_callback()
    model.fit(
        data["x_train"],
        data["y_train"],
        validation_data=(data["x_val"], data["y_val"]),
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        callbacks=[callback],
        verbose=2,
    )
    return callback


def main() -> None:
    valohai.prepare(step="train", default_parameters=DEFAULTS, default_inputs={"dataset": []})
    harbor = check_harbor_name(str(parameter("dataset_name", DEFAULTS["dataset_name"])).strip(), "dataset_name")
    epochs = as_int("epochs", parameter("epochs", DEFAULTS["epochs"]), 1)
    batch_size = as_int("batch_size", parameter("batch_size", DEFAULTS["batch_size"]), 1)
    learning_rate = as_float("learning_rate", parameter("learning_rate", DEFAULTS["learning_rate"]), 0.0, 10.0)
    seed = as_int("seed", parameter("seed", DEFAULTS["seed"]), 0)
    data = load_dataset(find_dataset_file(harbor))
    n_train, n_val = len(data["x_train"]), len(data["x_val"])
    print(
        f"Training {harbor}: {n_train} train / {n_val} validation images {data['x_train'].shape[1:]}, "
        f"{epochs} epochs, batch {batch_size}, lr {learning_rate}"
    )

    configure_tensorflow(seed)
    model = build_model(tuple(data["x_train"].shape[1:]), learning_rate)
    model.summary(print_fn=lambda line, **_: print(line))
    callback = fit(model, data, epochs, batch_size)
    final = callback.history[-1]
    throughput = n_train * epochs / callback.train_seconds if callback.train_seconds else None

    model_name = f"model-{harbor}-epochs-{epochs}.keras"
    model.save(output_path(model_name))
    write_json(
        output_path(f"metrics-{harbor}-epochs-{epochs}.json"),
        {
            "harbor": harbor,
            "epochs": epochs,
            "model": model_name,
            "learning_rate": learning_rate,
            "batch_size": batch_size,
            "seed": seed,
            "image_size": int(data["x_train"].shape[1]),
            "train_images": n_train,
            "val_images": n_val,
            **{key: final.get(key) for key in METRIC_KEYS},
            "train_seconds": round(callback.train_seconds, 3),
            "train_images_per_second": round(throughput, 1) if throughput else None,
            "history": callback.history,
        },
    )
    print(
        f"Saved {model_name}: val_accuracy {final.get('val_accuracy', float('nan')):.3f}, "
        f"{throughput or 0:.0f} train images/s"
    )


if __name__ == "__main__":
    run_step(main)
