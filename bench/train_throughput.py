"""Training throughput of the ``train`` step's model/fit path next to a plain Keras ``model.fit``.

Both sides train the same architecture on the same arrays (a generated harbor at demo size), with
the same epochs, batch size and validation data, each run starting from a fresh model (so both
include Keras' first-epoch tracing), after one discarded warm-up fit per side. The step side goes through ``steps/train.py``'s
``build_model`` + ``fit`` (its per-epoch Valohai metadata callback and verbose=2 epoch lines
included); the plain side is ``keras.Sequential`` + ``model.fit(verbose=0)`` written out here.
Throughput = training images x epochs / wall time of the fit call. Runs alternate between the two
sides; the medians and their ratio are printed (target: ratio >= 0.9).

    .venv/bin/python bench/train_throughput.py [--image-size 64] [--images-per-class 150] [--epochs 3] [--runs 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import time
from pathlib import Path

STEPS = Path(__file__).resolve().parents[1] / "steps"
sys.path.insert(0, str(STEPS))

import generate_harbors  # noqa: E402
import numpy as np  # noqa: E402
import preprocess_dataset  # noqa: E402
import train  # noqa: E402
from common import configure_tensorflow, decode_resized  # noqa: E402


def make_data(size: int, per_class: int) -> dict[str, np.ndarray]:
    """One generated harbor, decoded and split exactly as preprocess-dataset does."""
    files, labels, _ = generate_harbors.generate_harbor("harbor_A", size, per_class, 1, seed=42)
    names = sorted(labels)
    x = np.stack([decode_resized(files[n], size) for n in names])
    y = preprocess_dataset.one_hot(np.array([labels[n] for n in names]))
    x_train, y_train, x_val, y_val = preprocess_dataset.split(x, y, 0.3)
    return {"x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val}


def plain_keras(data, epochs: int, batch_size: int, learning_rate: float) -> float:
    """The reference: the same model (the step's own builder, so only the fit path differs), plain `model.fit`."""
    model = train.build_model(tuple(data["x_train"].shape[1:]), learning_rate)
    started = time.perf_counter()
    model.fit(
        data["x_train"],
        data["y_train"],
        validation_data=(data["x_val"], data["y_val"]),
        epochs=epochs,
        batch_size=batch_size,
        verbose=0,
    )
    return len(data["x_train"]) * epochs / (time.perf_counter() - started)


def step_path(data, epochs: int, batch_size: int, learning_rate: float) -> tuple[float, float]:
    model = train.build_model(tuple(data["x_train"].shape[1:]), learning_rate)
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the metadata and epoch lines a run prints
        callback = train.fit(model, data, epochs, batch_size)
    wall = time.perf_counter() - started
    return len(data["x_train"]) * epochs / wall, len(data["x_train"]) * epochs / callback.train_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--images-per-class", type=int, default=150)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=train.DEFAULTS["batch_size"])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    data = make_data(args.image_size, args.images_per_class)
    configure_tensorflow(seed=1)
    lr = train.DEFAULTS["learning_rate"]
    print(
        f"{len(data['x_train'])} train / {len(data['x_val'])} val images {args.image_size}px, {args.epochs} epochs, "
        f"batch {args.batch_size}, {os.cpu_count()} cores, {args.runs} runs each (alternating)"
    )
    # Warm-up, discarded: the first fit in a process also pays for thread pools and kernel set-up.
    step_path(data, 1, args.batch_size, lr)
    plain_keras(data, 1, args.batch_size, lr)
    ours, theirs, reported = [], [], []
    for run in range(args.runs):
        for side in ("step", "plain") if run % 2 == 0 else ("plain", "step"):
            if side == "step":
                wall, own = step_path(data, args.epochs, args.batch_size, lr)
                ours.append(wall)
                reported.append(own)
            else:
                theirs.append(plain_keras(data, args.epochs, args.batch_size, lr))
        print(f"run {run + 1}: train step {ours[-1]:7.1f} img/s   plain model.fit {theirs[-1]:7.1f} img/s")
    m_ours, m_theirs = statistics.median(ours), statistics.median(theirs)
    print(
        f"median:  train step {m_ours:7.1f} img/s   plain model.fit {m_theirs:7.1f} img/s   ratio {m_ours / m_theirs:.2f}"
    )
    print(
        f"(the step's own metrics file reports {statistics.median(reported):.1f} img/s: training part of each epoch only, "
        "validation excluded)"
    )


if __name__ == "__main__":
    main()
