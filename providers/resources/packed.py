"""Large nested inputs (a payload, an identity) travel and are stored as one compressed canonical-JSON string.

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

Compressed (zlib, then base64, after `PACKED_PREFIX`): the file backend rewrites the whole state at every step
of an `up` and the engine's CPU went to that (`pulumi up --profiling` of a 300-cell sweep: 85% of it in
`SnapshotManager.saveSnapshot`, JSON encoding, MD5 and the file copies of every byte), so a 1,000-cell sweep
costs in proportion to its state's bytes. A cell's identity (1.0 KB, stored twice: input and output) and payload
(1.6 KB) are ~55% of its state entry; compressed they are ~0.55 and ~0.8 KB, and base64 needs no JSON escapes.
Content keys are computed before packing (`providers.sweep.identity`), so the format changes no key. Plain
canonical-JSON strings (state of the previous version) are still read.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Mapping
from typing import Any

import pulumi

from providers.resources.base import is_unknown
from providers.sweep.identity import canonical_json

PACKED_PREFIX = "zlib64:"  # marks a compressed value; never the start of JSON, so both formats read apart
MAX_UNPACKED_BYTES = 64 * 1024 * 1024  # a state edited into a decompression bomb fails instead of filling memory


def _compressed(value: Any) -> str:
    return PACKED_PREFIX + base64.b64encode(zlib.compress(canonical_json(value).encode(), 9)).decode("ascii")


class UnpackedTooLarge(ValueError):
    """A packed value that would unpack past `MAX_UNPACKED_BYTES`."""


def _decompressed(data: bytes) -> str:
    inflater = zlib.decompressobj()
    text = inflater.decompress(data, MAX_UNPACKED_BYTES)
    if inflater.unconsumed_tail:
        raise UnpackedTooLarge(
            f"a packed property unpacks to more than {MAX_UNPACKED_BYTES} bytes: the stack state was edited by "
            "hand; run `pulumi refresh` or re-create the resource"
        )
    return text.decode()


def pack(value: Any) -> Any:
    """A value (or an Output of one) as compressed canonical JSON; None stays None (an input left out)."""
    if value is None:
        return None
    if isinstance(value, pulumi.Output):
        return value.apply(lambda v: None if v is None else _compressed(v))
    return _compressed(value)


def unpack(value: Any) -> Any:
    """What `pack` made, as the object again; plain canonical JSON or an object (state of older versions), None
    or a preview's unknown value is read as it is."""
    if not isinstance(value, str) or is_unknown(value):
        return value
    try:
        text = (
            _decompressed(base64.b64decode(value[len(PACKED_PREFIX) :], validate=True))
            if value.startswith(PACKED_PREFIX)
            else value
        )
        return json.loads(text)
    except UnpackedTooLarge:
        raise
    except (ValueError, zlib.error, binascii.Error):
        raise ValueError(
            f"a packed property is neither packed nor JSON ({value[:60]!r}): the stack state was edited by hand; "
            "run `pulumi refresh` or re-create the resource"
        ) from None


def stored_project(outs: Mapping[str, Any]) -> Any:
    """The project id a resource's stored outputs name: `project_id`, or the payload's for state written before
    the outputs kept `project_id` instead of the payload."""
    payload = unpack(outs.get("payload"))
    return outs.get("project_id") or (payload.get("project") if isinstance(payload, Mapping) else None)
