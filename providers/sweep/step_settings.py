"""Per-step execution settings from stack config: `steps: {<step>: {environment, image, time_limit,
priority, environment_variables, secret_environment_variables}}`, validated at preview, and the payload
fields they become.

The fields are those valohai-cli 0.37 puts in `POST /api/v0/executions/` (valohai_cli/commands/execution/
run/dynamic_run_command.py: `environment` (an environment slug or UUID), `image`, `environment_variables`
(name -> value), `priority` (an integer), `time_limit` (whole seconds)). That a pipeline node's `template`
accepts the same underscore spellings is unverified: valohai-yaml's PipelineConverter copies the step's
own serialization there (`environment`, `image`, `time-limit`, `environment-variables`). Settings changes
are part of a node's content key, so changing a step's machine re-runs that step's nodes.

Secret values: `steps.<step>.secret_environment_variables` lists only NAMES (plain, part of the content
key: adding one re-runs the step's nodes, rotating a value does not); the values live in the stack's
secret config `secrets: {NAME: value}` (`pulumi config set --secret --path 'secrets.NAME' <value>`),
checked by `parse_secret_values` and carried as Pulumi secrets (stacks/preflight.py `step_secrets`) into
the payloads by `add_secrets`. A payload holds each as `{"value": ..., "secret": true}`, the shape the
API gives a project's variables (valohai_cli/commands/project/environment_variables/list.py reads
`value` and `secret` per name); the local backend keeps such a value out of every answer. That real
Valohai accepts that shape in `environment_variables` of an execution or a node template is unverified
(its documented secrets are project and organization variables, hidden in the UI:
docs.valohai.com, "Environment Variables"); docs/real-valohai.md says what to do if it is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

STEPS = ("generate-harbors", "preprocess-dataset", "train", "predict-models")
SECRET_NAMES = "secret_environment_variables"
KEYS = ("environment", "image", "time_limit", "priority", "environment_variables", SECRET_NAMES)
SECRETS_KEY = "secrets"  # the stack config key holding the values, {NAME: value}
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}")
MAX_TIME_LIMIT = 30 * 24 * 3600
PRIORITY_RANGE = (-1000, 1000)  # what the local backend accepts; Valohai's own range is unverified


class StepSettingsError(ValueError):
    """One line naming `steps.<step>.<key>` and the fix."""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:80]}... ({len(text)} characters)"


def _whole(value: Any, key: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise StepSettingsError(f"{key} must be a whole number between {low} and {high}, got {_shown(value)}")
    text = str(value).strip()
    if not re.fullmatch(r"-?\d+(\.0+)?", text):
        raise StepSettingsError(f"{key} must be a whole number between {low} and {high}, got {_shown(value)}")
    number = int(float(text))
    if not low <= number <= high:
        raise StepSettingsError(f"{key} must be between {low} and {high}, got {number}")
    return number


def _text(value: Any, key: str, pattern: re.Pattern[str], example: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value.strip()):
        raise StepSettingsError(f"{key} must be {example}, got {_shown(value)}")
    return value.strip()


IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,511}")


def _variables(value: Any, key: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise StepSettingsError(f"{key} must be a mapping of NAME: value, got {_shown(value)}")
    variables: dict[str, str] = {}
    for name, item in value.items():
        if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
            raise StepSettingsError(f"{key}: {_shown(name)} is not a variable name (letters, digits, '_')")
        if item is None or isinstance(item, (Mapping, list, tuple)):
            raise StepSettingsError(f"{key}.{name} must be a string or number, got {_shown(item)}")
        variables[name] = str(item).lower() if isinstance(item, bool) else str(item)
    return dict(sorted(variables.items()))


def _names(value: Any, key: str) -> list[str]:
    """A list of variable names (a comma-separated string is accepted too)."""
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise StepSettingsError(f"{key} must be a list of variable names such as [WANDB_API_KEY], got {_shown(value)}")
    for name in items:
        if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
            raise StepSettingsError(f"{key}: {_shown(name)} is not a variable name (letters, digits, '_')")
    return sorted(set(items))


def parse_step_settings(value: Any) -> dict[str, dict[str, Any]]:
    """`steps` from stack config -> {step: {payload field: value}} (only the steps and keys given)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise StepSettingsError(
            f"steps must be a mapping such as {{train: {{environment: <slug>}}}}, got {_shown(value)}; "
            f"set one value with `pulumi config set --path 'steps.train.environment' <slug>`"
        )
    parsed: dict[str, dict[str, Any]] = {}
    for step, settings in value.items():
        if step not in STEPS:
            raise StepSettingsError(f"steps has unknown step {_shown(step)}; allowed: {', '.join(STEPS)}")
        if not isinstance(settings, Mapping):
            raise StepSettingsError(f"steps.{step} must be a mapping of {', '.join(KEYS)}, got {_shown(settings)}")
        unknown = sorted(str(k) for k in settings if k not in KEYS)
        if unknown:
            raise StepSettingsError(f"steps.{step} has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(KEYS)}")
        key = f"steps.{step}"
        out: dict[str, Any] = {}
        if settings.get("environment") is not None:
            out["environment"] = _text(settings["environment"], f"{key}.environment", SLUG, "an environment slug or id")
        if settings.get("image") is not None:
            out["image"] = _text(settings["image"], f"{key}.image", IMAGE, "a Docker image such as python:3.11")
        if settings.get("time_limit") is not None:
            out["time_limit"] = _whole(settings["time_limit"], f"{key}.time_limit", 1, MAX_TIME_LIMIT)
        if settings.get("priority") is not None:
            out["priority"] = _whole(settings["priority"], f"{key}.priority", *PRIORITY_RANGE)
        if settings.get("environment_variables") is not None:
            out["environment_variables"] = _variables(settings["environment_variables"], f"{key}.environment_variables")
        if settings.get(SECRET_NAMES) is not None:
            names = _names(settings[SECRET_NAMES], f"{key}.{SECRET_NAMES}")
            both = sorted(set(names) & set(out.get("environment_variables", {})))
            if both:
                raise StepSettingsError(
                    f"{key} names {', '.join(both)} both in environment_variables and in {SECRET_NAMES}: keep one"
                )
            if names:
                out[SECRET_NAMES] = names
        if out:
            parsed[str(step)] = out
    return dict(sorted(parsed.items()))


