"""Per-step execution settings from stack config: `steps: {<step>: {environment, image, time_limit,
priority, environment_variables}}`, validated at preview, and the payload fields they become.

The fields are those valohai-cli 0.37 puts in `POST /api/v0/executions/` (valohai_cli/commands/execution/
run/dynamic_run_command.py: `environment` (an environment slug or UUID), `image`, `environment_variables`
(name -> value), `priority` (an integer), `time_limit` (whole seconds)). That a pipeline node's `template`
accepts the same underscore spellings is unverified: valohai-yaml's PipelineConverter copies the step's
own serialization there (`environment`, `image`, `time-limit`, `environment-variables`). Settings changes
are part of a node's content key, so changing a step's machine re-runs that step's nodes.

Secret values do not belong here (stack config is plain text in the stack file and state): keep them in
Valohai as secret project environment variables (`vh project environment-variables create --secret`),
which every execution inherits; see docs/real-valohai.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

STEPS = ("generate-harbors", "preprocess-dataset", "train", "predict-models")
KEYS = ("environment", "image", "time_limit", "priority", "environment_variables")
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
        if out:
            parsed[str(step)] = out
    return dict(sorted(parsed.items()))


def apply_to(body: dict[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """Put one step's settings into an execution payload or a node template (in place; returns it).

    Environment variables are merged over the ones already there; the hyphenated spellings valohai-yaml
    may have copied from the step are replaced by the payload's.
    """
    for name, value in settings.items():
        if name == "environment_variables":
            merged = {**dict(body.get("environment_variables") or {}), **value}
            body.pop("environment-variables", None)
            body["environment_variables"] = merged
        else:
            if name == "time_limit":
                body.pop("time-limit", None)
            body[name] = value
    return body
