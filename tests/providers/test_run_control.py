"""Run control: waits that end on Ctrl-C or a killed CLI, one deadline, the on_cancel / on_timeout policy,
and stop-before-replace in the diff."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc
from slow_provider import SlowProvider
from support import FakeClock

from providers.api import cancellation, waiting
from providers.resources.harbor_dataset import HarborDatasetProvider
from providers.resources.pipelines import PipelineProvider
from providers.resources.prediction import PredictionProvider
from providers.resources.run_control import ended_early, settle, wait_seconds
from providers.resources.training_results import TrainingResultsProvider
from providers.sweep.config import SweepConfigError, parse_sweep

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def fresh_cancellation():
    cancellation.reset()
    yield
    cancellation.reset()


class CancellingClock:
    """Fake time; the process is cancelled during the third sleep."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = 0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps += 1
        self.now += seconds
        if self.sleeps == 3:
            cancellation.request_cancel("pulumi up was interrupted")


def test_a_cancel_ends_the_wait_naming_the_unfinished(monkeypatch):
    monkeypatch.setattr(waiting, "clock", CancellingClock())
    with pytest.raises(waiting.WaitCancelled) as caught:
        waiting.wait_for(lambda: {"a": "complete", "b": "started", "c": "queued"}, timeout=3600)
    assert caught.value.unfinished == ["b", "c"]
    assert "pulumi up was interrupted" in str(caught.value)
    assert waiting.clock.sleeps == 3


def test_real_clock_sleep_wakes_on_cancel():
    threading.Timer(0.2, cancellation.request_cancel, args=("test",)).start()
    started = time.monotonic()
    waiting.RealClock().sleep(30)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("exc", "control", "stopped", "words"),
    [
        (waiting.WaitCancelled(["c1", "c2"], "pulumi up was interrupted"), {}, [], "keep running"),
        (waiting.WaitCancelled(["c1"], "pulumi up was interrupted"), {"on_cancel": "stop"}, ["c1"], "stopped them"),
        (waiting.WaitTimeout(["c2"], 60), {"on_timeout": "stop"}, ["c2"], "stopped them (on_timeout: stop)"),
        (waiting.WaitTimeout(["c2"], 60), {"on_cancel": "stop"}, [], "set on_timeout: stop"),
    ],
)
def test_policy_decides_the_fate_of_unfinished_work(exc, control, stopped, words):
    calls: list[list[str]] = []
    error = ended_early(exc, {"run_control": control}, calls.append)
    assert calls == ([stopped] if stopped else [])
    assert words in str(error)
    assert ", ".join(exc.unfinished) in str(error)


def test_a_failing_stop_is_reported_not_hidden():
    def stop(names):
        raise RuntimeError("server said no")

    error = ended_early(waiting.WaitCancelled(["c1"], "x"), {"run_control": {"on_cancel": "stop"}}, stop)
    assert "server said no" in str(error) and "c1" in str(error)


def test_one_deadline_for_every_wait():
    assert wait_seconds({}, 1800) == 1800  # state from before deadlines existed
    left = wait_seconds({"run_control": {"deadline": time.time() + 90}}, 1800)
    assert 85 < left <= 90
    assert wait_seconds({"run_control": {"deadline": time.time() - 5}}, 1800) == 0


def identity(lr):
    return {"train": {"step": {"sha256": "s"}, "parameters": {"learning_rate": lr}}}


@pytest.mark.parametrize(
    ("provider", "expected"),
    [
        (PipelineProvider(), True),
        (HarborDatasetProvider(), True),
        (PredictionProvider(), True),
    ],
)
def test_replaced_objects_are_stopped_before_the_replacement(provider, expected, capsys):
    olds = {"host": "h", "key": "old", "label": "harbor_A/epochs-1", "status": "started", "identity": identity(0.1)}
    news = {**olds, "key": "new", "identity": identity(0.2)}
    result = provider.diff("id", olds, news)
    assert result.replaces and result.delete_before_replace is expected
    assert "stopped before its replacement starts" in capsys.readouterr().out


def test_a_finished_replaced_pipeline_is_kept_until_its_replacement_exists(capsys):
    """A complete old pipeline is deleted after its replacement, whose mimic nodes may point into it."""
    olds = {"host": "h", "key": "old", "label": "harbor_A/epochs-1", "status": "complete", "identity": identity(0.1)}
    result = PipelineProvider().diff("id", olds, {**olds, "key": "new", "identity": identity(0.2)})
    assert result.replaces and result.delete_before_replace is False
    assert "stopped before" not in capsys.readouterr().out


