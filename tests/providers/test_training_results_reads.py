"""Where `TrainingResults` takes each cell's metrics and models from (providers/resources/training_results.py):
the pipeline's own read when its node carries the execution in full, else one read per execution."""

from __future__ import annotations

from providers.resources.packed import unpack
from providers.resources.training_results import PACKED_OUTPUTS, TrainingResultsProvider

MODEL = {"id": "d-model", "name": "model-harbor_A-epochs-2.keras"}
METRICS_FILE = {"id": "d-metrics", "name": "metrics-harbor_A-epochs-2.json"}
LOG = {"id": "d-log", "name": "train.log"}


class ExecutionReads:
    """Answers the two per-execution reads and counts them (the execution as Valohai's detail would show it)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def get_execution(self, execution_id: str, *, exclude: str = "") -> dict:
        self.calls.append(("detail", execution_id))
        return {"id": execution_id, "cumulative_metadata": {"val_accuracy": 0.7, "epoch": 2}}

    def execution_outputs(self, execution_id: str) -> list[dict]:
        self.calls.append(("outputs", execution_id))
        return [LOG, MODEL, METRICS_FILE]


def opened(outputs: dict) -> dict:
    """The outputs as the program sees them: the per-cell ones are stored packed."""
    assert all(isinstance(outputs[name], str) for name in PACKED_OUTPUTS)
    return {k: unpack(v) if k in PACKED_OUTPUTS else v for k, v in outputs.items()}


def test_a_node_carrying_its_execution_in_full_needs_no_read():
    api = ExecutionReads()
    full = {"id": "e1", "status": "complete", "cumulative_metadata": {"val_accuracy": 0.9}, "outputs": [MODEL, LOG]}
    results = opened(TrainingResultsProvider._results(api, {"harbor_A/epochs-2": full}))
    assert api.calls == []
    assert results["metrics"] == {"harbor_A/epochs-2": {"val_accuracy": 0.9}}
    assert results["model_uris"] == {"harbor_A/epochs-2": ["datum://d-model"]}


def test_a_node_with_an_execution_summary_is_read_per_execution():
    api = ExecutionReads()
    summary = {"id": "e2", "status": "complete", "counter": 7}
    results = opened(TrainingResultsProvider._results(api, {"harbor_A/epochs-2": summary}))
    assert api.calls == [("detail", "e2"), ("outputs", "e2")]
    assert results["metrics"] == {"harbor_A/epochs-2": {"val_accuracy": 0.7}}
    assert results["model_uris"] == {"harbor_A/epochs-2": ["datum://d-metrics", "datum://d-model"]}
    assert results["training_execution_ids"] == {"harbor_A/epochs-2": "e2"}
