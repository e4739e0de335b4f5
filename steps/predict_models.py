"""Step ``predict-models``: every trained model predicts its harbor's test set; a sweep report is written.

Models come from input ``models`` (``model-<harbor>-epochs-<n>.keras`` plus the ``metrics-…json``
written next to it by ``train``), or, when ``exec_ids`` is given and ``models`` is empty, from the
Valohai API as in the seed: ``GET $VALOHAI_HOST/api/v0/executions/<id>/outputs/?include=download_url``
with ``Authorization: Token $VALOHAI_API_TOKEN`` (host defaults to https://app.valohai.com).

Parameter ``reused_cells`` (``<harbor>/epochs-<n>=pipeline #<N>``, set by the stack program) names the cells
whose model was not trained again but reused from an earlier pipeline (``providers/sweep/reuse.py``); the
report marks them, so a reader knows which models this sweep run re-trained.

Test sets come from input ``dataset`` (``preprocessed_test_data_<harbor>.npz``); optional input
``test_labels`` (``test_labels_<harbor>.csv``) turns predictions into a test accuracy.

Outputs:

- ``predictions/<model>/img<i>_<Category>.png``: 3 test images per model (``i`` = index in the
  test set, chosen reproducibly from the model name), named with the predicted category (seed format);
- ``predictions.json``: per model its harbor, epochs, validation accuracy, predicted counts per
  category, test accuracy when labels are given, the sample images with their predictions, and
  ``reused_from`` (the pipeline that trained a reused model, else null); ``reused_cells`` at the top;
- ``report/heatmap.png`` (validation accuracy, harbor x epochs) and ``report/index.html`` (heatmap,
  a table of models, a gallery of the sample predictions; links are relative, open it from disk).
"""

from __future__ import annotations

import html
import os
import re
import sys
import tempfile
import zlib
from dataclasses import dataclass, field
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
import valohai
from common import (
    CATEGORIES,
    StepError,
    as_list,
    check_harbor_name,
    configure_tensorflow,
    input_files,
    output_path,
    parameter,
    print_metadata,
    read_labels_csv,
    run_step,
    write_json,
)
from PIL import Image

DEFAULTS: dict[str, Any] = {"exec_ids": [], "harbours": [], "reused_cells": []}
SAMPLES_PER_MODEL = 3
MODEL_FILE = re.compile(r"^model-(?P<harbor>.+)-epochs-(?P<epochs>\d+)\.(?:keras|h5)$")
METRICS_FILE = re.compile(r"^metrics-(?P<harbor>.+)-epochs-(?P<epochs>\d+)\.json$")
REUSED_CELL = re.compile(r"^(?P<cell>[^/=]+/epochs-\d+)(?:=(?P<where>.+))?$")
TEST_FILE = re.compile(r"^preprocessed_test_data_(?P<harbor>.+)\.npz$")
LABELS_FILE = re.compile(r"^test_labels_(?P<harbor>.+)\.csv$")


@dataclass
class ModelFile:
    name: str  # file stem, e.g. model-harbor_A-epochs-5; the predictions/<name>/ folder
    path: str
    harbor: str
    epochs: int
    metrics: dict[str, Any] = field(default_factory=dict)


# --- finding models -------------------------------------------------------------------------------


def download_models(exec_ids: list[str], destination: str) -> list[str]:
    """Download the model and metrics outputs of each execution through the Valohai API (the seed's way)."""
    from urllib.parse import urljoin, urlsplit

    import requests

    token = os.environ.get("VALOHAI_API_TOKEN")
    if not token:
        raise StepError(
            "exec_ids is set but VALOHAI_API_TOKEN is not: set VALOHAI_API_TOKEN to a Valohai API token "
            "(and VALOHAI_HOST if not app.valohai.com), or pass the models as the 'models' input"
        )
    host = os.environ.get("VALOHAI_HOST", "https://app.valohai.com").rstrip("/") + "/"
    headers = {"Authorization": f"Token {token}"}
    session = requests.Session()
    paths: list[str] = []
    for exec_id in exec_ids:
        url = urljoin(host, f"api/v0/executions/{exec_id}/outputs/")
        try:
            response = session.get(url, params={"include": "download_url"}, headers=headers, timeout=60)
        except requests.RequestException as exc:
            raise StepError(f"cannot reach {host} ({type(exc).__name__}): check VALOHAI_HOST") from None
        if response.status_code >= 400:
            raise StepError(
                f"GET {url} answered HTTP {response.status_code} {response.text[:200]!r}: "
                "check exec_ids (train execution ids), VALOHAI_HOST and VALOHAI_API_TOKEN"
            )
        body = response.json()
        outputs = body.get("results", []) if isinstance(body, dict) else body
        wanted = [
            o
            for o in outputs
            if MODEL_FILE.match(os.path.basename(o["name"])) or METRICS_FILE.match(os.path.basename(o["name"]))
        ]
        if not any(MODEL_FILE.match(os.path.basename(o["name"])) for o in wanted):
            raise StepError(
                f"execution {exec_id} has no model-<harbor>-epochs-<n>.keras output: pass the ids of train executions in exec_ids"
            )
        folder = os.path.join(destination, exec_id)
        os.makedirs(folder, exist_ok=True)
        for output in wanted:
            file_url = urljoin(host, output["download_url"])
            same_host = urlsplit(file_url).netloc == urlsplit(host).netloc
            # Presigned storage URLs must not get the token; the API host's own URLs may need it.
            data = session.get(file_url, headers=headers if same_host else {}, timeout=300)
            if data.status_code >= 400:
                raise StepError(
                    f"downloading {output['name']} of execution {exec_id} failed with HTTP {data.status_code}: retry or pass the models as the 'models' input"
                )
            path = os.path.join(folder, os.path.basename(output["name"]))
            with open(path, "wb") as fh:
                fh.write(data.content)
            print(f"Downloaded {output['name']} of execution {exec_id}")
            paths.append(path)
    return paths


