"""Why a resource changes, in words: the value-level differences between two identities (deepdiff).

An identity is `{node name: providers.sweep.identity.node_identity(...)}`. The plan prints one line per
changed resource in a fixed grammar, `<name>: <op>: <reason>[; <reason>…]` (`reason_line`), which
`toolchain/plan_explain.py` collects from the engine's diagnostics.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from providers.sweep.identity import stored_identity

REASON_LINE = re.compile(r"^(?P<name>[^\s:]+): (?P<op>create|replace|re-run|re-create|update|delete): (?P<reason>.+)$")


def reason_line(name: str, op: str, reasons: list[str]) -> str:
    return f"{name}: {op}: {'; '.join(reasons) or 'changed'}"


def _show(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (str, int, float)):
        return str(value)
    return json.dumps(value, default=str)


def parameter_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """`learning_rate 0.001 -> 0.002`, `seed added (7)`, `seed removed`: deepdiff finds the parameters
    whose values differ (2 and 2.0 are equal: Pulumi carries every number as a float)."""
    from deepdiff import DeepDiff  # pulls in numpy and pydantic: only when something changed

    diff = DeepDiff(dict(old), dict(new), ignore_numeric_type_changes=True)
    lines = []
    for key in sorted(diff.affected_root_keys, key=str):
        if key not in old:
            lines.append(f"{key} added ({_show(new[key])})")
        elif key not in new:
            lines.append(f"{key} removed")
        else:
            lines.append(f"{key} {_show(old[key])} -> {_show(new[key])}")
    return lines


def file_changes(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    lines = []
    for path in sorted(set(old) | set(new)):
        if path not in old:
            lines.append(f"{path} added")
        elif path not in new:
            lines.append(f"{path} no longer used")
        elif old[path] != new[path]:
            lines.append(f"{path} changed")
    return lines


def reasons(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[str]:
    """Every difference between two identities, in words; upstream-only changes only when nothing else changed."""
    if not isinstance(new, Mapping):
        return ["identity not known yet"]
    if not isinstance(old, Mapping) or not old:
        return ["no content key recorded (made by an older version of the tool)"]
    old, new = stored_identity(old), stored_identity(new)  # state keeps hashes cut short (older state: whole)
    own: list[str] = []
    upstream: list[str] = []
    for node in sorted(set(old) | set(new)):
        o, n = old.get(node), new.get(node)
        if o is None:
            own.append(f"node {node} added")
            continue
        if n is None:
            own.append(f"node {node} removed")
            continue
        if (o.get("step") or {}).get("sha256") != (n.get("step") or {}).get("sha256"):
            own.append(f"step {(n.get('step') or {}).get('name')} changed in valohai.yaml")
        own += file_changes(o.get("files") or {}, n.get("files") or {})
        own += parameter_changes(o.get("parameters") or {}, n.get("parameters") or {})
        own += [
            f"{node} setting {line}" for line in parameter_changes(o.get("settings") or {}, n.get("settings") or {})
        ]
        old_up, new_up = o.get("upstream") or {}, n.get("upstream") or {}
        upstream += [
            f"input {k} of {node} changed upstream"
            for k in sorted(set(old_up) | set(new_up))
            if old_up.get(k) != new_up.get(k)
        ]
    unique = list(dict.fromkeys(own))
    return unique or list(dict.fromkeys(upstream))
