"""Refresh reads that cost a few list requests per run, not one GET per resource.

`pulumi refresh` (and `preview`/`up` with `refresh: always`) calls `read` once per resource, all in one
provider process. Instead of one `GET pipelines/{id}/` per cell, the first pipeline `read` lists the
project's pipelines newest first (`polling.NewestFirst`, one page of `PIPELINE_PAGE`), and later reads
answer from that list; a read whose pipeline is older than what was listed reads on, one more page at a
time, down to its counter (stored in state). Executions (a harbor's data, the prediction) are listed by
counter: one request for the window of `EXECUTION_WINDOW` counters either side of the first one asked for,
with the `counter` filter valohai-cli's stop command sends (valohai_cli/utils/stop_command.py); a stack's
datasets are made together, so their counters are neighbours.

An object missing from a list that should show it (deleted, or a list whose pipelines carry no `nodes`:
unverified on Valohai) is read by id, so a deleted object still reads as deleted. A listing is per
process and host and project, and used for at most `SNAPSHOT_SECONDS` after its first answer arrived, so
a read never reports a status older than that (long enough for one refresh pass over 1,000 resources,
whose first listing alone took 3 s at 500 pipelines on the local backend: counted from the request, a
5-second life re-listed 5 times in one 500-cell preview); the waits of `up` never use it (they poll with
`polling.PipelineSweepReader`). Objects without a counter or project in state are read by id.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from providers.api.client import PIPELINE_PAGE, ValohaiClient
from providers.resources.polling import NewestFirst

SNAPSHOT_SECONDS = 30.0  # how old a listing may be and still answer a read (counted from its first answer)
EXECUTION_WINDOW = 50  # counters either side of the first execution read
# What a status read does not need (as `get_execution` sends). The pipeline list takes it for its nodes'
# executions too (the local backend leaves their outputs out: 11.4 -> 8.4 MB for 1,000 finished stand-in cells, see
# bench/README.md); whether Valohai's pipeline list honours it is unverified, and a list that ignores it only
# answers with more.
EXECUTION_EXCLUDE = "outputs,metadata,events"

clock: Callable[[], float] = time.monotonic  # tests swap it


@dataclass
class _Pipelines:
    listing: NewestFirst
    taken: float
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _Executions:
    taken: float
    seen: dict[int, dict] = field(default_factory=dict)  # counter -> execution
    covered: set[int] = field(default_factory=set)  # counters asked for (an absent one is not listed)
    lock: threading.Lock = field(default_factory=threading.Lock)


_lock = threading.Lock()
_pipelines: dict[tuple[str, str], _Pipelines] = {}
_executions: dict[tuple[str, str], _Executions] = {}


def forget() -> None:
    """Drop every listing: after this process creates, stops or deletes something, a read asks afresh."""
    with _lock:
        _pipelines.clear()
        _executions.clear()


def _fresh(taken: float) -> bool:
    return clock() - taken < SNAPSHOT_SECONDS


def _pipeline_listing(api: ValohaiClient, project_id: str) -> _Pipelines:
    key = (api.host, project_id)
    with _lock:
        current = _pipelines.get(key)
        if current is None or not _fresh(current.taken):
            listing = NewestFirst(api, "pipelines/", project_id, PIPELINE_PAGE, exclude=EXECUTION_EXCLUDE)
            current = _pipelines[key] = _Pipelines(listing=listing, taken=clock())
        return current


def read_pipeline(api: ValohaiClient, project_id: Any, pipeline_id: str, counter: Any) -> dict:
    """The pipeline as the API shows it now (give or take `SNAPSHOT_SECONDS`); raises `ValohaiNotFound`
    like `get_pipeline` when it is gone."""
    if isinstance(project_id, str) and project_id and isinstance(counter, int):
        snapshot = _pipeline_listing(api, project_id)
        with snapshot.lock:
            first = not snapshot.listing.seen
            if pipeline_id not in snapshot.listing.seen:
                snapshot.listing.down_to(counter)
            if first:
                snapshot.taken = clock()  # its age counts from the answer, not from the request
            listed = snapshot.listing.seen.get(pipeline_id)
        if listed is not None and "nodes" in listed and not listed.get("deleted"):
            return listed
    return api.get_pipeline(pipeline_id)


def _execution_window(api: ValohaiClient, project_id: str) -> _Executions:
    key = (api.host, project_id)
    with _lock:
        current = _executions.get(key)
        if current is None or not _fresh(current.taken):
            current = _executions[key] = _Executions(taken=clock())
        return current


def read_execution(api: ValohaiClient, project_id: Any, execution_id: str, counter: Any) -> dict:
    """The execution's status fields (outputs, metadata and events left out); raises `ValohaiNotFound` like
    `get_execution` when it is gone."""
    if isinstance(project_id, str) and project_id and isinstance(counter, int):
        snapshot = _execution_window(api, project_id)
        with snapshot.lock:
            if counter not in snapshot.covered:
                window = [c for c in range(max(1, counter - EXECUTION_WINDOW), counter + EXECUTION_WINDOW + 1)]
                listed = api.paginate(
                    "executions/",
                    page_size=len(window),
                    project=project_id,
                    counter=window,
                    exclude=EXECUTION_EXCLUDE,
                )
                for execution in listed:
                    if isinstance(execution.get("counter"), int):
                        snapshot.seen[execution["counter"]] = execution
                snapshot.covered.update(window)
            found = snapshot.seen.get(counter)
        if found is not None and found.get("id") == execution_id and not found.get("deleted"):
            return found
    return api.get_execution(execution_id, exclude=EXECUTION_EXCLUDE)
