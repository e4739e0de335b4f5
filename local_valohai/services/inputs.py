"""Input URI resolution: `datum://id`, `dataset://name/version|latest`, and this server's signed URLs.

There is no internet here, so other URLs are refused up front with a clear message rather than failing
later inside the step.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import bad_request
from ..signing import verify
from ..store import Store, loads

SIGNED_PATH = re.compile(r"^/api/v0/data/([0-9a-fA-F-]{36})/signed-download/?$")


def file_entry(datum, filename: str | None = None) -> dict[str, Any]:
    """One entry of inputs.json `files` (valohai-utils FileInfo), before the runner adds `path`."""
    name = filename or PurePosixPath(datum["name"]).name
    return {
        "name": name,
        "uri": f"datum://{datum['id']}",
        "size": datum["size"],
        "checksums": {"md5": datum["md5"], "sha1": datum["sha1"], "sha256": datum["sha256"]},
        "metadata": loads(datum["metadata"]) or [],
        "datum_id": datum["id"],
        "sha256": datum["sha256"],
        "relpath": datum["name"],
    }


def _datum(store: Store, project_id: str, datum_id: str, field: str, uri: str):
    row = store.one("SELECT * FROM datums WHERE id=? AND project_id=? AND deleted=0", (datum_id, project_id))
    if row is None:
        raise bad_request(field, f"{uri}: datum {datum_id!r} not found in this project")
    if row["purged"]:
        raise bad_request(field, f"{uri}: datum {datum_id!r} has been purged")
    return row


def dataset_files(store: Store, project_id: str, name: str, version: str, field: str, uri: str) -> list:
    ds = store.one("SELECT * FROM datasets WHERE project_id=? AND name=?", (project_id, name))
    if ds is None:
        raise bad_request(field, f"{uri}: dataset {name!r} not found in this project")
    if version == "latest":
        ver = store.one("SELECT * FROM dataset_versions WHERE dataset_id=? ORDER BY seq DESC LIMIT 1", (ds["id"],))
    else:
        ver = store.one("SELECT * FROM dataset_versions WHERE dataset_id=? AND name=?", (ds["id"], version))
    if ver is None:
        raise bad_request(field, f"{uri}: dataset {name!r} has no version {version!r}")
    return store.all(
        "SELECT d.* FROM dataset_version_files f JOIN datums d ON d.id=f.datum_id WHERE f.version_id=? "
        "ORDER BY f.position",
        (ver["id"],),
    )


def resolve_uri(store: Store, secret: str, project_id: str, uri: str, field: str) -> list[dict[str, Any]]:
    """Turn one input URI into file entries; raises a 400 naming the input and the URI."""
    if not isinstance(uri, str) or not uri.strip():
        raise bad_request(field, f"Input URI must be a non-empty string, got {uri!r}")
    if uri.startswith("datum://"):
        return [file_entry(_datum(store, project_id, uri[len("datum://"):].strip("/"), field, uri))]
    if uri.startswith("dataset://"):
        rest = uri[len("dataset://"):].strip("/")
        if "/" not in rest:
            raise bad_request(field, f"{uri}: expected dataset://<name>/<version> (or /latest)")
        name, version = rest.split("/", 1)
        return [file_entry(d) for d in dataset_files(store, project_id, name, version, field, uri)]
    if uri.startswith(("http://", "https://")):
        parts = urlsplit(uri)
        match = SIGNED_PATH.match(parts.path)
        if not match:
            raise bad_request(
                field, f"{uri}: the local backend has no internet access; only its own download URLs, "
                "datum:// and dataset:// URIs can be used as inputs"
            )
        query = parse_qs(parts.query)
        problem = verify(secret, match.group(1), (query.get("expires") or [None])[0],
                         (query.get("signature") or [None])[0])
        if problem:
            raise bad_request(field, f"{uri}: {problem}")
        return [file_entry(_datum(store, project_id, match.group(1), field, uri))]
    raise bad_request(field, f"{uri}: unsupported URI scheme (use datum://, dataset:// or this server's URLs)")
