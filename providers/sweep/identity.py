"""Identity is content: every key the tool derives, and the tag that carries it, are made here.

A pipeline node's content key (`node_identity` -> `node_key`) is the canonical JSON of: the step's
definition as valohai-yaml parses it (`config.steps[name].serialize()`), the sha256 of the files the step
runs (`providers.sweep.step_files`), the node's parameters, and the keys of what feeds it (the upstream
node's key for an edge, the producing dataset's key for data this stack makes). A resource's key
(`resource_key`) is its stack plus its nodes' keys: a cell's is its preprocess and train keys, a
HarborDataset's its generate node's, the Prediction's its predict node's. The ad-hoc commit is NOT part of
any key: it is what new work runs on, so a cell whose key is unchanged keeps its pipeline.

The key rides along as a tag, so a create can find and adopt the object an earlier, killed or retried
run already made (`providers.resources.adoption`); each node's execution carries its node key as a
`vpac-node:` tag (`node_tag`), by which reuse (`providers.sweep.reuse`) and the estimates
(`providers.sweep.estimates`) find earlier runs of the same node. Changing any recipe here changes every key, so
existing objects are no longer recognised: treat the functions as a stored format. Pure: standard
library only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

TAG_PREFIX = "vpac:"
STACK_TAG_PREFIX = "stack:"  # on every pipeline and execution a stack makes: `stack:<stack>`
NODE_TAG_PREFIX = "vpac-node:"  # on each node's execution: `vpac-node:<node key prefix>`
TAG_KEY_LENGTH = 24  # hex digits of the key in the tag: short enough to read, long enough never to collide


def canonical_json(value: Any) -> str:
    """Canonical JSON (sorted keys, no spaces): the basis of every content hash in the project."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def content_key(*parts: Any) -> str:
    """A deterministic key for anything built from JSON-like parts (cells, datasets, payloads)."""
    return hashlib.sha256(canonical_json(parts).encode()).hexdigest()


def content_tag(key: str) -> str:
    """The tag a remote object carries so a later create can find it by its key."""
    return f"{TAG_PREFIX}{key[:TAG_KEY_LENGTH]}"


def stack_tag(stack: str) -> str:
    """The tag of everything one stack makes (its pipelines are listed by it: reuse, adoption)."""
    return f"{STACK_TAG_PREFIX}{stack}"


def node_tag(key: str) -> str:
    """The tag a node's execution carries, so later pipelines (reuse) and estimates find it by its key."""
    return f"{NODE_TAG_PREFIX}{key[:TAG_KEY_LENGTH]}"


def node_tags(identity: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Node name -> its node tag, for a resource's `identity` ({node name: node_identity})."""
    return {name: node_tag(node_key(dict(ident))) for name, ident in identity.items()}


def node_tag_of(tags: Iterable[Any] | None) -> str | None:
    """The node tag among an execution's tags, if it carries one."""
    return next((t for t in tags or () if isinstance(t, str) and t.startswith(NODE_TAG_PREFIX)), None)


def node_identity(
    step: Any,
    files: dict[str, str],
    parameters: dict[str, Any],
    upstream: dict[str, Any],
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What a node's key is made of, in the shape stored in state (and shown by the plan's reasons).

    `step` is `config.steps[name].serialize()`; it is stored as its hash with the step's name, the rest as is.
    """
    identity = {
        "step": {"name": step.get("name"), "sha256": hashlib.sha256(canonical_json(step).encode()).hexdigest()},
        "files": dict(sorted(files.items())),
        "parameters": dict(sorted(parameters.items())),
        "upstream": dict(sorted(upstream.items())),
    }
    if settings:  # per-step execution settings (stack config `steps`); absent keeps older keys unchanged
        identity["settings"] = dict(sorted(settings.items()))
    return identity


STORED_HASH_LENGTH = 16  # hex digits of each hash an identity keeps in state: enough to tell a change


def stored_identity(identity: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """A resource's identity ({node name: node_identity}) as state keeps it, for the plan's reasons only: every
    hash (the step's, each file's, each upstream key) cut to `STORED_HASH_LENGTH` hex digits.

    Why: the identity is rewritten with the whole state at every checkpoint of an `up` (bench/README.md), and a
    cell's eight full hashes were ~60% of its packed identity. Keys are computed from the full identity first,
    so no key changes. `providers.sweep.explain.reasons` cuts both sides the same way, so identities stored
    whole by earlier versions still compare equal where nothing changed. Idempotent.
    """
    short = STORED_HASH_LENGTH

    def cut(value: Any) -> Any:
        return value[:short] if isinstance(value, str) else value

    stored: dict[str, dict[str, Any]] = {}
    for name, node in identity.items():
        if not isinstance(node, Mapping):
            stored[name] = node  # not an identity we made: kept for the reasons to name
            continue
        entry = dict(node)
        if isinstance(node.get("step"), Mapping):
            entry["step"] = {**node["step"], "sha256": cut(node["step"].get("sha256"))}
        for part in ("files", "upstream"):
            if isinstance(node.get(part), Mapping):
                entry[part] = {k: cut(v) for k, v in node[part].items()}
        stored[name] = entry
    return stored


def node_key(identity: dict[str, Any]) -> str:
    """A pipeline node's content key."""
    return content_key("node", identity)


def resource_key(kind: str, stack: str, identity: dict[str, dict[str, Any]]) -> str:
    """A resource's key: its kind, its stack and its nodes' keys (node name -> identity)."""
    return content_key(kind, stack, {name: node_key(node) for name, node in sorted(identity.items())})
