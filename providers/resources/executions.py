"""Executions the providers start themselves (data generation, prediction): submit or adopt, wait, collect.

Adoption: every execution carries its content tag (`providers.sweep.identity.content_tag`). Before
submitting, we look for a live or complete execution with that tag and take it over, so a retried or
re-run create never starts the same work twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pulumi.dynamic import ReadResult

from providers.api.client import ValohaiClient
from providers.api.credentials import client
from providers.api.errors import ValohaiNotFound, ValohaiTransient
from providers.api.statuses import DONE, is_terminal
from providers.api.waiting import WaitCancelled, WaitTimeout, summarize, wait_for
from providers.resources.adoption import create_once, find_adoptable, retry_transient
from providers.resources.base import integral_numbers, progress
from providers.resources.run_control import ended_early, settle, wait_seconds
from providers.resources.snapshot import forget, read_execution


def submit_or_adopt_execution(api: ValohaiClient, payload: Mapping[str, Any], tag: str) -> dict:
    forget()  # a listing taken before this create must not answer a later read
    execution, _adopted = create_once(
        lambda: api.create_execution({**payload, "tags": [*payload.get("tags", []), tag]}),
        lambda: find_adoptable(api.list_executions(payload["project"], tag=tag, ordering="-counter"), tag),
        what=f"the {payload.get('step')} execution",
    )
    return execution


def wait_for_execution(
    api: ValohaiClient,
    execution: dict,
    *,
    label: str,
    timeout: float,
    report: Callable[[str], None] = print,
    props: Mapping[str, Any] | None = None,
) -> dict:
    """Wait until the execution ends; raise with a pointer to its logs unless it completed.

    With the resource's `props`, the wait ends at the stack's deadline (`run_control`) instead of
    `timeout`, and a wait that ends early applies `on_timeout` / `on_cancel` to the execution.
    """
    latest = {"execution": execution}

    def poll() -> dict[str, str]:
        latest["execution"] = api.get_execution(execution["id"], exclude="outputs")
        return {label: latest["execution"]["status"]}

    def stop(_names: list[str]) -> None:
        retry_transient(lambda: api.stop_execution(execution["id"]), what=f"stopping execution {execution['id']}")

    try:
        states = wait_for(
            poll,
            timeout=wait_seconds(props or {}, timeout),
            tolerate=(ValohaiTransient,),
            on_progress=lambda s, t: report(f"{label}: {summarize(s)} ({t:.0f}s)"),
        )
    except (WaitTimeout, WaitCancelled) as exc:
        raise ended_early(exc, props or {}, stop) from None
    if states[label] != DONE:
        raise RuntimeError(failure_message(api, latest["execution"], label))
    return latest["execution"]


def failure_message(
    api: ValohaiClient, execution: Mapping[str, Any], label: str, pipeline_counter: int | None = None
) -> str:
    """One line naming what failed and where its logs are."""
    detail = execution.get("status_detail") or ""
    if not execution.get("id"):
        where = f"; see pipeline #{pipeline_counter} (`vh pipeline list`)" if pipeline_counter else ""
        return f"{label} ended '{execution.get('status')}' before its execution started{where}"
    events = api.url(f"executions/{execution['id']}/events/")
    return (
        f"{label} ended '{execution.get('status')}'{': ' + detail if detail else ''}; "
        f"logs: `vh execution logs {execution.get('counter')}` or {events}"
    )


def outputs_by_name(api: ValohaiClient, execution_id: str) -> dict[str, str]:
    """Output file name -> `datum://<id>`."""
    return {d["name"]: f"datum://{d['id']}" for d in api.execution_outputs(execution_id)}


def read_execution_backed(id_: str, props: dict, *, project_id: Any = None, counter: Any = None) -> ReadResult:
    """`read` of a resource that is one execution: live status, or gone when deleted outside the tool. No
    inputs are returned: the engine keeps the stored ones (see `providers.resources.pipelines`' read).

    With the project and the execution's counter (from state), the read is answered from one listing of
    neighbouring counters (`providers.resources.snapshot`); without them, by one GET."""
    try:
        execution = read_execution(client(props["host"]), project_id, id_, integral_numbers(counter))
    except ValohaiNotFound:
        execution = {"deleted": True}
    if execution.get("deleted"):
        progress(f"{props.get('label') or id_}: re-create: execution deleted outside the tool")
        return ReadResult("", {})
    return ReadResult(id_, {**props, "status": execution["status"]})


def stop_running_execution(api: ValohaiClient, execution_id: str, what: str) -> None:
    """Stop an execution that still runs and wait until it has ended (a replaced or destroyed one);
    a finished or missing one is left as it is: it is a record."""

    def status() -> Any:
        return api.get_execution(execution_id, exclude="outputs,metadata,events")["status"]

    forget()  # a listing taken before this stop must not answer a later read
    try:
        if not is_terminal(status()):
            retry_transient(lambda: api.stop_execution(execution_id), what=f"stopping execution {execution_id}")
            settle(status, what)
    except ValohaiNotFound:
        pass
