"""The report marks the cells a partial sweep left out (no model): in the heatmap and on the page."""

from __future__ import annotations

import numpy as np
from PIL import Image

from steps.predict_models import ModelFile, missing_cells, write_heatmap, write_index


def model(harbor: str, epochs: int, accuracy: float | None = 0.5) -> ModelFile:
    metrics = {} if accuracy is None else {"val_accuracy": accuracy}
    return ModelFile(f"model-{harbor}-epochs-{epochs}", "unused", harbor, epochs, metrics)


def test_missing_cells_are_the_grid_positions_without_a_model():
    models = [model("hA", 1), model("hA", 2), model("hB", 1)]
    assert missing_cells(["hA", "hB"], models) == ["hB/epochs-2"]
    assert missing_cells(["hA", "hB", "hC"], models) == ["hB/epochs-2", "hC/epochs-1", "hC/epochs-2"]
    assert missing_cells(["hA"], [model("hA", 1)]) == []


def test_heatmap_hatches_a_missing_cell(tmp_path):
    full = tmp_path / "full.png"
    partial = tmp_path / "partial.png"
    write_heatmap(str(full), [model("hA", 1), model("hA", 2), model("hB", 1), model("hB", 2)], ["hA", "hB"])
    write_heatmap(str(partial), [model("hA", 1), model("hA", 2), model("hB", 1)], ["hA", "hB"])
    a = np.asarray(Image.open(full).convert("RGB"))
    b = np.asarray(Image.open(partial).convert("RGB"))
    assert a.shape == b.shape  # the same grid: the missing cell keeps its place
    assert (a != b).any(axis=2).sum() > 500, "the missing cell looks like a present one"


def test_page_lists_missing_cells(tmp_path):
    page = tmp_path / "index.html"
    write_index(str(page), {}, ["hB/epochs-2"])
    assert "Missing cells" in page.read_text() and "hB/epochs-2" in page.read_text()
    write_index(str(page), {}, [])
    assert "Missing cells" not in page.read_text()
