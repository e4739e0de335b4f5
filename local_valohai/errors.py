"""DRF-style API errors, so the real `vh` client and our providers can format them."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Raised anywhere below a route; turned into `{"field": ["msg"]}` or `{"detail": msg}` JSON."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body


def bad_request(field: str, message: str) -> ApiError:
    """400 naming the offending field, e.g. `{"step": ["Step 'x' not found in valohai.yaml"]}`."""
    return ApiError(400, {field: [message]})


def not_found(what: str) -> ApiError:
    return ApiError(404, {"detail": f"{what} not found."})
