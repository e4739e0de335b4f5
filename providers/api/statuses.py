"""Valohai's execution, node and pipeline statuses: the one place they are spelled.

The vocabulary is Valohai's own: valohai-cli 0.37's `valohai_cli/consts.py` lists the same eight
(`incomplete_execution_statuses`, `complete_execution_statuses`). The client side (the providers' wait loop,
delete, drift) and the embedded backend (`local_valohai/`) both import it from here, so an added
status cannot be forgotten by one of them. Pure: no imports beyond the standard library.
"""

from __future__ import annotations

CREATED = "created"
QUEUED = "queued"
STARTED = "started"
STOPPING = "stopping"
COMPLETE = "complete"
ERROR = "error"
STOPPED = "stopped"
CRASHED = "crashed"

# What a finished object can end as; "crashed" is an error of the infrastructure, not of the code.
DONE = COMPLETE
FAILED: frozenset[str] = frozenset({ERROR, STOPPED, CRASHED})
TERMINAL: frozenset[str] = FAILED | {DONE}
# Still going (or about to): what `?status=incomplete` selects and what `stop` acts on.
INCOMPLETE: frozenset[str] = frozenset({CREATED, QUEUED, STARTED, STOPPING})
ALL: frozenset[str] = TERMINAL | INCOMPLETE


def is_terminal(status: str | None) -> bool:
    """True when nothing more will happen to an object with this status (no stop needed)."""
    return status in TERMINAL


def is_failed(status: str | None) -> bool:
    """True when the object ended without completing: its work must be re-run."""
    return status in FAILED
