"""Input URI resolution: `datum://id`, `dataset://name/version|latest`, and this server's signed URLs.

There is no internet here, so other URLs are refused up front with a clear message rather than failing
later inside the step.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .. import db
from ..db import Row, loads
from ..errors import bad_request
from ..signing import verify

SIGNED_PATH = re.compile(r"^/api/v0/data/([0-9a-fA-F-]{36})/signed-download/?$")


def file_entry(datum: Row) -> dict[str, Any]:
    """One entry of inputs.json `files` (valohai-utils FileInfo), before the runner adds `path`."""
    name = PurePosixPath(datum["name"]).name
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


def _datum(store: db.Db, project_id: str, datum_id: str, field: str, uri: str) -> Row:
    row = db.datums.get(store, datum_id)
    if row is None or row["project_id"] != project_id or row["deleted"]:
        raise bad_request(field, f"{uri}: datum {datum_id!r} not found in this project")
    if row["purged"]:
        raise bad_request(field, f"{uri}: datum {datum_id!r} has been purged")
    return row


def dataset_files(store: db.Db, project_id: str, name: str, version: str, field: str, uri: str) -> list[Row]:
    """The datums of `dataset://name/version` (or `/latest`) in this project."""
    ds = db.datasets.by_name(store, project_id, name)
    if ds is None:
        raise bad_request(field, f"{uri}: dataset {name!r} not found in this project")
    ver = db.datasets.find_version(store, ds["id"], version)
    if ver is None:
        raise bad_request(field, f"{uri}: dataset {name!r} has no version {version!r}")
    return db.datasets.files(store, ver["id"])


def resolve_uri(store: db.Db, secret: str, project_id: str, uri: str, field: str) -> list[dict[str, Any]]:
    """Turn one input URI into file entries; raises a 400 naming the input and the URI."""
    if not isinstance(uri, str) or not uri.strip():
        raise bad_request(field, f"Input URI must be a non-empty string, got {uri!r}")
    if uri.startswith("datum://"):
        return [file_entry(_datum(store, project_id, uri[len("datum://") :].strip("/"), field, uri))]
    if uri.startswith("dataset://"):
        rest = uri[len("dataset://") :].strip("/")
        if "/" not in rest:
            raise bad_request(field, f"{uri}: expected dataset://<name>/<version> (or /latest)")
        name, version = rest.split("/", 1)
        return [file_entry(d) for d in dataset_files(store, project_id, name, version, field, uri)]
    if uri.startswith(("http://", "https://")):
        parts = urlsplit(uri)
        match = SIGNED_PATH.match(parts.path)
        if not match:
            raise bad_request(
                field,
                f"{uri}: the local backend has no internet access; only its own download URLs, "
                "datum:// and dataset:// URIs can be used as inputs",
            )
        query = parse_qs(parts.query)
        expires, signature = (next(iter(query.get(key, [])), None) for key in ("expires", "signature"))
        problem = verify(secret, match.group(1), expires, signature)
        if problem:
            raise bad_request(field, f"{uri}: {problem}")
        return [file_entry(_datum(store, project_id, match.group(1), field, uri))]
    raise bad_request(field, f"{uri}: unsupported URI scheme (use datum://, dataset:// or this server's URLs)")
