"""The wait loop: capped backoff, progress on change, deadline with names, no real sleep."""

import pytest
from support import FakeClock

from providers.api import waiting


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(waiting, "clock", fake)
    return fake


def test_waits_until_all_terminal_with_capped_backoff(clock):
    script = iter([{"a": "started", "b": "queued"}] * 12 + [{"a": "complete", "b": "error"}])
    seen = []
    final = waiting.wait_for(lambda: next(script), timeout=100, on_progress=lambda s, t: seen.append(dict(s)))
    assert final == {"a": "complete", "b": "error"}
    assert seen == [{"a": "started", "b": "queued"}, {"a": "complete", "b": "error"}]
    assert clock.sleeps[0] == 0.25 and max(clock.sleeps) == 3.0
    assert all(b >= a for a, b in zip(clock.sleeps, clock.sleeps[1:], strict=False))


def test_deadline_names_the_unfinished(clock):
    with pytest.raises(waiting.WaitTimeout) as caught:
        waiting.wait_for(lambda: {"x": "complete", "y": "started"}, timeout=10)
    assert caught.value.unfinished == ["y"] and "wait_timeout_minutes" in str(caught.value)
    assert clock.now >= 10


def test_summary_counts():
    assert waiting.summarize({"a": "complete", "b": "error", "c": "started"}) == "1/3 done, 1 running, 1 failed"
