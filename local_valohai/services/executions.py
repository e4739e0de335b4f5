"""Validating, creating and stopping executions: shared by `POST executions/` and the pipeline scheduler.

All checks happen before any row is written, and the insert runs inside the caller's transaction, so a
rejected request leaves nothing behind.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from valohai_yaml.excs import InvalidType, ValidationErrors
from valohai_yaml.objs import Config, Step

from providers.api.statuses import CREATED, QUEUED, STARTED, STOPPED

from .. import db
from ..db import Store, Transaction, dumps, loads, new_id, now_iso
from ..environments import resolve as resolve_environment
from ..errors import ApiError, bad_request
from ..settings import Limits
from ..validation import input_uris, mapping, safe_name, scalar_values, seconds, string_list, text
from .commits import commit_config, resolve_commit
from .inputs import resolve_uri
from .project_variables import MAX_VALUE, payload_entries
from .project_variables import split as split_project_variables

PARAM_REF = re.compile(r"\{parameter(?:-value)?:([^}]+)\}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DEFAULT_LIMITS = Limits()


@dataclass
class ExecutionSpec:
    """What a caller asks for; field names follow the `POST executions/` payload."""

    project_id: str
    step: str
    commit: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    environment_variables: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    runtime_config: dict[str, Any] = field(default_factory=dict)
    time_limit: Any = None
    title: str | None = None
    image: str | None = None
    command: Any = None
    environment: Any = None
    priority: Any = None
    pipeline_id: str | None = None
    pipeline_node_id: str | None = None


def check_spec(spec: ExecutionSpec, limits: Limits) -> None:
    """Types and lengths of every field a client sets, before anything is looked up or written."""
    for name, value, limit in (("commit", spec.commit, 200), ("step", spec.step, 200), ("image", spec.image, 1024)):
        text(value, name, limit)
    spec.title = text(spec.title, "title", limits.title) or None
    if spec.command is not None and not isinstance(spec.command, str):
        string_list(spec.command, "command", limits.entries, limits.text_value)
    elif isinstance(spec.command, str):
        text(spec.command, "command", limits.text_value)
    spec.parameters = mapping(
        spec.parameters, "parameters", limits.entries, "an object mapping parameter names to values"
    )
    scalar_values(spec.parameters, "parameters", limits.text_value)
    spec.inputs = input_uris(spec.inputs, "inputs", limits.entries, limits.text_value, limits.input_uris)
    env = mapping(
        spec.environment_variables, "environment_variables", limits.entries, "an object mapping names to values"
    )
    scalar_values(payload_entries(env, limits.text_value)[0], "environment_variables", limits.text_value)
    spec.environment_variables = env
    spec.tags = string_list(spec.tags, "tags", limits.tags, limits.tag)
    spec.runtime_config = mapping(spec.runtime_config, "runtime_config", limits.entries)
    seconds(spec.time_limit, "time_limit")
    spec.environment = resolve_environment(spec.environment)
    spec.priority = _priority(spec.priority)


def _priority(value: Any) -> int | None:
    """Valohai's execution `priority`: an integer (unverified range; here -1000..1000)."""
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).lstrip("-").isdigit():
        raise bad_request("priority", f"Expected an integer, got {str(value)[:40]!r}")
    if not -1000 <= int(value) <= 1000:
        raise bad_request("priority", "Expected an integer between -1000 and 1000")
    return int(value)


def find_step(config: Config, step_name: str, commit_identifier: str) -> Step:
    step = config.steps.get(step_name)
    if step is None:
        available = ", ".join(sorted(config.steps)) or "none"
        raise bad_request(
            "step",
            f"Step {step_name!r} not found in valohai.yaml of commit {commit_identifier} (available: {available})",
        )
    return step