def collect_models(paths: list[str]) -> list[ModelFile]:
    """Model files with their metrics (matched by harbor and epochs); names made unique."""
    import json

    metrics: dict[tuple[str, int], dict[str, Any]] = {}
    for path in paths:
        if m := METRICS_FILE.match(os.path.basename(path)):
            with open(path, encoding="utf-8") as fh:
                metrics[(m["harbor"], int(m["epochs"]))] = json.load(fh)
    models: list[ModelFile] = []
    seen: dict[str, int] = {}
    for path in paths:
        if m := MODEL_FILE.match(os.path.basename(path)):
            stem = os.path.splitext(os.path.basename(path))[0]
            seen[stem] = seen.get(stem, 0) + 1
            name = stem if seen[stem] == 1 else f"{stem}-{seen[stem]}"
            key = (m["harbor"], int(m["epochs"]))
            models.append(ModelFile(name, path, key[0], key[1], metrics.get(key, {})))
    return sorted(models, key=lambda mf: (mf.harbor, mf.epochs, mf.name))


def files_by_harbor(paths: list[str], pattern: re.Pattern[str]) -> dict[str, str]:
    return {m["harbor"]: p for p in paths if (m := pattern.match(os.path.basename(p)))}


def parse_reused(values: list[str]) -> dict[str, str]:
    """``reused_cells`` values as cell -> where its model was trained (``pipeline #7``; ``an earlier pipeline``
    when not said)."""
    reused: dict[str, str] = {}
    for value in values:
        match = REUSED_CELL.match(value.strip())
        if not match:
            raise StepError(
                f"reused_cells value {value!r} is not <harbor>/epochs-<n>[=<pipeline>]: "
                "pass values like harbor_A/epochs-2=pipeline #7, or leave reused_cells out"
            )
        reused[match["cell"]] = (match["where"] or "").strip() or "an earlier pipeline"
    return reused


def cell_of(model_file: ModelFile) -> str:
    return f"{model_file.harbor}/epochs-{model_file.epochs}"


# --- predicting -----------------------------------------------------------------------------------


def load_test_set(path: str) -> tuple[np.ndarray, list[str]]:
    with np.load(path) as data:
        images = data["test_data"]
        names = (
            [str(n) for n in data["test_names"]] if "test_names" in data else [f"test_{i}" for i in range(len(images))]
        )
    return images, names


def predict_model(
    model_file: ModelFile, images: np.ndarray, names: list[str], answers: dict[str, int] | None
) -> dict[str, Any]:
    """Predict one model's test set, save the sample images, return its ``predictions.json`` entry."""
    import keras

    model = keras.saving.load_model(model_file.path, compile=False)
    probabilities = model.predict(images, batch_size=256, verbose=0)
    predicted = np.argmax(probabilities, axis=1) + 1  # category numbers 1-5
    counts = np.bincount(predicted, minlength=len(CATEGORIES) + 1)[1:]
    entry: dict[str, Any] = {
        "harbor": model_file.harbor,
        "epochs": model_file.epochs,
        "model_file": os.path.basename(model_file.path),
        "val_accuracy": model_file.metrics.get("val_accuracy"),
        "test_images": len(images),
        "counts": {CATEGORIES[c]: int(counts[c - 1]) for c in CATEGORIES},
        "accuracy": None,
        "samples": [],
    }
    if answers:
        known = np.array([name in answers for name in names])
        truth = np.array([answers.get(name, 0) for name in names])
        if known.any():
            entry["accuracy"] = float(np.mean(predicted[known] == truth[known]))
            entry["labelled_test_images"] = int(known.sum())

    rng = np.random.default_rng(zlib.crc32(model_file.name.encode()))
    picks = sorted(rng.choice(len(images), size=min(SAMPLES_PER_MODEL, len(images)), replace=False).tolist())
    for i in picks:
        category = CATEGORIES[int(predicted[i])]
        relative = f"predictions/{model_file.name}/img{i}_{category}.png"
        Image.fromarray(images[i], "RGB").save(output_path(relative))
        sample = {
            "index": i,
            "image": names[i],
            "predicted": category,
            "file": relative,
            "confidence": round(float(probabilities[i].max()), 4),
        }
        if answers and names[i] in answers:
            sample["true"] = CATEGORIES[answers[names[i]]]
        entry["samples"].append(sample)
        print(f"Model: {model_file.name}, Predicted ship type: {category} ({names[i]})")
    return entry


