"""The one validation layer for what clients send: types, ranges and lengths of bodies and query parameters.

Every check raises a DRF-style 400 (or 413 for a body over a size limit) naming the field and the fix, so
no malformed request reaches code that would fail with a 500. Names that become directories or dataset
URIs (input names, node names, dataset and version names) follow one rule, `safe_name`, whether they come
from a request, from `valohai.yaml` or from an output sidecar.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import PurePosixPath
from typing import Any

from .errors import ApiError, bad_request

# Counters and other integers travel as ASCII digits only: `str.isdigit()` accepts "²" and other Unicode
# digits that int() then refuses, and SQLite stores at most 64-bit integers.
DIGITS = re.compile(r"[0-9]{1,18}")
MAX_SQL_INT = 2**63 - 1


def safe_name(value: Any, what: str, field: str, max_length: int = 255) -> str:
    """A name that becomes a path below a directory: relative, no `..`, no NUL, not empty, bounded."""
    if not isinstance(value, str):
        raise bad_request(field, f"Invalid {what} {value!r}: expected a string")
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts or "\x00" in value or "\\" in value:
        raise bad_request(field, f"Invalid {what} {shorten(value)!r}: must be a relative name without '..'")
    if len(value) > max_length:
        raise bad_request(field, f"Invalid {what}: at most {max_length} characters (it has {len(value)})")
    return value


def dataset_part(value: Any, what: str, field: str, max_length: int = 200) -> str:
    """A dataset or dataset version name: a safe name that is also one URI segment (no '/')."""
    name = safe_name(value, what, field, max_length)
    if "/" in name or name in (".", ""):
        raise bad_request(field, f"Invalid {what} {shorten(name)!r}: must not contain '/'")
    return name


def shorten(text: str, limit: int = 80) -> str:
    """Echo at most `limit` characters of a client's value back in an error message."""
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def text(value: Any, field: str, max_length: int, *, default: str = "") -> str:
    """An optional free-text field: a string of at most `max_length` characters (None → `default`)."""
    if value is None:
        return default
    if not isinstance(value, str):
        raise bad_request(field, f"Expected a string, got {type(value).__name__}")
    if len(value) > max_length:
        raise bad_request(field, f"Ensure this field has no more than {max_length} characters (it has {len(value)}).")
    return value


def string_list(value: Any, field: str, max_items: int, max_length: int) -> list[str]:
    """A list of short strings (tags); None or "" is the empty list."""
    if value in (None, ""):
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request(field, "Expected a list of strings")
    if len(value) > max_items or any(len(v) > max_length for v in value):
        raise bad_request(field, f"At most {max_items} entries of at most {max_length} characters each")
    return value


def mapping(value: Any, field: str, max_entries: int, what: str = "an object") -> dict[str, Any]:
    """An optional JSON object with string keys (None or "" → {})."""
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise bad_request(field, f"Expected {what}, got {type(value).__name__}")
    if len(value) > max_entries:
        raise bad_request(field, f"At most {max_entries} entries (it has {len(value)})")
    return value


def scalar_values(values: dict[str, Any], field: str, max_length: int) -> None:
    """Values of parameters and environment variables: JSON scalars (or lists of them), strings bounded."""
    for key, value in values.items():
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item is not None and not isinstance(item, (str, int, float, bool)):
                raise bad_request(field, f"{shorten(str(key))}: expected a string, number or boolean")
            if isinstance(item, float) and not math.isfinite(item):
                raise bad_request(field, f"{shorten(str(key))}: must be a finite number")
            if isinstance(item, str) and len(item) > max_length:
                raise bad_request(field, f"{shorten(str(key))}: at most {max_length} characters (it has {len(item)})")


def input_uris(value: Any, field: str, max_entries: int, max_length: int, max_uris: int) -> dict[str, list[str]]:
    """`inputs`: at most `max_entries` {name: URI or [URIs]}, at most `max_uris` bounded strings per name."""
    inputs = mapping(value, field, max_entries, "an object mapping input names to lists of URIs")
    clean: dict[str, list[str]] = {}
    for name, raw in inputs.items():
        urls = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else None
        if raw is None:
            continue
        if urls is None or not all(isinstance(u, str) for u in urls):
            raise bad_request(field, f"Input {shorten(str(name))!r}: expected a URI or a list of URIs")
        if len(urls) > max_uris or any(len(u) > max_length for u in urls):
            raise bad_request(
                field, f"Input {shorten(str(name))!r}: at most {max_uris} URIs of {max_length} characters"
            )
        clean[name] = urls
    return clean


def seconds(value: Any, field: str) -> int | None:
    """A duration in whole seconds: a finite, non-negative number (or numeric string); None when absent."""
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise bad_request(field, f"Expected a number of seconds, got {shorten(repr(value))}")
    try:
        number = float(value)
    except ValueError as exc:
        raise bad_request(field, f"Expected a number of seconds, got {shorten(repr(value))}") from exc
    if not math.isfinite(number) or number < 0 or number > 10**9:
        raise bad_request(field, "Expected a number of seconds between 0 and 1000000000")
    return int(number)


def integer(raw: str, field: str) -> int:
    """A non-negative integer sent as ASCII digits (query parameters, counters), within SQLite's range."""
    if not DIGITS.fullmatch(raw):
        raise bad_request(field, f"Expected a non-negative integer of at most 18 digits, got {shorten(raw)!r}")
    return int(raw)


def counter(raw: str) -> int | None:
    """A `#12` / `=12` / `12` counter (the CLI's spellings), or None when it is not one."""
    digits = raw.lstrip("#=!")
    return int(digits) if DIGITS.fullmatch(digits) else None


def json_body(body: bytes, max_depth: int) -> Any:
    """Parse a JSON body: no NaN/Infinity, nesting at most `max_depth`; a 400 naming the problem otherwise."""

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        data = json.loads(body, parse_constant=no_constants)
    except RecursionError as exc:
        raise ApiError(400, {"detail": f"JSON parse error - nested deeper than {max_depth} levels"}) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, {"detail": f"JSON parse error - {shorten(str(exc), 200)}"}) from exc
    if _depth(data) > max_depth:
        raise ApiError(400, {"detail": f"JSON parse error - nested deeper than {max_depth} levels"})
    return data


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def too_large(what: str, limit: int, setting: str) -> ApiError:
    """413 for a body or package over a limit, naming the limit and the setting that raises it."""
    return ApiError(413, {"detail": f"{what} is larger than the limit of {limit} bytes ({setting})."})
