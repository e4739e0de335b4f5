"""Waiting for remote work: one loop, capped backoff, our own deadline.

Why our own: `customTimeouts` does nothing for dynamic providers, and the seed's fixed 30-second poll
wastes up to 30 s per sweep. We poll fast at first (work often finishes in seconds), back off to a cap,
and stop at a deadline with the names of what is unfinished. The clock is injectable so recorded
(VCR) tests replay the loop without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from providers.api import cancellation
from providers.api.statuses import DONE, is_failed, is_terminal


class Clock(Protocol):
    def monotonic(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


class RealClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        cancellation.CANCELLED.wait(seconds)  # a cancel wakes the wait at once


# Tests replace this with a fake clock; providers read it at call time.
clock: Clock = RealClock()


@dataclass
class Backoff:
    """Poll intervals: first, then multiplied by `factor`, never above `cap` seconds."""

    first: float = 0.25
    factor: float = 1.5
    cap: float = 3.0
    _next: float = field(default=0.0, init=False)

    def next_delay(self) -> float:
        self._next = self.first if self._next == 0 else min(self._next * self.factor, self.cap)
        return self._next

    def reset(self) -> None:
        self._next = 0.0


class WaitTimeout(Exception):
    def __init__(self, unfinished: list[str], seconds: float) -> None:
        super().__init__(
            f"gave up after {seconds:.0f}s waiting for: {', '.join(unfinished)} "
            f"(raise wait_timeout_minutes in the stack config to wait longer)"
        )
        self.unfinished = unfinished


class WaitCancelled(Exception):
    """The wait ended early (`providers.api.cancellation`): Ctrl-C on `pulumi up`, or the CLI is gone."""

    def __init__(self, unfinished: list[str], reason: str) -> None:
        super().__init__(f"{reason}; unfinished: {', '.join(unfinished) or 'nothing'}")
        self.unfinished = unfinished
        self.reason = reason


def wait_for(
    poll: Callable[[], Mapping[str, str]],
    *,
    timeout: float,
    on_progress: Callable[[Mapping[str, str], float], None] = lambda states, elapsed: None,
    backoff: Backoff | None = None,
    tolerate: tuple[type[BaseException], ...] = (),
) -> dict[str, str]:
    """Call `poll()` (name -> status) until every status is terminal or the deadline passes.

    Returns the final statuses. Progress is reported whenever the statuses change, so logs stay short.
    A poll that raises one of `tolerate` (a passing API fault) counts as "no news" until the deadline.
    Raises `WaitTimeout` at the deadline and `WaitCancelled` once the process is cancelled, both naming
    what is unfinished.
    """
    backoff = backoff or Backoff()
    start = clock.monotonic()
    last: dict[str, str] = {}
    while True:
        try:
            states = dict(poll())
        except tolerate:
            if cancellation.CANCELLED.is_set():
                unfinished = sorted(n for n, s in last.items() if not is_terminal(s))
                raise WaitCancelled(unfinished, cancellation.reason()) from None
            if clock.monotonic() - start >= timeout:
                raise
            clock.sleep(backoff.next_delay())
            continue
        elapsed = clock.monotonic() - start
        if states != last:
            on_progress(states, elapsed)
            backoff.reset()  # something moved: look again soon
            last = states
        if all(is_terminal(s) for s in states.values()):
            return states
        if cancellation.CANCELLED.is_set():
            raise WaitCancelled(sorted(n for n, s in states.items() if not is_terminal(s)), cancellation.reason())
        if elapsed >= timeout:
            raise WaitTimeout(sorted(n for n, s in states.items() if not is_terminal(s)), elapsed)
        clock.sleep(min(backoff.next_delay(), max(timeout - elapsed, 0.01)))


def summarize(states: Mapping[str, str]) -> str:
    """One progress line for many objects: `3/4 done, 1 running, 0 failed`."""
    done = sum(1 for s in states.values() if s == DONE)
    failed = sum(1 for s in states.values() if is_failed(s))
    running = len(states) - done - failed
    return f"{done}/{len(states)} done, {running} running, {failed} failed"
