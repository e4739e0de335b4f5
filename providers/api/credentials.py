"""The API token and the clients made with it: one per host, in this process's memory only.

Why a module-level store: the provider object is pickled into state (`__provider`), so the token must
never live on it. The engine calls `configure()` in the provider process with the whole stack config; the
token is kept here, with `VALOHAI_API_TOKEN` as the fallback. Clients are created lazily, one per host, and
the host is checked once per process (one `users/me` call), so a missing token or an unreachable host fails
`check` at preview, before anything is created.
"""

from __future__ import annotations

import os
import threading

from providers.api.client import ValohaiClient
from providers.api.errors import ValohaiError

TOKEN_CONFIG_KEY = "valohai:token"
TOKEN_ENV = "VALOHAI_API_TOKEN"

_lock = threading.Lock()
_token_from_config: str | None = None
_clients: dict[str, ValohaiClient] = {}
_verified: dict[str, str | None] = {}  # host -> None when fine, else the error message


def set_token(token: str | None) -> None:
    """Use this token from now on (None: fall back to the environment); forgets clients made before."""
    global _token_from_config
    with _lock:
        _token_from_config = token or None
        _clients.clear()
        _verified.clear()


def current_token() -> str | None:
    return _token_from_config or os.environ.get(TOKEN_ENV) or None


def client(host: str) -> ValohaiClient:
    """The shared client for this host, made with the current token on first use."""
    token = current_token()
    if not token:
        raise ValohaiError(missing_token_message())
    with _lock:
        if host not in _clients:
            _clients[host] = ValohaiClient(host, token)
        return _clients[host]


def missing_token_message() -> str:
    return f"no Valohai API token: run `pulumi config set --secret {TOKEN_CONFIG_KEY} <token>` or export {TOKEN_ENV}"


def verify_access(host: str) -> str | None:
    """One `users/me` call per host and process; returns an error message, or None when all is well."""
    if not current_token():
        return missing_token_message()
    with _lock:
        if host in _verified:
            return _verified[host]
    try:
        client(host).me()
        problem = None
    except (ValohaiError, ValueError) as exc:
        problem = str(exc)
    with _lock:
        _verified[host] = problem
    return problem