def apply_to(body: dict[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """Put one step's settings into an execution payload or a node template (in place; returns it).

    Environment variables are merged over the ones already there; the hyphenated spellings valohai-yaml
    may have copied from the step are replaced by the payload's.
    """
    for name, value in settings.items():
        if name == SECRET_NAMES:
            continue  # names only: `add_secrets` puts the values in
        if name == "environment_variables":
            merged = {**dict(body.get("environment_variables") or {}), **value}
            body.pop("environment-variables", None)
            body["environment_variables"] = merged
        else:
            if name == "time_limit":
                body.pop("time-limit", None)
            body[name] = value
    return body


def secret_names(steps: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """{step: [NAME, ...]} of the parsed settings' secret variables (steps without any left out)."""
    return {step: list(settings[SECRET_NAMES]) for step, settings in steps.items() if settings.get(SECRET_NAMES)}


def parse_secret_values(value: Any, steps: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """The `secrets` config ({NAME: value}) checked against the names the steps list -> {NAME: value} of
    the names some step uses. Messages name keys and types, never a value."""
    wanted = sorted({name for names in secret_names(steps).values() for name in names})
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise StepSettingsError(
            f"{SECRETS_KEY} must be a mapping of NAME: value, got a {type(value).__name__}; set each with "
            f"`pulumi config set --secret --path '{SECRETS_KEY}.NAME' <value>`"
        )
    for name, item in value.items():
        if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
            raise StepSettingsError(f"{SECRETS_KEY}: {_shown(name)} is not a variable name (letters, digits, '_')")
        if not isinstance(item, str):
            raise StepSettingsError(
                f"{SECRETS_KEY}.{name} must be a string, got a {type(item).__name__}: set it as text with "
                f"`pulumi config set --secret --path '{SECRETS_KEY}.{name}' <value>`"
            )
    missing = [name for name in wanted if name not in value]
    if missing:
        users = {n: [s for s, names in secret_names(steps).items() if n in names] for n in missing}
        listed = "; ".join(f"{n} (listed by steps.{', steps.'.join(users[n])})" for n in missing)
        raise StepSettingsError(
            f"{SECRETS_KEY} has no value for {listed}: run "
            f"`pulumi config set --secret --path '{SECRETS_KEY}.{missing[0]}' <value>`"
        )
    return {name: value[name] for name in wanted}


def _bodies(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The execution bodies of a payload: a pipeline's node templates (mimic nodes have none), or itself."""
    if "nodes" not in payload:
        return [payload]
    return [n["template"] for n in payload.get("nodes") or [] if isinstance(n.get("template"), dict)]


def payload_steps(payload: dict[str, Any]) -> set[str]:
    """The steps an execution or pipeline payload runs."""
    return {str(body.get("step", "")) for body in _bodies(payload)}


def add_secrets(payload: dict[str, Any], values_by_step: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """Put each step's secret variables into an execution payload (its `step`) or every node template of a
    pipeline payload (in place; returns it), as `{"value": ..., "secret": true}` entries."""
    for body in _bodies(payload):
        values = values_by_step.get(str(body.get("step", "")))
        if values:
            merged = dict(body.get("environment_variables") or {})
            merged.update({name: {"value": text, "secret": True} for name, text in values.items()})
            body.pop("environment-variables", None)
            body["environment_variables"] = merged
    return payload
