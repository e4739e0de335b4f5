"""The seed's documented set-up on the local backend: the API token as a *secret project variable*, then
`predict-models` with `exec_ids` downloads the train models through the API.

The models are the session sweep's real train outputs, put on the backend as the outputs of executions
(a copy command), so this runs `predict-models` from the repository's own valohai.yaml and steps/ on the
backend, with the token reaching the step only through the project's secret `VALOHAI_API_TOKEN`.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path

import pytest
from step_runner import HARBORS, TRAIN_EPOCHS

from local_valohai.testing import LocalValohai

ROOT = Path(__file__).resolve().parents[2]


def _package() -> bytes:
    """valohai.yaml, steps/*.py and steps/requirements.txt as an ad-hoc package."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in [
            ROOT / "valohai.yaml",
            ROOT / "steps" / "requirements.txt",
            *sorted((ROOT / "steps").glob("*.py")),
        ]:
            tar.add(str(path), arcname=path.relative_to(ROOT).as_posix())
    return buf.getvalue()


def _wait(session, url: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = session.get(url, timeout=10).json()
        if body["status"] in ("complete", "error", "stopped"):
            return body
        assert time.monotonic() < deadline, f"{url} still {body['status']}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def backend(tmp_path_factory, monkeypatch_module):
    monkeypatch_module.delenv("VALOHAI_API_TOKEN", raising=False)
    monkeypatch_module.delenv("VALOHAI_HOST", raising=False)
    with LocalValohai(tmp_path_factory.mktemp("seed-setup"), workers=2) as server:
        yield server


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_secret_project_token_lets_predict_models_fetch_by_exec_ids(backend, sweep):
    api, session = backend.api, backend.session()
    project = session.post(f"{api}/projects/", json={"name": "seed-setup"}, timeout=10).json()
    files = {"data": ("p.tgz", _package(), "application/gzip")}
    commit = session.post(f"{api}/projects/{project['id']}/import-package/", files=files, timeout=30).json()
    variables = f"{api}/projects/{project['id']}/environment_variable/"
    for name, value, secret in (("VALOHAI_API_TOKEN", backend.token, True), ("VALOHAI_HOST", backend.url, False)):
        made = session.post(variables, json={"name": name, "value": value, "secret": secret}, timeout=10)
        assert made.status_code == 201, made.text

    def run(command: str | None = None, step: str = "predict-models", **payload) -> dict:
        body = {"project": project["id"], "commit": commit["identifier"], "step": step, **payload}
        if command:
            body["command"] = command
        created = session.post(f"{api}/executions/", json=body, timeout=30)
        assert created.status_code == 201, created.text
        return _wait(session, f"{api}/executions/{created.json()['id']}/")

    # "train" executions: the sweep's model and metrics files become their outputs
    train_ids = []
    for harbor in HARBORS:
        folder = sweep[f"train_{harbor}"].outputs
        done = run(f"cp {folder}/model-* {folder}/metrics-* $VH_OUTPUTS_DIR/", "generate-harbors")
        assert done["status"] == "complete", done
        train_ids.append(done["id"])
    test_sets = [sweep[f"preprocess_{h}"].outputs / "test" / h / f"preprocessed_test_data_{h}.npz" for h in HARBORS]
    copied = run(f"cp {' '.join(map(str, test_sets))} $VH_OUTPUTS_DIR/", "generate-harbors")
    dataset = [o["uri"] for o in copied["outputs"]]

    predicted = run(
        parameters={"exec_ids": train_ids, "harbours": HARBORS},
        inputs={"dataset": dataset},
    )
    events = session.get(f"{api}/executions/{predicted['id']}/events/", params={"limit": 0}, timeout=10).text
    assert predicted["status"] == "complete", events[-3000:]
    assert "Executions to get the outputs from" in events
    signed = session.get(
        f"{api}/executions/{predicted['id']}/outputs/", params={"include": "download_url"}, timeout=10
    ).json()
    url = next(o["download_url"] for o in signed if o["name"] == "predictions.json")
    predictions = session.get(url if url.startswith("http") else backend.url + url, timeout=10)
    models = json.loads(predictions.text)["models"]
    assert set(models) == {f"model-{h}-epochs-{TRAIN_EPOCHS}" for h in HARBORS}

    # the secret is nowhere a client or a log can see
    seen = [
        events,
        session.get(f"{api}/projects/{project['id']}/", timeout=10).text,
        session.get(f"{api}/executions/", params={"project": project["id"]}, timeout=10).text,
        # the server prints its own login token once at start-up (the one value here): every other line
        *(line for line in backend.log_path.read_text(errors="replace").splitlines() if not line.startswith("token: ")),
    ]
    assert backend.token not in "\n".join(seen)
