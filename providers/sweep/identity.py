"""Identity is content: every key the tool derives, and the tag that carries it, are made here.

A remote object's key is a hash of what it was made from (the stack and its payload, a harbor's data
sizes, ...). The key rides along as a tag, so a create can find and adopt the object an earlier, killed or
retried run already made (`providers.resources.adoption`). Changing any recipe here changes every key, so
existing objects are no longer recognised: treat the functions as a stored format. Pure: standard library only.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

TAG_PREFIX = "vpac:"
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


def pipeline_key(stack: str, payload: Any) -> str:
    """A sweep cell's (or the single-mode sweep's) pipeline: the stack and the full payload."""
    return content_key("pipeline", stack, payload)


def harbor_data_key(stack: str, harbor: str, data: Any, generator_key: str) -> str:
    """A harbor's generated data: its sizes and seed, and the generator's own files."""
    return content_key("harbor-data", stack, harbor, data, generator_key)


def prediction_key(stack: str, payload: Any) -> str:
    """The prediction execution of a parallel-mode sweep."""
    return content_key("prediction", stack, payload)
