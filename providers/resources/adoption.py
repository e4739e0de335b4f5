"""Creating remote objects exactly once, through retries, lost answers and killed runs.

A POST whose answer is lost (a 502 after the server committed, a dropped connection) may or may not
have been applied. Blindly retrying it duplicates training runs; giving up loses a cell. So every create
carries a content tag (`providers.sweep.identity`), and before each attempt we look for an object with
that tag: found means the earlier attempt (or an earlier, killed `pulumi up`) made it, and we adopt it.

The first attempt's look needs no request of its own (`StackPipelines`): what an earlier, killed run left
is listed once per provider process, before this process creates anything, and each create looks there.
Only a retry, whose own earlier POST may have been applied, lists again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from providers.api import waiting
from providers.api.errors import ValohaiTransient
from providers.api.statuses import is_failed
from providers.sweep.identity import STACK_TAG_PREFIX

T = TypeVar("T")
ATTEMPTS = 8


def create_once(
    post: Callable[[], T], find_existing: Callable[[], T | None], *, what: str, attempts: int = ATTEMPTS
) -> tuple[T, bool]:
    """Return (object, adopted). Transient failures are retried with backoff; others raise at once."""
    backoff = waiting.Backoff(first=0.5, factor=2.0, cap=8.0)
    last: ValohaiTransient | None = None
    for _ in range(attempts):
        try:
            existing = find_existing()
            if existing is not None:
                return existing, True
            return post(), False
        except ValohaiTransient as exc:
            last = exc
            waiting.clock.sleep(backoff.next_delay())  # read at call time: tests swap the clock
    raise ValohaiTransient(
        f"could not create {what} after {attempts} attempts: {last}", status=last.status if last else 0
    )


def retry_transient(call: Callable[[], T], *, what: str, attempts: int = ATTEMPTS) -> T:
    """For POSTs that are idempotent by nature (stop): just try again."""
    return create_once(call, lambda: None, what=what, attempts=attempts)[0]


class StackPipelines:
    """The pipelines a stack had when this process first created one: one listing (by the stack's tag, which
    every pipeline payload carries) instead of one per cell. Pipelines this process creates are not added:
    each content tag is created once per run, and a retry lists afresh (see `create_once`'s callers)."""

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _listed: ClassVar[dict[tuple[str, str, str], list[dict]]] = {}

    @classmethod
    def first_look(cls, api: Any, project: str, stack_tag: str, tag: str) -> dict | None:
        key = (api.host, project, stack_tag)
        with cls._lock:  # the provider server runs 4 creates at once: one lists, the others wait for it
            if key not in cls._listed:
                cls._listed[key] = api.list_pipelines(project, tag=stack_tag)
            listed = cls._listed[key]
        return find_adoptable(listed, tag)

    @classmethod
    def forget(cls) -> None:
        """Tests start each scenario as a new process would."""
        with cls._lock:
            cls._listed.clear()


def pipeline_finder(api: Any, payload: dict, tag: str) -> Callable[[], dict | None]:
    """`find_existing` for a pipeline's `create_once`: the stack's one listing before the first attempt (when the
    payload carries the stack's tag), the pipelines of this title before every retry."""
    stack_tags = [t for t in payload.get("tags", []) if t.startswith(STACK_TAG_PREFIX)]
    attempts = 0

    def look() -> dict | None:
        nonlocal attempts
        attempts += 1
        if attempts == 1 and stack_tags:
            return StackPipelines.first_look(api, payload["project"], stack_tags[0], tag)
        return find_adoptable(api.list_pipelines(payload["project"], title=payload["title"]), tag)

    return look


def find_adoptable(items: list[dict], tag: str) -> dict | None:
    """The newest object with this tag that has not failed (lists are newest first)."""
    for item in items:
        tags = item.get("tags") or []
        if tag in tags and "released" not in tags and not is_failed(item.get("status")) and not item.get("deleted"):
            return item
    return None
