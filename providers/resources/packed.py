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

With a preset dictionary (`ZDICT`, after `PACKED_PREFIX`): one value is too small for deflate to learn its
own field names, so each packed value started by spelling them all out. The dictionary holds the shapes of
an identity and a pipeline payload (canonical JSON, keys sorted): a cell's payload packs to ~0.58 KB instead
of ~0.81, its identity ~0.05 KB smaller. The dictionary is a stored format: never edit it; a new one needs
a new prefix. Values packed without it (`LEGACY_PREFIX`) still read, and `keep_stored_packing` keeps an
unchanged value as state already holds it, so a format change rewrites no resource.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import pulumi

from providers.resources.base import integral_numbers, is_unknown
from providers.sweep.identity import canonical_json, stored_identity

PACKED_PREFIX = "zd1:"  # compressed with ZDICT; never the start of JSON, so every format reads apart
LEGACY_PREFIX = "zlib64:"  # compressed without a dictionary (state of the previous version)
MAX_UNPACKED_BYTES = 64 * 1024 * 1024  # a state edited into a decompression bomb fails instead of filling memory
PACKED_NAMES = ("identity", "payload", "spec", "cells")  # the inputs the resources pack (providers/resources/*.py)
SPEC = "spec"  # a pipeline's host, label, content key and identity as one packed input (`spec_view`)

# The preset dictionary of PACKED_PREFIX: never edit (see the module docstring).
ZDICT = (
    b'{"generate":{"files":{"steps/generate_harbors.py":""},"parameters":{"harbors":[],"image_size":64,'
    b'"images_per_class":150,"seed":42,"test_images_per_harbor":50},"step":{"name":"generate-harbors","sha256":""},'
    b'"upstream":{}}}{"predict":{"files":{"steps/predict_models.py":""},"parameters":{"harbours":[]},'
    b'"step":{"name":"predict-models","sha256":""},"upstream":{"dataset":{"harbor_A":""},"models":{}}}}'
    b'{"edges":[{"source_key":"run_training_for","source_node":"preprocess","source_type":"metadata",'
    b'"target_key":"dataset_name","target_node":"train","target_type":"parameter"},{"source_key":"train/*",'
    b'"source_node":"preprocess","source_type":"output","target_key":"dataset","target_node":"train",'
    b'"target_type":"input"}],"nodes":[{"name":"preprocess","template":{"command":["python steps/'
    b'preprocess_dataset.py {parameters}"],"commit":"~","environment":"","image":"python:3.11","inputs":'
    b'{"dataset":["datum://"],"labels":["datum://"]},"name":"preprocess-dataset","parameters":{"dataset_name":'
    b'"harbor_A","image_size":64,"validation_split":0.3},"runtime_config":{},"step":"preprocess-dataset",'
    b'"tags":["vpac-node:"]},"type":"execution"},{"name":"train","template":{"command":["python steps/train.py '
    b'{parameters}"],"commit":"~","environment":"","image":"python:3.11","inputs":{},"name":"train",'
    b'"parameters":{"batch_size":16,"dataset_name":"harbor_A","epochs":5,"learning_rate":0.001,"seed":42},'
    b'"runtime_config":{},"step":"train","tags":["vpac-node:"]},"type":"execution"}],"parameters":{},'
    b'"project":"","tags":["stack:"],"title":"training-pipeline-harbor_A-epochs-"}'
    b'{"preprocess":{"files":{"steps/preprocess_dataset.py":""},"parameters":{"dataset_name":"harbor_A",'
    b'"image_size":64,"validation_split":0.3},"settings":{},"step":{"name":"preprocess-dataset","sha256":""},'
    b'"upstream":{"dataset":"","labels":""}},"train":{"files":{"steps/train.py":""},"parameters":'
    b'{"batch_size":16,"dataset_name":"harbor_A","epochs":5,"learning_rate":0.001,"seed":42},'
    b'"step":{"name":"train","sha256":""},"upstream":{"dataset":"","dataset_name":""}}}'
)


def _compressed(value: Any) -> str:
    deflate = zlib.compressobj(9, zdict=ZDICT)
    data = deflate.compress(canonical_json(value).encode()) + deflate.flush()
    return PACKED_PREFIX + base64.b64encode(data).decode("ascii")


class UnpackedTooLarge(ValueError):
    """A packed value that would unpack past `MAX_UNPACKED_BYTES`."""


def _decompressed(data: bytes, zdict: bytes | None) -> str:
    inflater = zlib.decompressobj(zdict=zdict) if zdict else zlib.decompressobj()
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
        if value.startswith(PACKED_PREFIX):
            text = _decompressed(base64.b64decode(value[len(PACKED_PREFIX) :], validate=True), ZDICT)
        elif value.startswith(LEGACY_PREFIX):
            text = _decompressed(base64.b64decode(value[len(LEGACY_PREFIX) :], validate=True), None)
        else:
            text = value
        return json.loads(text)
    except UnpackedTooLarge:
        raise
    except (ValueError, zlib.error, binascii.Error):
        raise ValueError(
            f"a packed property is neither packed nor JSON ({value[:60]!r}): the stack state was edited by hand; "
            "run `pulumi refresh` or re-create the resource"
        ) from None


