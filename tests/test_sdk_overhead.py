"""The program's SDK diagnostics switch (stacks/sdk_overhead.py): debug messages and stack traces off by
default, kept with VPAC_PULUMI_SDK_DIAGNOSTICS=1; other messages still reach the engine."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pulumi
import pytest
from pulumi.runtime import resource, settings

from stacks.sdk_overhead import quiet_sdk, wait_for_root
from toolchain.environment import SDK_DIAGNOSTICS_ENV


class RecordingEngine:
    """Stands in for the engine's gRPC stub: records the log requests the SDK sends."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def Log(self, request) -> None:
        self.messages.append(request.message)


@pytest.fixture
def engine(monkeypatch):
    """A recording engine, and the SDK hooks restored after the test (quiet_sdk replaces them)."""
    recording = RecordingEngine()
    monkeypatch.setattr(settings.SETTINGS, "engine", recording)
    monkeypatch.setattr(pulumi.log, "debug", pulumi.log.debug)
    monkeypatch.setattr(resource, "_get_stack_trace", resource._get_stack_trace)
    return recording


def test_debug_messages_and_stack_traces_are_off_by_default(engine):
    assert quiet_sdk({}) is True
    pulumi.log.debug("registering resource: ty=x")
    pulumi.log.info("estimate: 2 cell(s) to run")
    assert engine.messages == ["estimate: 2 cell(s) to run"]
    assert list(resource._get_stack_trace().frames) == []


def test_the_switch_keeps_them(engine):
    assert quiet_sdk({SDK_DIAGNOSTICS_ENV: "1"}) is False
    pulumi.log.debug("registering resource: ty=x")
    assert engine.messages == ["registering resource: ty=x"]
    assert resource._get_stack_trace.__module__ == "pulumi.runtime.resource"


def test_wait_for_root_blocks_until_the_root_is_registered(monkeypatch):
    loop = asyncio.new_event_loop()
    try:
        registered = loop.create_future()
        loop.call_later(0.05, registered.set_result, "the root's urn data")
        monkeypatch.setattr(
            settings, "get_root_resource", lambda: SimpleNamespace(urn=SimpleNamespace(_data=registered))
        )
        monkeypatch.setattr(asyncio, "get_event_loop", lambda: loop)
        wait_for_root()
        assert registered.done()
        monkeypatch.setattr(settings, "get_root_resource", lambda: None)
        wait_for_root()  # outside a program run: nothing to wait for
    finally:
        loop.close()


def test_collect_less_raises_the_collectors_thresholds():
    import gc

    from stacks.sdk_overhead import GC_THRESHOLDS, collect_less

    before = gc.get_threshold()
    try:
        collect_less()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert all(new >= old for new, old in zip(GC_THRESHOLDS, before, strict=True)) and gc.isenabled()
    finally:
        gc.set_threshold(*before)
