"""The report marks the cells whose model was reused from an earlier pipeline (parameter `reused_cells`)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from steps.predict_models import ModelFile, StepError, parse_reused, write_heatmap, write_index


def model(harbor: str, epochs: int) -> ModelFile:
    return ModelFile(f"model-{harbor}-epochs-{epochs}", "unused", harbor, epochs, {"val_accuracy": 0.5})


def entry(harbor: str, epochs: int, reused_from: str | None) -> dict:
    return {
        "harbor": harbor,
        "epochs": epochs,
        "val_accuracy": 0.5,
        "accuracy": None,
        "test_images": 4,
        "counts": {},
        "samples": [],
        "reused_from": reused_from,
    }


def test_reused_cells_values_parse_and_a_bad_one_names_the_fix():
    assert parse_reused(["hA/epochs-2=pipeline #7", "hB/epochs-10"]) == {
        "hA/epochs-2": "pipeline #7",
        "hB/epochs-10": "an earlier pipeline",
    }
    assert parse_reused([]) == {}
    with pytest.raises(StepError, match="reused_cells value 'hA-2' is not <harbor>/epochs-<n>"):
        parse_reused(["hA-2"])


def test_page_lists_reused_cells_and_marks_their_rows(tmp_path):
    page = tmp_path / "index.html"
    results = {
        "model-hA-epochs-1": entry("hA", 1, "pipeline #7"),
        "model-hA-epochs-2": entry("hA", 2, None),
    }
    write_index(str(page), results, [], {"hA/epochs-1": "pipeline #7"})
    text = page.read_text()
    assert "Reused cells" in text and "hA/epochs-1 (pipeline #7)" in text
    assert "<td>pipeline #7</td>" in text and text.count("<td>–</td>") >= 1  # the re-trained row says none
    write_index(str(page), results, [], {})
    assert "Reused cells" not in page.read_text()


def test_heatmap_marks_a_reused_cell(tmp_path):
    models = [model("hA", 1), model("hA", 2)]
    plain, marked = tmp_path / "plain.png", tmp_path / "marked.png"
    write_heatmap(str(plain), models, ["hA"])
    write_heatmap(str(marked), models, ["hA"], {"hA/epochs-1": "pipeline #7"})
    a = np.asarray(Image.open(plain).convert("RGB"))
    b = np.asarray(Image.open(marked).convert("RGB"))
    assert a.shape == b.shape and (a != b).any(axis=2).sum() > 50, "the reused cell looks like the others"