def test_unchanged_or_results_are_not_deleted_first(capsys):
    olds = {"host": "h", "key": "k", "label": "c", "status": "complete", "identity": identity(0.1)}
    assert PipelineProvider().diff("id", olds, dict(olds)).delete_before_replace is False
    results = {"host": "h", "cells": {}, "timeout_seconds": 60}
    assert TrainingResultsProvider().diff("r", results, {**results, "host": "h2"}).delete_before_replace is False


def test_policy_config_keys():
    sweep = parse_sweep({"harbors": ["a"], "epochs": [1]})
    assert (sweep.on_cancel, sweep.on_timeout) == ("leave", "leave")
    assert parse_sweep({"harbors": ["a"], "epochs": [1], "on_cancel": "stop"}).on_cancel == "stop"
    with pytest.raises(SweepConfigError, match=r"on_timeout must be leave .* or stop, got 'kill'"):
        parse_sweep({"harbors": ["a"], "epochs": [1], "on_timeout": "kill"})


# --- the SDK's real provider server -----------------------------------------------------------------


def start_server(engine_address: str) -> tuple[subprocess.Popen, provider_pb2_grpc.ResourceProviderStub]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent)])}
    env["PULUMI_PROJECT"] = "test"
    server = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.dynamic", engine_address],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert server.stdout is not None
    port = int(server.stdout.readline())
    return server, provider_pb2_grpc.ResourceProviderStub(grpc.insecure_channel(f"127.0.0.1:{port}"))


def create_in_background(stub) -> tuple[threading.Thread, dict]:
    import asyncio

    props = asyncio.run(rpc.serialize_properties({"__provider": serialize_provider(SlowProvider())}, {}))
    outcome: dict = {}

    def call():
        try:
            stub.Create(provider_pb2.CreateRequest(urn="urn:x", properties=props))
            outcome["error"] = None
        except grpc.RpcError as exc:
            outcome["error"] = exc.details()
        outcome["at"] = time.monotonic()

    thread = threading.Thread(target=call)
    thread.start()
    return thread, outcome


@pytest.fixture
def engine():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener
    listener.close()


def test_cancel_rpc_ends_a_waiting_create(engine):
    server, stub = start_server(f"127.0.0.1:{engine.getsockname()[1]}")
    try:
        thread, outcome = create_in_background(stub)
        time.sleep(3)  # the create is waiting now
        assert thread.is_alive()
        sent = time.monotonic()
        stub.Cancel(provider_pb2.google_dot_protobuf_dot_empty__pb2.Empty())
        thread.join(10)
        assert outcome["at"] - sent < 5
        assert "ended early: pulumi up was interrupted; unfinished: harbor_A/epochs-1" in outcome["error"]
    finally:
        server.kill()
        server.wait()


def test_an_orphaned_provider_stops_waiting(engine):
    server, stub = start_server(f"127.0.0.1:{engine.getsockname()[1]}")
    try:
        thread, outcome = create_in_background(stub)
        time.sleep(3)
        assert thread.is_alive()
        engine.close()  # the CLI is gone
        gone = time.monotonic()
        thread.join(15)
        assert outcome["at"] - gone < 8
        assert "engine stopped answering" in outcome["error"] and "harbor_A/epochs-1" in outcome["error"]
    finally:
        server.kill()
        server.wait()


@pytest.mark.block_network(allowed_hosts=["127.0.0.1"])  # the watch connects to the stand-in engine
def test_an_orphaned_provider_ends_once_the_engine_stays_gone(engine):
    """A live engine keeps the provider up; once it has gone, the waits are cancelled at once and the process
    ends after `exit_after` more (the SDK's server never stops by itself, and a shell wrapper outlives the CLI)."""

    def answer() -> None:  # a live engine accepts every connection (a bare listener's backlog would fill)
        while True:
            try:
                engine.accept()[0].close()
            except OSError:
                return

    threading.Thread(target=answer, daemon=True).start()
    ended: list[int] = []
    watcher = threading.Thread(
        target=cancellation.watch_engine,
        args=(f"127.0.0.1:{engine.getsockname()[1]}", os.getppid()),
        kwargs={"interval": 0.02, "misses": 2, "exit_after": 0.3, "end_process": ended.append},
        daemon=True,
    )
    watcher.start()
    time.sleep(1.0)  # ~50 checks, each longer than `exit_after` if refused
    assert not ended and not cancellation.CANCELLED.is_set() and watcher.is_alive()  # the engine answers
    engine.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
    engine.close()
    watcher.join(10)
    assert ended == [0] and not watcher.is_alive()
    assert "engine stopped answering" in cancellation.reason()


