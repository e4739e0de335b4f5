"""DRF-style API errors, so the real `vh` client and our providers can format them."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Raised anywhere below a route; turned into `{"field": ["msg"]}` or `{"detail": msg}` JSON."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        body = {key: _capped(value) for key, value in body.items()}
        super().__init__(str(body))
        self.status = status
        self.body = body


MAX_MESSAGE = 2000  # characters of one error message: a hostile input must not make a huge answer


def _capped(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_MESSAGE:
        return value[:MAX_MESSAGE] + f"... (message cut at {MAX_MESSAGE} of {len(value)} characters)"
    if isinstance(value, list):
        return [_capped(v) for v in value[:20]]
    return value


def bad_request(field: str, message: str) -> ApiError:
    """400 naming the offending field, e.g. `{"step": ["Step 'x' not found in valohai.yaml"]}`."""
    return ApiError(400, {field: [message]})


def not_found(what: str) -> ApiError:
    return ApiError(404, {"detail": f"{what} not found."})


def flatten(body: dict[str, Any]) -> str:
    """An error body as one line, e.g. `inputs: Unknown input 'x'` (for node logs and nested errors)."""
    parts = []
    for key, value in body.items():
        items = value if isinstance(value, list) else [value]
        text = "; ".join(str(v.get("message", v)) if isinstance(v, dict) else str(v) for v in items)
        parts.append(text if key == "detail" else f"{key}: {text}")
    return " / ".join(parts)
