"""Finding and killing step processes a previous server left behind (after `kill -9` or a power cut).

Each step runs in its own process group (`start_new_session=True`); its id is recorded in the execution
row (`pid`) as soon as the process starts, and every process of the step inherits `VH_EXECUTION_ID`.
On start-up, the processes of executions that were still unfinished are killed. A recorded group id is
only trusted when a process in it still carries the execution's `VH_EXECUTION_ID` (read from
`/proc/<pid>/environ`): after a reboot the number may belong to an unrelated program by now.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("local_valohai.processes")

PROC = Path("/proc")


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, process group id) of a live process, or None when it is gone or unreadable."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return fields[0], int(fields[2])


def _environ_has(pid: int, marker: bytes) -> bool:
    try:
        return marker in (PROC / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:  # gone, or another user's process
        return False


def _pids() -> list[int]:
    return [int(p.name) for p in PROC.iterdir() if p.name.isdigit()]


def leftovers(executions: Iterable[tuple[str, int | None]]) -> set[int]:
    """Live processes of these `(execution id, recorded pid)` pairs, found by environment and process group."""
    if not PROC.is_dir():  # not Linux: trust the recorded groups (best effort, documented)
        return {pid for _, pid in executions if pid}
    wanted = {f"VH_EXECUTION_ID={execution_id}".encode(): pid for execution_id, pid in executions}
    if not wanted:
        return set()
    found: set[int] = set()
    trusted_groups: set[int] = set()
    me = os.getpid()
    groups: dict[int, list[int]] = {}
    for pid in _pids():
        if pid == me:
            continue
        stat = _stat(pid)
        if stat is None or stat[0] == "Z":
            continue
        groups.setdefault(stat[1], []).append(pid)
        for marker, recorded in wanted.items():
            if _environ_has(pid, marker):
                found.add(pid)
                if recorded and stat[1] == recorded:
                    trusted_groups.add(recorded)
                break
    for group in trusted_groups:  # members that exec'd with a cleared environment, same group
        found.update(groups.get(group, []))
    return found


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie (killed, waiting for its new parent to reap it)."""
    if PROC.is_dir():
        stat = _stat(pid)
        return stat is not None and stat[0] != "Z"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_leftovers(executions: Iterable[tuple[str, int | None]], timeout: float = 5.0) -> set[int]:
    """SIGKILL every leftover process of these executions (and their groups); wait until they are gone."""
    executions = list(executions)
    pids = leftovers(executions)
    if not pids:
        return pids
    log.warning("killing %d leftover step process(es) of %d interrupted execution(s)", len(pids), len(executions))
    for pid in pids:
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.05)
    return pids