# --- partial success ----------------------------------------------------------------------------------


def test_partial_success_needs_the_ratio_and_a_prediction_that_did_not_fail():
    from providers.resources.training_results import PREDICT_CELL, partial_success

    three_of_four = {"a": "complete", "b": "complete", "c": "complete", "d": "error"}
    assert partial_success(three_of_four, 4, 0.75)
    assert not partial_success(three_of_four, 4, 0.8)
    assert not partial_success(three_of_four, 4, 1.0)  # the default: every cell must complete
    assert not partial_success({"a": "error"}, 1, 0.01)  # nothing to predict with
    assert not partial_success({**three_of_four, PREDICT_CELL: "error"}, 4, 0.5)


def test_min_success_ratio_config():
    assert parse_sweep({"harbors": ["a"], "epochs": [1]}).min_success_ratio == 1.0
    assert parse_sweep({"harbors": ["a"], "epochs": [1], "min_success_ratio": 0.75}).min_success_ratio == 0.75
    with pytest.raises(SweepConfigError, match=r"min_success_ratio must be between 0\.01 and 1"):
        parse_sweep({"harbors": ["a"], "epochs": [1], "min_success_ratio": 1.5})
    with pytest.raises(SweepConfigError, match="min_success_ratio below 1 needs mode: parallel"):
        parse_sweep({"harbors": ["a"], "epochs": [1], "min_success_ratio": 0.5, "mode": "single"})


def test_prediction_reruns_when_left_out_cells_come_back(capsys):
    olds = {"host": "h", "key": "k", "label": "prediction", "status": "complete", "missing_cells": ["hB/epochs-2"]}
    result = PredictionProvider().diff("id", olds, {**olds, "missing_cells": []})
    assert result.replaces == ["missing_cells"]
    assert "missing_cells" in capsys.readouterr().out
    before_partial_success = {k: v for k, v in olds.items() if k != "missing_cells"}  # older state
    assert PredictionProvider().diff("id", before_partial_success, {**olds, "missing_cells": []}).changes is False


def test_a_partial_prediction_is_never_adopted_for_the_full_sweep():
    from providers.resources.prediction import prediction_tag
    from providers.sweep.identity import content_tag

    assert prediction_tag("k" * 64, []) == prediction_tag("k" * 64, None) == content_tag("k" * 64)
    partial = prediction_tag("k" * 64, ["hB/epochs-2"])
    assert partial != content_tag("k" * 64) and partial != prediction_tag("k" * 64, ["hA/epochs-1"])


def test_unknown_missing_cells_replan_only_a_partial_prediction(capsys):
    from pulumi.runtime import rpc

    complete = {"host": "h", "key": "k", "label": "prediction", "status": "complete", "missing_cells": []}
    assert PredictionProvider().diff("id", complete, {**complete, "missing_cells": rpc.UNKNOWN}).changes is False
    partial = {**complete, "missing_cells": ["hB/epochs-2"]}
    assert PredictionProvider().diff("id", partial, {**partial, "missing_cells": rpc.UNKNOWN}).replaces == [
        "missing_cells"
    ]


def test_a_stopped_object_is_waited_for_until_it_has_ended(monkeypatch, capsys):
    """Stop is a request: the replacement starts only once the old work's processes have ended."""
    clock = FakeClock()
    monkeypatch.setattr(waiting, "clock", clock)
    answers = iter([["stopping", "started"], ["stopping", "stopped"], ["stopped", "stopped"]])
    assert settle(lambda: next(answers), "pipeline c") is True
    assert len(clock.sleeps) == 2

    assert settle(lambda: "stopping", "pipeline d", timeout=5) is False
    assert clock.now >= 5
    assert "pipeline d: still stopping after 5 s" in capsys.readouterr().out
