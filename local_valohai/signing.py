"""Signed download URLs: HMAC of (datum id, expiry) with the server secret.

They work without the API token (the CLI fetches them with a plain session), so they must be bound to
one datum and expire.
"""

from __future__ import annotations

import hashlib
import hmac
import time


def signature(secret: str, datum_id: str, expires: int) -> str:
    msg = f"{datum_id}:{expires}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def signed_path(secret: str, datum_id: str, ttl: int) -> str:
    expires = int(time.time()) + ttl
    return (
        f"/api/v0/data/{datum_id}/signed-download/?expires={expires}&signature={signature(secret, datum_id, expires)}"
    )


def verify(secret: str, datum_id: str, expires: str | None, sig: str | None) -> str | None:
    """Return None when valid, else the reason (for a 403 body)."""
    if not expires or not sig:
        return "Missing expires or signature."
    try:
        expires_at = int(expires)
    except ValueError:
        return "Malformed expires."
    if not hmac.compare_digest(signature(secret, datum_id, expires_at), sig):
        return "Invalid signature."
    if expires_at < time.time():
        return "This download link has expired."
    return None
