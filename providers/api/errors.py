"""The errors an API call can end in, typed so callers decide by kind (retry, adopt, report) and not by text.

Each carries the server's own message, the HTTP status (0 when the server was not reached), the method and
the path; never the token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# HTTP statuses that may succeed if tried again (the transport retries them; they raise ValohaiTransient).
TRANSIENT_STATUSES = (429, 500, 502, 503, 504)
AUTH_HINT = " (check the API token: stack config valohai:token or VALOHAI_API_TOKEN)"


class ValohaiError(Exception):
    """An API call failed; `status` is the HTTP status (0 when the server was not reached)."""

    def __init__(self, message: str, *, status: int = 0, method: str = "", path: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.path = path


class ValohaiAuthError(ValohaiError):
    """401/403: the token is missing, wrong, or lacks access."""


class ValohaiNotFound(ValohaiError):
    """404: the object does not exist (or was deleted outside this tool)."""


class ValohaiBadRequest(ValohaiError):
    """400: the server rejected the payload; the message holds its field errors."""


class ValohaiTransient(ValohaiError):
    """5xx, 429, a dropped connection or a time-out: the call may succeed if tried again (and a POST
    may already have been applied)."""


class ValohaiUnreachable(ValohaiTransient):
    """The host could not be reached at all, after retries."""


def format_error_body(body: Any) -> str:
    """Flatten Valohai/DRF error bodies (`detail`, `message`, `{field: [..]}`) into one line."""
    if isinstance(body, Mapping):
        for key in ("detail", "message", "error"):
            if isinstance(body.get(key), str):
                return body[key]
        parts = []
        for field, value in body.items():
            if isinstance(value, list):
                value = "; ".join(v.get("message", str(v)) if isinstance(v, Mapping) else str(v) for v in value)
            elif isinstance(value, Mapping):
                value = format_error_body(value)
            parts.append(f"{field}: {value}")
        return ", ".join(parts)
    if isinstance(body, list):
        return "; ".join(format_error_body(b) for b in body)
    return str(body)


def http_error(status: int, body: Any, *, method: str, path: str) -> ValohaiError:
    """The typed error for an HTTP error answer, with the server's own message (`body`: decoded JSON,
    text, or the reason phrase when the answer had no body)."""
    message = f"{method} {path} -> {status}: {format_error_body(body)}"
    kind = {401: ValohaiAuthError, 403: ValohaiAuthError, 404: ValohaiNotFound, 400: ValohaiBadRequest}.get(
        status, ValohaiTransient if status in TRANSIENT_STATUSES else ValohaiError
    )
    if kind is ValohaiAuthError:
        message += AUTH_HINT
    return kind(message, status=status, method=method, path=path)
