"""Bad parameters and missing inputs fail fast: exit code 2, one clear stderr line naming the fix, no traceback.

Also: generate-harbors is deterministic, and predict-models fetches models through the Valohai API
when given exec_ids (against a throwaway local HTTP server).
"""

from __future__ import annotations

import http.server
import json
import threading
import zipfile
from pathlib import Path
from typing import ClassVar

import pytest
from step_runner import HARBORS, TRAIN_EPOCHS, run_script


def assert_one_line_error(run, *words: str) -> None:
    assert run.proc.returncode == 2, (run.proc.returncode, run.proc.stdout[-2000:], run.proc.stderr[-2000:])
    lines = [line for line in run.proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.proc.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in run.proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("small")
    run_script(
        out,
        "generate_harbors.py",
        ["--harbors=harbor_A", "--image_size=16", "--images_per_class=3", "--test_images_per_harbor=2"],
    )
    return out / "outputs"


def test_generate_is_byte_identical_for_a_seed(tmp_path, small_dataset):
    again = run_script(
        tmp_path,
        "generate_harbors.py",
        ["--harbors=harbor_A", "--image_size=16", "--images_per_class=3", "--test_images_per_harbor=2"],
    )
    for name in ("images.zip", "train_harbor_A.csv", "test_labels_harbor_A.csv"):
        assert (again.outputs / name).read_bytes() == (small_dataset / name).read_bytes(), name
    other = run_script(
        tmp_path / "other",
        "generate_harbors.py",
        ["--harbors=harbor_A", "--image_size=16", "--images_per_class=3", "--test_images_per_harbor=2", "--seed=8"],
    )
    assert (other.outputs / "images.zip").read_bytes() != (small_dataset / "images.zip").read_bytes()


def test_generate_is_fast(tmp_path):
    run = run_script(
        tmp_path,
        "generate_harbors.py",
        ["--harbors=a,b", "--image_size=32", "--images_per_class=40", "--test_images_per_harbor=10"],
    )
    (meta,) = [m for m in run.metadata if "generated_images" in m]
    assert meta["generated_images"] == 420
    assert meta["generate_seconds"] < 10, meta  # about 0.5 s on an idle 2-core machine; generous for a loaded one
    assert len(zipfile.ZipFile(run.outputs / "images.zip").namelist()) == 420


def test_generate_rejects_a_harbor_name_unusable_in_files(tmp_path):
    run = run_script(tmp_path, "generate_harbors.py", ["--harbors=harbor A/x"], check=False)
    assert_one_line_error(run, "harbor A/x", "harbors")


def test_preprocess_unknown_harbor_names_the_known_ones(tmp_path, small_dataset):
    run = run_script(
        tmp_path,
        "preprocess_dataset.py",
        [
            "--dataset_name=harbor_Z",
            "--dataset",
            str(small_dataset / "images.zip"),
            "--labels",
            str(small_dataset / "train_harbor_A.csv"),
        ],
        check=False,
    )
    assert_one_line_error(run, "train_harbor_Z.csv", "harbor_A", "dataset_name")


def test_preprocess_empty_label_csv(tmp_path, small_dataset):
    empty = tmp_path / "train_harbor_A.csv"
    empty.write_text("image,category\n")
    run = run_script(
        tmp_path,
        "preprocess_dataset.py",
        ["--dataset_name=harbor_A", "--dataset", str(small_dataset / "images.zip"), "--labels", str(empty)],
        check=False,
    )
    assert_one_line_error(run, "train_harbor_A.csv has no rows")


def test_preprocess_without_images(tmp_path, small_dataset):
    run = run_script(
        tmp_path, "preprocess_dataset.py", ["--labels", str(small_dataset / "train_harbor_A.csv")], check=False
    )
    assert_one_line_error(run, "input 'dataset'", "--dataset=")


def test_preprocess_reads_the_seed_layout_with_numeric_names(tmp_path):
    """The real seed data: numeric names, one CSV per harbor, unlabelled images are every harbor's test set."""
    from PIL import Image

    images = tmp_path / "images.zip"
    with zipfile.ZipFile(images, "w") as archive:
        for i in range(12):
            path = tmp_path / f"{2823080 + i}.jpg"
            Image.new("RGB", (90 + i, 60), (20 * i, 100, 150)).save(path)
            archive.write(path, f"images/{path.name}")
    (tmp_path / "train_harbor_A.csv").write_text(
        "image,category\n" + "".join(f"{2823080 + i}.jpg,{i % 5 + 1}\n" for i in range(6))
    )
    (tmp_path / "train_harbor_B.csv").write_text(
        "image,category\n" + "".join(f"{2823080 + i}.jpg,{i % 5 + 1}\n" for i in range(6, 10))
    )
    run = run_script(
        tmp_path / "run",
        "preprocess_dataset.py",
        [
            "--dataset_name=harbor_A",
            "--image_size=24",
            "--dataset",
            str(images),
            "--labels",
            str(tmp_path / "train_harbor_A.csv"),
            str(tmp_path / "train_harbor_B.csv"),
        ],
    )
    import numpy as np

    with np.load(run.outputs / "train" / "preprocessed_data_harbor_A.npz") as data:
        assert len(data["x_train"]) + len(data["x_val"]) == 6 and data["x_train"].shape[1:] == (24, 24, 3)
    with np.load(run.outputs / "test" / "harbor_A" / "preprocessed_test_data_harbor_A.npz") as data:
        assert data["test_names"].tolist() == ["2823090.jpg", "2823091.jpg"]
    assert run.metadata[-1] == {"run_training_for": "harbor_A"}


def test_train_rejects_zero_epochs_before_loading_tensorflow(tmp_path):
    run = run_script(tmp_path, "train.py", ["--epochs=0"], check=False)
    assert_one_line_error(run, "epochs=0", "--epochs=")


def test_train_without_its_dataset(tmp_path):
    run = run_script(tmp_path, "train.py", ["--dataset_name=harbor_A", "--epochs=1"], check=False)
    assert_one_line_error(run, "preprocessed_data_harbor_A.npz", "preprocess-dataset")


def test_predict_missing_model_for_a_harbour(tmp_path, sweep):
    models = sorted(sweep["train_harbor_A"].outputs.iterdir())
    test_set = sweep["preprocess_harbor_A"].outputs / "test" / "harbor_A" / "preprocessed_test_data_harbor_A.npz"
    run = run_script(
        tmp_path,
        "predict_models.py",
        ["--harbours=harbor_A,harbor_B", "--dataset", str(test_set), "--models", *map(str, models)],
        check=False,
    )
    assert_one_line_error(run, "no model for harbor harbor_B", "harbor_A")


def test_predict_without_any_model(tmp_path):
    run = run_script(tmp_path, "predict_models.py", ["--harbours=harbor_A"], check=False)
    assert_one_line_error(run, "input 'models'", "exec_ids")


def test_predict_rejects_a_malformed_reused_cells_value_before_loading_models(tmp_path):
    """Values reach the step as Valohai renders a `multiple: separate` parameter: one comma-joined argument."""
    run = run_script(
        tmp_path,
        "predict_models.py",
        ["--harbours=harbor_A", "--reused_cells=harbor_A/epochs-2=pipeline #7,bogus"],
        check=False,
    )
    assert_one_line_error(run, "reused_cells value 'bogus'", "harbor_A/epochs-2=pipeline #7")


def test_predict_exec_ids_need_a_token(tmp_path):
    run = run_script(
        tmp_path,
        "predict_models.py",
        ["--exec_ids=abc,def", "--harbours=harbor_A"],
        parameters={"exec_ids": ["abc"], "harbours": ["harbor_A"]},
        check=False,
    )
    assert_one_line_error(run, "VALOHAI_API_TOKEN")


class FakeValohai(http.server.BaseHTTPRequestHandler):
    """Just enough of the API: execution outputs with download URLs, token checked like Valohai."""

    files: ClassVar[dict[str, dict[str, Path]]] = {}
    token = "test-token"

    def do_GET(self):
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts[:3] == ["api", "v0", "executions"] and parts[4:] == ["outputs"]:
            if self.headers.get("Authorization") != f"Token {self.token}":
                return self.reply(401, b'{"detail": "Authentication credentials were not provided."}')
            outputs = [
                {"name": name, "download_url": f"/download/{parts[3]}/{name}"} for name in self.files.get(parts[3], {})
            ]
            return (
                self.reply(200, json.dumps(outputs).encode())
                if parts[3] in self.files
                else self.reply(404, b'{"detail": "Not found."}')
            )
        if parts[0] == "download":
            return self.reply(200, self.files[parts[1]][parts[2]].read_bytes())
        return self.reply(404, b"{}")

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_api(sweep):
    FakeValohai.files = {f"exec-{h}": {p.name: p for p in sweep[f"train_{h}"].outputs.iterdir()} for h in HARBORS}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeValohai)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_predict_fetches_models_by_exec_ids_through_the_api(tmp_path, sweep, fake_api):
    test_sets = [sweep[f"preprocess_{h}"].outputs / "test" / h / f"preprocessed_test_data_{h}.npz" for h in HARBORS]
    run = run_script(
        tmp_path,
        "predict_models.py",
        [
            "--exec_ids=exec-harbor_A,exec-harbor_B",
            f"--harbours={','.join(HARBORS)}",
            "--dataset",
            *map(str, test_sets),
        ],
        extra_env={"VALOHAI_HOST": fake_api, "VALOHAI_API_TOKEN": FakeValohai.token},
    )
    predictions = json.loads((run.outputs / "predictions.json").read_text())
    assert set(predictions["models"]) == {f"model-{h}-epochs-{TRAIN_EPOCHS}" for h in HARBORS}
    assert all(m["val_accuracy"] is not None for m in predictions["models"].values()), "metrics came along"

    wrong = run_script(
        tmp_path / "wrong",
        "predict_models.py",
        ["--exec_ids=exec-nope", "--harbours=harbor_A"],
        extra_env={"VALOHAI_HOST": fake_api, "VALOHAI_API_TOKEN": FakeValohai.token},
        check=False,
    )
    assert_one_line_error(wrong, "404", "exec_ids")