def validate_parameters(step: Step, given: Any, field_name: str = "parameters") -> dict[str, Any]:
    """Cast and check each value with valohai-yaml's Parameter.validate; unknown names are errors."""
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise bad_request(field_name, "Expected an object mapping parameter names to values")
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name, value in given.items():
        param = step.parameters.get(name)
        if param is None:
            problems.append(f"Unknown parameter {name!r} for step {step.name!r}")
            continue
        if value is None or (value == "" and param.type != "string"):
            continue
        if param.type == "flag":
            if isinstance(value, str):
                value = value.strip().lower() in ("1", "true", "yes", "on")
            values[name] = bool(value)
            continue
        if param.multiple and not isinstance(value, list):
            value = [value]
        try:
            values[name] = param.validate(value)
        except ValidationErrors as exc:
            problems.append(f"{name}: " + "; ".join(str(getattr(e, "message", e)) for e in exc.errors))
        except (InvalidType, TypeError, ValueError) as exc:
            problems.append(f"{name}: {exc}")
    if problems:
        raise ApiError(400, {field_name: problems})
    return values


def interpolate(uri: str, parameters: dict[str, Any], field_name: str) -> str:
    def repl(match: re.Match) -> str:
        name = match.group(1)
        if name not in parameters or parameters[name] is None:
            raise bad_request(field_name, f"{uri}: parameter {name!r} has no value to interpolate")
        value = parameters[name]
        return ",".join(map(str, value)) if isinstance(value, list) else str(value)

    return PARAM_REF.sub(repl, uri)


def _time_limit(spec_value: Any, step: Step) -> int | None:
    value = spec_value if spec_value not in (None, "") else step.time_limit
    if isinstance(value, timedelta):
        value = value.total_seconds()
    return seconds(value, "time_limit") or None


def _command(step: Step, given: dict[str, Any], override: Any) -> str:
    try:
        return " && ".join(step.build_command(given, command=override or None))
    except (InvalidType, ValueError, TypeError) as exc:
        raise bad_request("parameters", f"Cannot build the command: {exc}") from exc


def _input_files(
    store: Store, secret: str, spec: ExecutionSpec, step: Step, name: str, urls: list[Any]
) -> list[dict[str, Any]]:
    """The files of one input, named as the step will see them under `inputs/<name>/`."""
    inp = step.inputs[name]
    files: list[dict[str, Any]] = []
    for url in urls:
        files.extend(resolve_uri(store, secret, spec.project_id, url, "inputs"))
    keep = str(getattr(inp.keep_directories, "value", inp.keep_directories) or "none").lower()
    for entry in files:
        if keep in ("full", "suffix", "true"):
            entry["name"] = entry["relpath"]
        safe_name(entry["name"], "input file name", "inputs")
    if inp.filename and len(files) == 1:
        files[0]["name"] = safe_name(inp.filename, "input filename", "inputs")
    return files


def _inputs(
    store: Store, secret: str, spec: ExecutionSpec, step: Step, parameters: dict[str, Any]
) -> tuple[dict[str, list[str]], dict[str, list[dict[str, Any]]]]:
    """Each input's URIs (defaults filled in, parameters interpolated) and the files they resolve to."""
    if spec.inputs is not None and not isinstance(spec.inputs, dict):
        raise bad_request("inputs", "Expected an object mapping input names to lists of URIs")
    for name in spec.inputs or {}:
        safe_name(name, "input name", "inputs")
        if name not in step.inputs:
            raise bad_request("inputs", f"Unknown input {name!r} for step {step.name!r}")
    input_uris: dict[str, list[str]] = {}
    input_files: dict[str, list[dict[str, Any]]] = {}
    for name, inp in step.inputs.items():
        raw = (spec.inputs or {}).get(name)
        if raw is None:
            raw = inp.default
        urls = [raw] if isinstance(raw, str) else list(raw or [])
        urls = [interpolate(u, parameters, "inputs") if isinstance(u, str) else u for u in urls if u != ""]
        if not urls and not inp.optional:
            raise bad_request(
                "inputs", f"Input {name!r} of step {step.name!r} is required (no default and no URI given)"
            )
        input_files[name] = _input_files(store, secret, spec, step, name, urls)
        input_uris[name] = urls
    return input_uris, input_files


