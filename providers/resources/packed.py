"""Large nested inputs (a payload, an identity) travel and are stored as one canonical-JSON string.

Why: Pulumi handles a resource's properties value by value. The Python SDK turns each nested value into a
protobuf `Value` with a coroutine of its own (`pulumi.runtime.rpc.serialize_property`), and back again, in the
program and in the provider process at every Check, Diff and Read; the engine copies every value again for
each event of each step. A pipeline payload and identity are ~150 values; as strings they are two. Measured
on one pipeline's stored outputs: serialize 1.11 -> 0.21 ms, deserialize 0.96 -> 0.10 ms per call, several
calls per resource per run (bench/README.md, "No-change preview cost").

Nothing reads these values field by field in Pulumi: the diffs compare content keys (`providers.resources.base`),
the plan's reasons come from `unpack`ed identities, and a payload is only sent to the API. A secret payload
stays a Pulumi secret (`Output.apply` keeps secretness). State written before this version holds them as
objects; `unpack` takes both, so upgrading changes no key and re-runs nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pulumi

from providers.resources.base import is_unknown
from providers.sweep.identity import canonical_json


def pack(value: Any) -> Any:
    """A value (or an Output of one) as canonical JSON; None stays None (an input left out)."""
    if value is None:
        return None
    if isinstance(value, pulumi.Output):
        return value.apply(lambda v: None if v is None else canonical_json(v))
    return canonical_json(value)


def unpack(value: Any) -> Any:
    """What `pack` made, as the object again; an object (state of an older version), None or a preview's
    unknown value is returned as it is."""
    if not isinstance(value, str) or is_unknown(value):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise ValueError(
            f"a packed property is not JSON ({value[:60]!r}): the stack state was edited by hand; "
            "run `pulumi refresh` or re-create the resource"
        ) from None


def stored_project(outs: Mapping[str, Any]) -> Any:
    """The project id a resource's stored outputs name: `project_id`, or the payload's for state written before
    the outputs kept `project_id` instead of the payload."""
    payload = unpack(outs.get("payload"))
    return outs.get("project_id") or (payload.get("project") if isinstance(payload, Mapping) else None)
