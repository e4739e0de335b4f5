"""Polite polling of many pipelines: one list request per round for the whole sweep.

The list uses only what valohai-cli 0.37 itself sends to `GET /api/v0/pipelines/`: `project`,
`ordering=-counter` and `limit` (valohai_cli/utils/list_command.py). Filtering a list by pipeline ids or
by tag on real Valohai is unverified, so the sweep's pipelines are found in the project's newest ones:
one page of (the sweep's pipelines + a margin) is one request while the sweep's pipelines are the
project's newest; further pages are read only while some are still missing. Once every pipeline still
waited for has been seen, a round's page reaches from the project's newest pipeline down to the oldest of
those (plus the margin), not the whole sweep: at the end of a fresh 1,000-cell sweep the last ones created
are the ones still running, so the last rounds list a few pipelines instead of 1,010 (a pipeline older
than the page is still found on the next page). A pipeline the list does not show (deleted, or a list
whose objects carry no `nodes`, which is unverified on Valohai) is read by id.
The project id comes from the first pipeline read by id, once.

Intervals: `poll_interval_seconds` (stack config) is the first and smallest pause between rounds; the
default is fast for a loopback host (the local backend) and 5 s for any other. Rate limits: a 429 is
retried by the client after its `Retry-After` (urllib3 Retry, providers/api/client.py), and a round that
still fails counts as "no news" until the wait's deadline (providers/api/waiting.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from providers.api.client import ValohaiClient
from providers.api.waiting import Backoff

REMOTE_MIN_INTERVAL = 5.0  # seconds between rounds against a shared API, by default
LOOPBACK_FIRST = 0.25  # against the local backend: look again soon
PAGE_MARGIN = 10  # other pipelines that may be newer than the sweep's (another stack's, a UI run)


def is_loopback(host: str) -> bool:
    name = urlsplit(host).hostname or ""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def default_interval(host: str) -> float:
    return LOOPBACK_FIRST if is_loopback(host) else REMOTE_MIN_INTERVAL


def backoff_for(host: str, interval: float | None) -> Backoff:
    """The rounds' pauses: `interval` (or the host's default) first, growing to at most 12x it (>= 3 s)."""
    first = float(interval) if interval else default_interval(host)
    return Backoff(first=first, factor=1.5, cap=max(3.0, first * 12))


def project_of(pipeline: Mapping[str, Any]) -> str | None:
    """The project id of a pipeline or an execution as the API shows it (an object, or its id)."""
    project = pipeline.get("project")
    return project.get("id") if isinstance(project, dict) else project


class NewestFirst:
    """One project's pipelines (or executions), newest first, fetched one page at a time as they are consumed.

    The one home of the list request the providers send: `project`, `ordering=-counter` and `limit`, as
    valohai-cli 0.37 sends them (valohai_cli/utils/list_command.py); `extra` adds filters some callers need
    (`exclude`). Used by `PipelineSweepReader` (wait rounds) and `providers.resources.snapshot` (refresh).
    """

    def __init__(self, api: ValohaiClient, path: str, project_id: str, page_size: int, **extra: Any) -> None:
        self._items: Iterator[dict] = api.paginate(
            path, page_size=page_size, project=project_id, ordering="-counter", **extra
        )
        self.seen: dict[str, dict] = {}  # id -> object, as listed
        self.lowest: int | None = None  # the lowest counter listed so far
        self.highest: int | None = None  # the first (newest) counter listed
        self.exhausted = False

    def next(self) -> dict | None:
        """The next object (a new page is requested only when the last one is used up); None at the end."""
        item = next(self._items, None)
        if item is None:
            self.exhausted = True
            return None
        if item.get("id"):
            self.seen[item["id"]] = item
        if isinstance(item.get("counter"), int):
            self.lowest = item["counter"]
            self.highest = self.highest or item["counter"]
        return item

    def down_to(self, counter: int) -> None:
        """Read on until the list has shown every object with `counter` or above (or has ended)."""
        while not self.exhausted and (self.lowest is None or self.lowest > counter):
            self.next()


class PipelineSweepReader:
    """Reads a set of pipelines by id, with one list request per call where it can."""

    def __init__(self, api: ValohaiClient) -> None:
        self.api = api
        self.project_id: str | None = None
        self.counters: dict[str, int] = {}  # pipeline id -> counter, as seen
        self.sweep_size = 0  # the most pipelines asked for at once: the whole sweep, on the first round
        self.newest: int | None = None  # the highest counter a listing of the project has shown

    def read(self, ids: Iterable[str]) -> dict[str, dict]:
        wanted = set(ids)
        found: dict[str, dict] = {}
        if not wanted:
            return found
        self.sweep_size = max(self.sweep_size, len(wanted))
        if self.project_id is None or len(wanted) == 1:
            first = self.api.get_pipeline(sorted(wanted)[0])
            found[first["id"]] = first
            self.project_id = self.project_id or project_of(first)
        missing = wanted - found.keys()
        if missing and self.project_id:
            listing = NewestFirst(self.api, "pipelines/", self.project_id, self._page_size(missing))
            while missing and (pipeline := listing.next()) is not None:
                if pipeline.get("id") in missing and "nodes" in pipeline:
                    found[pipeline["id"]] = pipeline
                    missing = missing - {pipeline["id"]}
                lowest = pipeline.get("counter")
                if lowest is not None and self._below_all(lowest, wanted, found):
                    break
            self.newest = max(self.newest or 0, listing.highest or 0) or None
        for pipeline_id in sorted(wanted - found.keys()):
            found[pipeline_id] = self.api.get_pipeline(pipeline_id)
        self.counters.update({i: p["counter"] for i, p in found.items() if isinstance(p.get("counter"), int)})
        return found

    def _page_size(self, missing: set[str]) -> int:
        """The whole sweep (plus the margin) until every pipeline in `missing` has been seen; then from the
        newest counter listed down to the oldest of them, plus the margin for pipelines made since."""
        whole = self.sweep_size + PAGE_MARGIN
        known = [self.counters[i] for i in missing if i in self.counters]
        if self.newest is None or len(known) < len(missing):
            return whole
        return max(1, min(whole, self.newest - min(known) + 1 + PAGE_MARGIN))

    def _below_all(self, counter: int, wanted: set[str], found: dict[str, dict]) -> bool:
        """True once the list has gone below the lowest counter of the sweep's pipelines seen so far."""
        for pipeline in found.values():
            if isinstance(pipeline.get("counter"), int):
                self.counters[pipeline["id"]] = pipeline["counter"]
        known = [self.counters[i] for i in wanted if i in self.counters]
        return len(known) == len(wanted) and counter < min(known)
