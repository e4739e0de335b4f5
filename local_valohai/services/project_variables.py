"""Project environment variables, secret ones included: what executions inherit and what clients may see.

valohai-cli 0.37 creates one with `POST projects/{id}/environment_variable/` and the body
`{"name", "value", "secret"}`, deletes one with `DELETE` on the same route and the body `{"name"}` (a 404
is "not found"), and lists them from the project object's `environment_variables`, a mapping of name to
`{"value", "secret"}` (valohai_cli/commands/project/environment_variables/create.py, delete.py, list.py).
The CLI prints `****` for a secret itself; what Valohai returns as a secret's `value` is unverified: here
it is always null, so no route ever returns a secret value.

Executions inherit the project's variables unless valohai.yaml's step defaults or the payload set the
same name (that order of precedence is unverified). Public ones are copied into the execution's
`environment_variables`; secret ones go to a column no serializer reads and reach only the step's
process environment. A payload (or node template) may give one of its own `environment_variables` in the
same `{"value", "secret": true}` shape (`payload_entries`): it is kept like a secret project variable,
out of every answer (whether Valohai accepts that shape there is unverified).
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import bad_request
from ..validation import text

# The CLI's own rule (valohai_cli/commands/project/environment_variables/create.py VALID_ENVVAR_NAME_RE),
# narrowed to names a POSIX shell can export.
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_NAME, MAX_VALUE, MAX_VARIABLES = 200, 64 * 1024, 500


def _entries(stored: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """name → (value, secret); a plain string value (older data directories) is a public variable."""
    entries: dict[str, tuple[str, bool]] = {}
    for name, item in stored.items():
        if isinstance(item, dict):
            entries[name] = (str(item.get("value") or ""), bool(item.get("secret")))
        else:
            entries[name] = ("" if item is None else str(item), False)
    return entries


def public_view(stored: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The project's `environment_variables` as a route returns them: a secret's value is null."""
    return {
        name: {"value": None if secret else value, "secret": secret}
        for name, (value, secret) in sorted(_entries(stored).items())
    }


def split(stored: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(public, secret) name → value mappings of the project's variables."""
    entries = _entries(stored)
    public = {name: value for name, (value, secret) in entries.items() if not secret}
    secret = {name: value for name, (value, is_secret) in entries.items() if is_secret}
    return public, secret


def with_variable(stored: dict[str, Any], data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The stored mapping with the body's variable added or replaced; (its name, the new mapping)."""
    name = text(data.get("name"), "name", MAX_NAME).strip()
    if not NAME.fullmatch(name):
        raise bad_request(
            "name", f"Invalid environment variable name {name[:80]!r}: use letters, digits and '_', not first a digit"
        )
    value = data.get("value")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    value = text(value, "value", MAX_VALUE)
    secret = data.get("secret", False)
    if isinstance(secret, str):
        secret = secret.strip().lower() in ("1", "true", "yes", "on")
    if not isinstance(secret, bool):
        raise bad_request("secret", "Expected true or false")
    updated = {n: {"value": v, "secret": s} for n, (v, s) in _entries(stored).items()}
    if name not in updated and len(updated) >= MAX_VARIABLES:
        raise bad_request("name", f"A project holds at most {MAX_VARIABLES} environment variables")
    updated[name] = {"value": value, "secret": secret}
    return name, updated


def without_variable(stored: dict[str, Any], name: Any) -> dict[str, Any] | None:
    """The stored mapping without `name`; None when the project has no such variable."""
    if not isinstance(name, str) or name not in stored:
        return None
    return {n: v for n, v in stored.items() if n != name}


def payload_entries(env: dict[str, Any], max_value: int) -> tuple[dict[str, Any], dict[str, str]]:
    """A payload's `environment_variables` split into (public name → scalar, secret name → value): an entry
    `{"value": text, "secret": true}` is a secret, `{"value": text, "secret": false}` a public one."""
    public: dict[str, Any] = {}
    secret: dict[str, str] = {}
    for name, item in env.items():
        if not isinstance(item, dict):
            public[name] = item
            continue
        if set(item) - {"value", "secret"} or not isinstance(item.get("secret", False), bool):
            raise bad_request("environment_variables", f"{str(name)[:80]}: expected a value or {{value, secret}}")
        value = item.get("value")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        value = text(value, "environment_variables", max_value) or ""
        if item.get("secret"):
            secret[name] = value
        else:
            public[name] = value
    return public, secret