# --- report ---------------------------------------------------------------------------------------


def missing_cells(harbours: list[str], models: list[ModelFile]) -> list[str]:
    """Cells of the harbor x epochs grid without a model (left out of a partial sweep), as `<harbor>/epochs-<n>`."""
    have = {(m.harbor, m.epochs) for m in models}
    epochs = sorted({m.epochs for m in models})
    return [f"{h}/epochs-{e}" for h in harbours for e in epochs if (h, e) not in have]


def write_heatmap(
    path: str, models: list[ModelFile], harbours: list[str] | None = None, reused: dict[str, str] | None = None
) -> None:
    """Validation accuracy per harbor (rows) and epochs (columns), from the models' metrics files.

    A cell with no model (a sweep cell that failed and was left out) reads `missing` on a hatched
    background; a model without a validation accuracy reads `n/a`; a reused cell's value is followed by
    `(reused)`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    harbors = sorted({m.harbor for m in models} | set(harbours or []))
    epochs = sorted({m.epochs for m in models})
    grid = np.full((len(harbors), len(epochs)), np.nan)
    present = np.zeros((len(harbors), len(epochs)), dtype=bool)
    for m in models:
        present[harbors.index(m.harbor), epochs.index(m.epochs)] = True
        if m.metrics.get("val_accuracy") is not None:
            grid[harbors.index(m.harbor), epochs.index(m.epochs)] = m.metrics["val_accuracy"]
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(epochs), 1.2 + 0.8 * len(harbors)), dpi=100)
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(epochs)), [str(e) for e in epochs])
    ax.set_yticks(range(len(harbors)), harbors)
    ax.set_xlabel("epochs")
    ax.set_title("validation accuracy")
    for r in range(len(harbors)):
        for c in range(len(epochs)):
            if not present[r, c]:
                ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, hatch="//", edgecolor="grey"))
            text = "missing" if not present[r, c] else "n/a" if np.isnan(grid[r, c]) else f"{grid[r, c]:.2f}"
            if present[r, c] and f"{harbors[r]}/epochs-{epochs[c]}" in (reused or {}):
                text += "\n(reused)"
            ax.text(
                c,
                r,
                text,
                ha="center",
                va="center",
                color="white" if np.isnan(grid[r, c]) or grid[r, c] < 0.6 else "black",
            )
    fig.colorbar(image, ax=ax, fraction=0.05)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def fmt(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))


def write_index(
    path: str,
    results: dict[str, dict[str, Any]],
    missing: list[str] | None = None,
    reused: dict[str, str] | None = None,
) -> None:
    """A static page: heatmap, one table row per model, the sample predictions (relative links), the cells
    left out of a partial sweep, and the cells whose model was reused from an earlier pipeline."""
    rows, gallery = [], []
    left_out = (
        f"<p><strong>Missing cells</strong> (failed, left out of this report): {html.escape(', '.join(missing))}</p>"
        if missing
        else ""
    )
    reused_line = (
        "<p><strong>Reused cells</strong> (not trained again: their model comes from an earlier pipeline): "
        + html.escape(", ".join(f"{cell} ({where})" for cell, where in sorted(reused.items())))
        + "</p>"
        if reused
        else ""
    )
    for name, r in results.items():
        counts = ", ".join(f"{k} {v}" for k, v in r["counts"].items())
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{html.escape(r['harbor'])}</td><td>{r['epochs']}</td>"
            f"<td>{fmt(r['val_accuracy'])}</td><td>{fmt(r['accuracy'])}</td><td>{r['test_images']}</td>"
            f"<td>{html.escape(counts)}</td><td>{fmt(r.get('reused_from'))}</td></tr>"
        )
        cards = []
        for s in r["samples"]:
            truth = f" (true: {html.escape(s['true'])})" if "true" in s else ""
            mark = "" if "true" not in s else (" ok" if s["true"] == s["predicted"] else " wrong")
            cards.append(
                f'<figure class="{mark.strip()}"><img src="../{html.escape(s["file"])}" alt="{html.escape(s["image"])}">'
                f"<figcaption>{html.escape(s['predicted'])}{truth}<br><small>{html.escape(s['image'])}</small></figcaption></figure>"
            )
        gallery.append(f"<section><h3>{html.escape(name)}</h3>{''.join(cards)}</section>")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sweep report</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }} table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; }}
figure {{ display: inline-block; margin: 0 12px 12px 0; text-align: center; }}
figure img {{ width: 128px; height: 128px; image-rendering: pixelated; border: 3px solid #ddd; }}
figure.ok img {{ border-color: #2a2; }} figure.wrong img {{ border-color: #c22; }}
</style></head><body>
<h1>Sweep report</h1>
<h2>Validation accuracy (harbor &times; epochs)</h2>
<img src="heatmap.png" alt="validation accuracy heatmap">
{left_out}
{reused_line}
<h2>Models</h2>
<table><tr><th>model</th><th>harbor</th><th>epochs</th><th>val accuracy</th><th>test accuracy</th><th>test images</th><th>predicted counts</th><th>reused from</th></tr>
{"".join(rows)}
</table>
<h2>Sample predictions</h2>
{"".join(gallery)}
</body></html>
"""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(page)


