"""The steps end to end on tiny data: seed file formats, metadata, dataset versions, a model that learns, the report."""

from __future__ import annotations

import csv
import json
import re
import zipfile

import numpy as np
import pytest
from PIL import Image
from step_runner import HARBORS, TINY, TRAIN_EPOCHS

pytestmark = pytest.mark.ml
CATEGORY_NAMES = {"Cargo", "Military", "Carrier", "Cruise", "Tankers"}


def read_csv(path):
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return reader.fieldnames, list(reader)


def test_generate_writes_the_seed_format(sweep):
    out = sweep["generate"].outputs
    names = zipfile.ZipFile(out / "images.zip").namelist()
    assert all("/" not in n and n.endswith(".jpg") for n in names), "flat jpg names like the seed's"
    per_harbor = 5 * TINY["images_per_class"] + TINY["test_images_per_harbor"]
    assert len(names) == len(set(names)) == per_harbor * len(HARBORS)
    for harbor in HARBORS:
        header, rows = read_csv(out / f"train_{harbor}.csv")
        assert header == ["image", "category"]
        counts = {c: sum(r["category"] == str(c) for r in rows) for c in range(1, 6)}
        assert counts == {c: TINY["images_per_class"] for c in range(1, 6)}
        _, answers = read_csv(out / f"test_labels_{harbor}.csv")
        assert len(answers) == TINY["test_images_per_harbor"]
        assert not {r["image"] for r in rows} & {r["image"] for r in answers}, "test images are unlabelled"
        assert {r["image"] for r in rows + answers} <= set(names)
    with zipfile.ZipFile(out / "images.zip") as archive:
        image = Image.open(archive.open(names[0]))
        assert image.size == (TINY["image_size"], TINY["image_size"]) and image.mode == "RGB"


def test_preprocess_writes_arrays_sidecars_and_the_edge_metadata(sweep):
    for harbor in HARBORS:
        run = sweep[f"preprocess_{harbor}"]
        assert run.metadata[-1] == {"run_training_for": harbor}
        train = run.outputs / "train" / f"preprocessed_data_{harbor}.npz"
        test = run.outputs / "test" / harbor / f"preprocessed_test_data_{harbor}.npz"
        with np.load(train) as data:
            assert set(data.files) == {"x_train", "y_train", "x_val", "y_val"}
            assert data["x_train"].shape[1:] == (32, 32, 3) and data["x_train"].dtype == np.uint8
            assert len(data["x_train"]) + len(data["x_val"]) == 5 * TINY["images_per_class"]
            assert len(data["x_val"]) == round(0.3 * 5 * TINY["images_per_class"])
            assert data["y_train"].shape[1] == 5 and np.all(data["y_train"].sum(axis=1) == 1)
        with np.load(test) as data:
            assert data["test_data"].shape == (TINY["test_images_per_harbor"], 32, 32, 3)
            _, answers = read_csv(sweep["generate"].outputs / f"test_labels_{harbor}.csv")
            assert sorted(data["test_names"].tolist()) == sorted(r["image"] for r in answers), (
                "the harbor's own test images"
            )
        exec_id = "exec-pre-b" if harbor == "harbor_B" else None
        for path, kind in ((train, "train"), (test, "test")):
            sidecar = json.loads(path.with_name(path.name + ".metadata.json").read_text())
            (uri,) = sidecar["valohai.dataset-versions"]
            if exec_id:  # from execution.json, as on Valohai
                assert uri == f"dataset://{harbor}_{kind}/{exec_id}"
            else:  # plain local run: a local execution id
                assert re.fullmatch(rf"dataset://{harbor}_{kind}/local-[\w-]+", uri)


def test_train_logs_epoch_metadata_and_saves_a_model_that_learns(sweep):
    import keras

    for harbor in HARBORS:
        run = sweep[f"train_{harbor}"]
        epochs = [m for m in run.metadata if "epoch" in m]
        assert [m["epoch"] for m in epochs] == list(range(1, TRAIN_EPOCHS + 1))
        for row in epochs:
            assert {"accuracy", "loss", "val_accuracy", "val_loss"} <= set(row)
        metrics = json.loads((run.outputs / f"metrics-{harbor}-epochs-{TRAIN_EPOCHS}.json").read_text())
        assert metrics["harbor"] == harbor and metrics["epochs"] == TRAIN_EPOCHS
        assert metrics["val_accuracy"] == epochs[-1]["val_accuracy"]
        assert metrics["val_accuracy"] >= 0.6, f"{harbor} did not learn: {metrics['history']}"
        assert metrics["train_images_per_second"] > 0
        model = keras.saving.load_model(run.outputs / f"model-{harbor}-epochs-{TRAIN_EPOCHS}.keras")
        assert model.output_shape == (None, 5) and model.input_shape == (None, 32, 32, 3)


def test_predictions_json_matches_the_saved_images(sweep):
    out = sweep["predict"].outputs
    predictions = json.loads((out / "predictions.json").read_text())
    assert predictions["harbours"] == HARBORS
    reused = f"{HARBORS[0]}/epochs-{TRAIN_EPOCHS}"
    assert predictions["reused_cells"] == {reused: "pipeline #7"}  # the report says which cells were reused
    assert {n: e["reused_from"] for n, e in predictions["models"].items()} == {
        f"model-{h}-epochs-{TRAIN_EPOCHS}": "pipeline #7" if h == HARBORS[0] else None for h in HARBORS
    }
    assert f"{reused} (pipeline #7)" in (out / "report" / "index.html").read_text()
    assert set(predictions["models"]) == {f"model-{h}-epochs-{TRAIN_EPOCHS}" for h in HARBORS}
    for name, entry in predictions["models"].items():
        assert entry["epochs"] == TRAIN_EPOCHS and entry["harbor"] in name
        assert set(entry["counts"]) == CATEGORY_NAMES
        assert sum(entry["counts"].values()) == entry["test_images"] == TINY["test_images_per_harbor"]
        assert 0.0 <= entry["accuracy"] <= 1.0 and entry["labelled_test_images"] == TINY["test_images_per_harbor"]
        saved = sorted(p.name for p in (out / "predictions" / name).iterdir())
        assert len(saved) == 3 == len(entry["samples"])
        assert saved == sorted(f"img{s['index']}_{s['predicted']}.png" for s in entry["samples"])
        for sample in entry["samples"]:
            assert (out / sample["file"]).is_file() and sample["predicted"] in CATEGORY_NAMES
            assert re.fullmatch(r"img\d+_(Cargo|Military|Carrier|Cruise|Tankers)\.png", (out / sample["file"]).name)
    logged = [m for m in sweep["predict"].metadata if "model" in m]
    assert {m["model"] for m in logged} == set(predictions["models"])


def test_report_has_a_real_heatmap_and_relative_links(sweep):
    out = sweep["predict"].outputs
    heatmap = out / "report" / "heatmap.png"
    assert heatmap.stat().st_size > 5000
    pixels = np.asarray(Image.open(heatmap).convert("RGB"))
    assert pixels.shape[0] >= 150 and pixels.shape[1] >= 200
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50, "heatmap is not a uniform image"
    page = (out / "report" / "index.html").read_text()
    assert 'src="heatmap.png"' in page
    links = re.findall(r'src="([^"]+)"', page)
    assert len(links) == 1 + 3 * len(HARBORS)
    for link in links:
        assert not link.startswith(("/", "http")) and (out / "report" / link).resolve().is_file(), link
