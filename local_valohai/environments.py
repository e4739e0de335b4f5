"""The execution environments (machine types) the local backend offers, and the payload's `environment`.

Valohai's `POST executions/` takes `environment` as an environment id or slug; `vh environments` lists
them from `GET environments/` with `name`, `slug`, `gpu_spec`, `per_hour_price_usd`, `per_user_queue_quota`
and `unfinished_job_count` (valohai-cli 0.37, valohai_cli/commands/environments.py). The local backend has
one, `local`. An unknown slug is a 400 whose `environment` error has the code `does_not_exist`, the shape
valohai-cli 0.37 looks for to hint at `vh environments` (valohai_cli/commands/execution/run/excs.py);
the message names the known ones (Valohai's own wording is unverified).
"""

from __future__ import annotations

from typing import Any

from .errors import ApiError, bad_request

LOCAL_ENVIRONMENT: dict[str, Any] = {
    "id": "00000000-0000-4000-8000-000000000001",
    "name": "Local machine",
    "slug": "local",
    "description": "Runs steps as subprocesses of the local backend",
    "gpu_spec": "",
    "per_hour_price_usd": "0.0",
    "per_user_queue_quota": 0,
    "unfinished_job_count": 0,
}
ENVIRONMENTS: tuple[dict[str, Any], ...] = (LOCAL_ENVIRONMENT,)
DEFAULT_SLUG = LOCAL_ENVIRONMENT["slug"]


def known() -> str:
    return ", ".join(f"{env['slug']} ({env['id']})" for env in ENVIRONMENTS)


def resolve(value: Any, field: str = "environment") -> str:
    """The slug of the environment a payload names by slug or id; None or "" → the default environment."""
    if value in (None, ""):
        return DEFAULT_SLUG
    if not isinstance(value, str):
        raise bad_request(field, f"Expected an environment slug or id, got {type(value).__name__}")
    for env in ENVIRONMENTS:
        if value in (env["slug"], env["id"]):
            return str(env["slug"])
    shown = value if len(value) <= 80 else value[:77] + "..."
    message = f"Unknown environment {shown!r}: use one of {known()} (see `vh environments`)"
    raise ApiError(400, {field: [{"code": "does_not_exist", "message": message}]})


def by_slug(slug: str | None) -> dict[str, Any]:
    """The environment object an execution shows (executions made before environments were stored: local)."""
    for env in ENVIRONMENTS:
        if env["slug"] == (slug or DEFAULT_SLUG):
            return env
    return LOCAL_ENVIRONMENT