# --- main -----------------------------------------------------------------------------------------


def main() -> None:
    valohai.prepare(
        step="predict-models",
        default_parameters=DEFAULTS,
        default_inputs={"dataset": [], "models": [], "test_labels": []},
    )
    harbours = [check_harbor_name(h, "harbours") for h in as_list(parameter("harbours", DEFAULTS["harbours"]))]
    exec_ids = as_list(parameter("exec_ids", DEFAULTS["exec_ids"]))
    reused = parse_reused(as_list(parameter("reused_cells", DEFAULTS["reused_cells"])))

    model_paths = input_files("models")
    if not any(MODEL_FILE.match(os.path.basename(p)) for p in model_paths) and exec_ids:
        print(f"Executions to get the outputs from: {exec_ids}")
        model_paths = download_models(exec_ids, tempfile.mkdtemp(prefix="predict-models-"))
    models = collect_models(model_paths)
    if not models:
        raise StepError(
            "no model-<harbor>-epochs-<n>.keras files in input 'models' and no exec_ids: "
            "pass the train outputs as the 'models' input or their execution ids as exec_ids"
        )
    harbours = harbours or sorted({m.harbor for m in models})
    test_sets = files_by_harbor(input_files("dataset"), TEST_FILE)
    label_files = files_by_harbor(input_files("test_labels"), LABELS_FILE)
    for harbor in harbours:
        if not any(m.harbor == harbor for m in models):
            have = ", ".join(sorted({m.harbor for m in models}))
            raise StepError(
                f"no model for harbor {harbor} in the models given (models exist for: {have}): "
                f"train {harbor} first or remove it from harbours"
            )
        if harbor not in test_sets:
            raise StepError(
                f"no preprocessed_test_data_{harbor}.npz in input 'dataset': "
                f"pass dataset://{harbor}_test/latest (or the file) as the dataset input"
            )

    configure_tensorflow(seed=None)
    results: dict[str, dict[str, Any]] = {}
    selected = [m for m in models if m.harbor in harbours]
    for harbor in harbours:
        print(f"Running predictions for dataset: {harbor}")
        images, names = load_test_set(test_sets[harbor])
        answers = read_labels_csv(label_files[harbor]) if harbor in label_files else None
        for model_file in (m for m in selected if m.harbor == harbor):
            entry = predict_model(model_file, images, names, answers)
            entry["reused_from"] = reused.get(cell_of(model_file))
            results[model_file.name] = entry
            print_metadata(model=model_file.name, test_accuracy=entry["accuracy"], val_accuracy=entry["val_accuracy"])

    missing = missing_cells(harbours, selected)
    reused = {cell: where for cell, where in reused.items() if any(cell_of(m) == cell for m in selected)}
    summary = {"harbours": harbours, "models": results, "missing_cells": missing, "reused_cells": reused}
    write_json(output_path("predictions.json"), summary)
    write_heatmap(output_path("report/heatmap.png"), selected, harbours, reused)
    write_index(output_path("report/index.html"), results, missing, reused)
    print(f"Wrote predictions.json and report/index.html for {len(results)} models")


if __name__ == "__main__":
    run_step(main)