def _environment(spec: ExecutionSpec, step: Step, project: Any) -> tuple[dict[str, str], dict[str, str]]:
    """(public, secret): the project's variables, the step's defaults, the payload's `environment_variables`.

    Later ones win; a secret project variable that nothing overrides stays apart (see project_variables.py).
    """
    public, secret = split_project_variables(loads(project["environment_variables"]) or {} if project else {})
    env = dict(public)
    env.update({k: v.default for k, v in step.environment_variables.items() if v.default is not None})
    own_secret: dict[str, str] = {}
    if spec.environment_variables not in (None, ""):
        if not isinstance(spec.environment_variables, dict):
            raise bad_request("environment_variables", "Expected an object mapping names to string values")
        for key in spec.environment_variables:
            if not isinstance(key, str) or not ENV_NAME.fullmatch(key):
                raise bad_request("environment_variables", f"Invalid environment variable name {key!r}")
        given, own_secret = payload_entries(spec.environment_variables, MAX_VALUE)
        env.update({k: "" if v is None else str(v) for k, v in given.items()})
        for key in own_secret:  # the payload's own secret wins over a default or project value of that name
            env.pop(key, None)
    return env, {**{k: v for k, v in secret.items() if k not in env}, **own_secret}


def create_execution(
    tx: Transaction, store: Store, secret: str, spec: ExecutionSpec, limits: Limits = DEFAULT_LIMITS
) -> str:
    """Validate everything, then insert one `created` execution; returns its id."""
    check_spec(spec, limits)
    commit = resolve_commit(store, spec.project_id, spec.commit)
    step = find_step(commit_config(commit), spec.step, commit["identifier"])
    given = validate_parameters(step, spec.parameters)
    parameters = {**step.get_parameter_defaults(include_flags=True), **given}
    command = _command(step, given, spec.command)
    input_uris, input_files = _inputs(store, secret, spec, step, parameters)
    env, secret_env = _environment(spec, step, db.projects.get(store, spec.project_id))
    tags = spec.tags
    if spec.runtime_config not in (None, "") and not isinstance(spec.runtime_config, dict):
        raise bad_request("runtime_config", "Expected an object")
    time_limit = _time_limit(spec.time_limit, step)

    execution_id = new_id()
    now = now_iso()
    db.executions.insert(
        tx,
        {
            "id": execution_id,
            "project_id": spec.project_id,
            "counter": db.listing.next_counter(tx, "executions", spec.project_id),
            "status": CREATED,
            "step": step.name,
            "title": spec.title,
            "commit_identifier": commit["identifier"],
            "ctime": now,
            "mtime": now,
            "parameters": dumps(parameters),
            "inputs": dumps(input_uris),
            "input_files": dumps(input_files),
            "environment_variables": dumps(env),
            "tags": dumps(tags),
            "runtime_config": dumps(spec.runtime_config or {}),
            "time_limit": time_limit,
            "image": spec.image or step.image,
            "command": command,
            "pipeline_id": spec.pipeline_id,
            "pipeline_node_id": spec.pipeline_node_id,
            "environment": spec.environment,
            "priority": spec.priority,
            "secret_environment": dumps(secret_env),
        },
    )
    db.events.add_status(tx, execution_id, now, "Execution created")
    return execution_id


def stop_execution(tx: Transaction, execution_id: str, request_stop: Callable[[str], object]) -> None:
    """Stop one execution: not-yet-running ones end `stopped` at once; running ones are signalled."""
    row = db.executions.get(tx, execution_id)
    if row is None:
        return
    now = now_iso()
    if row["status"] in (CREATED, QUEUED):
        db.executions.end_unfinished(
            tx, execution_id, STOPPED, "stopped by user before it started", now, only_from=(CREATED, QUEUED)
        )
        db.events.add_status(tx, execution_id, now, "Execution stopped before it started")
        node = db.nodes.of_execution(tx, execution_id)
        if node is not None:
            db.nodes.set_status(tx, node["id"], STOPPED)
    elif row["status"] == STARTED:
        db.executions.request_stop(tx, execution_id, now)
        db.events.add_status(tx, execution_id, now, "Stop requested")
        tx.after_commit(lambda: request_stop(execution_id))
