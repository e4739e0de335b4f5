"""What a provider does when its wait ends early: one deadline for the whole `pulumi up`, and the fate of
the unfinished work (`on_cancel`, `on_timeout`: `leave` it running, the default, or `stop` it).

The program computes the deadline once (`time.time() + wait_timeout_minutes`) and hands it to every
waiting resource in the `run_control` input, so data generation, the sweep and the prediction share
one budget instead of fixed 30/60-minute waits. `run_control` is never compared by `diff` (a new
deadline each run must not plan a change). Pulumi's `customTimeouts` cannot help: the engine sends them
as the request's `timeout`, and the SDK's dynamic provider server drops it before calling
`create`/`update`/`delete` (pulumi sdk/python/lib/pulumi/dynamic/__main__.py).

Work left running is not lost: pipelines are in the state (they return at submission) and executions
carry their content tag, so the next `pulumi up` waits for or adopts them instead of starting copies.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from providers.api import waiting  # `waiting.clock`, which tests replace, so replays never sleep
from providers.api.statuses import is_terminal
from providers.api.waiting import Backoff, WaitCancelled, WaitTimeout
from providers.resources.base import progress

POLICIES = ("leave", "stop")
SETTLE_SECONDS = 60.0  # how long a delete waits for a stopped object's processes to end


def settle(status: Callable[[], Any], what: str, *, timeout: float = SETTLE_SECONDS) -> bool:
    """Wait until a stopped object is terminal: a stop is a request, and the old work's process ends
    later (status `stopping`), so a replacement started at once would run beside it and both would be
    paid for. `status()` returns the object's status, or a list of statuses that must all be terminal
    (a pipeline and its nodes' executions). False, with a line saying so, when it did not end in time.
    """
    deadline = waiting.clock.monotonic() + timeout
    pauses = Backoff(first=0.1, factor=1.5, cap=2.0)
    while True:
        current = status()
        statuses = current if isinstance(current, list) else [current]
        if all(is_terminal(s) for s in statuses):
            return True
        if waiting.clock.monotonic() >= deadline:
            progress(f"{what}: still stopping after {timeout:.0f} s; going on (it ends on its own)")
            return False
        waiting.clock.sleep(pauses.next_delay())


def run_control(props: Mapping[str, Any]) -> dict[str, Any]:
    value = props.get("run_control")
    return dict(value) if isinstance(value, Mapping) else {}


def wait_seconds(props: Mapping[str, Any], fallback: float) -> float:
    """Seconds left until the stack's deadline; `fallback` for state written before deadlines existed."""
    deadline = run_control(props).get("deadline")
    if not isinstance(deadline, (int, float)):
        return fallback
    return max(float(deadline) - time.time(), 0.0)


def ended_early(
    exc: WaitTimeout | WaitCancelled, props: Mapping[str, Any], stop: Callable[[list[str]], None]
) -> RuntimeError:
    """The error a resource raises when its wait ended early, after applying the stack's policy.

    `stop(names)` stops the unfinished work named by the wait. The message names the unfinished work
    and says what became of it.
    """
    control = run_control(props)
    if isinstance(exc, WaitCancelled):
        key, what = "on_cancel", f"cancelled ({exc.reason})"
    else:
        key, what = "on_timeout", "wait_timeout_minutes reached"
    names = list(exc.unfinished)
    policy = control.get(key) if control.get(key) in POLICIES else "leave"
    if not names:
        fate = "nothing was left running"
    elif policy == "stop":
        try:
            stop(names)
            fate = f"stopped them ({key}: stop)"
        except Exception as problem:  # report, do not hide the cancellation behind a stop failure
            fate = f"stopping them failed ({problem}); stop them with `vh pipeline stop` / `vh execution stop`"
    else:
        fate = f"they keep running and the next `pulumi up` adopts them (set {key}: stop to stop them instead)"
    return RuntimeError(f"{what} while waiting for: {', '.join(names) or 'nothing'}; {fate}")