def pack_identity(identity: Mapping[str, Mapping[str, Any]]) -> str:
    """A resource's identity (computed in the program, never an Output) packed in the shape state keeps
    (`providers.sweep.identity.stored_identity`: hashes cut short, for the plan's reasons)."""
    return _compressed(stored_identity(identity))


def keep_stored_packing(old_inputs: Mapping[str, Any], news: dict[str, Any]) -> dict[str, Any]:
    """`news` with each packed input whose content equals the stored one replaced by the stored value.

    Why: an input whose value changed makes the engine rewrite the resource into state (the file backend: the
    whole state, once per resource), so a new packing format, a cut identity or an input packed now that state
    holds as an object (the results' `cells`, stored before it was packed) would have rewritten every unchanged
    resource once after an upgrade. Equal strings, the usual case, cost one comparison."""
    kept = news
    for name in PACKED_NAMES:
        old, new = old_inputs.get(name), news.get(name)
        if old is None or not isinstance(new, str) or old == new or is_unknown(new):
            continue
        try:
            old_value, new_value = unpack(old), unpack(new)
        except ValueError:
            continue  # a damaged stored value: the new one replaces it
        if name == "identity" and isinstance(old_value, Mapping) and isinstance(new_value, Mapping):
            old_value = stored_identity(old_value)
        if integral_numbers(old_value) == integral_numbers(new_value):
            kept = {**kept, name: old}
    return kept


def open_packed_outputs(resource: pulumi.Resource, names: Iterable[str]) -> None:
    """Make the resource's output attributes `names` (packed by its provider) read as the objects again, so the
    program and the stack's exports see what they saw before those outputs were packed; outputs stored unpacked
    (state of earlier versions) read as they are."""
    for name in names:
        setattr(resource, name, getattr(resource, name).apply(unpack))


def stored_project(outs: Mapping[str, Any]) -> Any:
    """The project id a resource's stored outputs name: `project_id`, or the payload's for state written before
    the outputs kept `project_id` instead of the payload."""
    payload = unpack(outs.get("payload"))
    return outs.get("project_id") or (payload.get("project") if isinstance(payload, Mapping) else None)


def pack_spec(fields: Mapping[str, Any]) -> str:
    """A pipeline's `SPEC`: its host, label, content key and (as an input) identity, packed as one value.

    Why one value: the file backend re-encodes every value of every resource at each checkpoint of an `up`, and
    the engine keeps a property-dependency entry for each input besides. As four inputs, repeated as outputs,
    they were 11 of a cell's 23 stored values; as one they are 3 (with its outputs, a cell stores 11 in all).
    Measured with the real engine on 600 resources shaped like cells, side by side: `up` 59.6 -> 52.2 s
    (bench/state_shape.py; bench/README.md, "State shape"). All of them are known at preview (the program
    computes the key from values known then), so the plan is as exact as before; the payload, which may wait on
    upstream outputs, stays an input of its own. The fields are plain values (the program's config, key and
    identity; a create's inputs), never Outputs."""
    return _compressed({k: stored_identity(v) if k == "identity" else v for k, v in fields.items() if v is not None})


def spec_view(props: Mapping[str, Any]) -> dict[str, Any]:
    """Props with a packed `SPEC` opened into its fields (`host`, `label`, `key`, `identity`), so the providers
    read both shapes alike: state written before the spec holds those fields as values of their own."""
    packed = props.get(SPEC)
    if packed is None or is_unknown(packed):
        return dict(props)
    fields = unpack(packed)
    if not isinstance(fields, Mapping):
        raise ValueError(
            f"the packed {SPEC!r} property is not an object: the stack state was edited by hand; run `pulumi refresh` "
            "or re-create the resource"
        )
    return {**{k: v for k, v in props.items() if k != SPEC}, **fields}


def keep_stored_shape(old_inputs: Mapping[str, Any], news: dict[str, Any]) -> dict[str, Any]:
    """`news` in the shape state already holds, when its content is the same: inputs stored before `SPEC` existed
    (host, label, key and identity as values of their own) stay so while nothing in them changes, since an input
    whose shape changed makes the engine rewrite the resource into state once after an upgrade, for nothing."""
    packed = news.get(SPEC)
    if packed is None or SPEC in old_inputs or "key" not in old_inputs or is_unknown(packed):
        return news
    try:
        fields = unpack(packed)
        old_identity = unpack(old_inputs.get("identity"))
    except ValueError:
        return news
    if not isinstance(fields, Mapping) or not isinstance(old_identity, Mapping):
        return news
    stored = {k: old_inputs.get(k) for k in fields if k != "identity"}
    if "identity" in fields:
        stored["identity"] = stored_identity(old_identity)
    if stored != dict(fields):
        return news
    return {**{k: v for k, v in news.items() if k != SPEC}, **{k: old_inputs[k] for k in fields if k in old_inputs}}
