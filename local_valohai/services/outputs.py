"""Turning an execution's `outputs/` into datums, applying sidecar metadata and dataset versions.

Blobs are stored content-addressed (sha256) so identical outputs cost disk once. Sidecars follow
valohai-utils: `<file>.metadata.json` next to the file, or lines of `valohai.metadata.jsonl` in the outputs
root; `valohai.dataset-versions` adds the datum to `dataset://name/version`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import db
from ..db import Row, Store, Transaction, dumps, new_id, now_iso
from ..errors import ApiError, flatten
from ..validation import dataset_part

JSONL_NAME = "valohai.metadata.jsonl"
SIDECAR_SUFFIX = ".metadata.json"


@dataclass
class CollectedOutputs:
    datums: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _hash_file(path: Path) -> tuple[str, str, str, int]:
    sha256, md5, sha1 = hashlib.sha256(), hashlib.md5(), hashlib.sha1()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            sha256.update(chunk)
            md5.update(chunk)
            sha1.update(chunk)
            size += len(chunk)
    return sha256.hexdigest(), md5.hexdigest(), sha1.hexdigest(), size


def blob_path(store_dir: Path, sha256: str) -> Path:
    return store_dir / sha256[:2] / sha256


def _store_blob(store_dir: Path, path: Path, sha256: str) -> None:
    target = blob_path(store_dir, sha256)
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{uuid.uuid4().hex}.tmp")  # unique: identical outputs may race
    try:
        os.replace(path, tmp)
    except OSError:
        shutil.copyfile(path, tmp)
    os.chmod(tmp, 0o600)  # the step chose the mode; the store is owner-only
    os.replace(tmp, target)


def _read_metadata(outputs_dir: Path, warnings: list[str]) -> dict[str, dict[str, Any]]:
    """Relative path → merged metadata dict, from sidecars and the jsonl file."""
    result: dict[str, dict[str, Any]] = {}
    jsonl = outputs_dir / JSONL_NAME
    if jsonl.is_file():
        for lineno, line in enumerate(jsonl.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                result.setdefault(str(entry["file"]), {}).update(dict(entry.get("metadata") or {}))
            except (ValueError, KeyError, TypeError) as exc:
                warnings.append(f"{JSONL_NAME} line {lineno} ignored: {exc}")
    for sidecar in sorted(outputs_dir.rglob("*" + SIDECAR_SUFFIX)):
        rel = sidecar.relative_to(outputs_dir).as_posix()[: -len(SIDECAR_SUFFIX)]
        if not (outputs_dir / rel).is_file():
            continue
        try:
            data = json.loads(sidecar.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            result.setdefault(rel, {}).update(data)
        except ValueError as exc:
            warnings.append(f"{sidecar.name} ignored: {exc}")
    return result


def _stored_files(store_dir: Path, outputs_dir: Path) -> list[tuple[str, str, str, str, int]]:
    """Move each output file (not the sidecars) into the blob store: (relative name, sha256, md5, sha1, size)."""
    all_files = sorted(p for p in outputs_dir.rglob("*") if p.is_file() and not p.is_symlink())
    rels = {p.relative_to(outputs_dir).as_posix() for p in all_files}
    files = []
    for path in all_files:
        rel = path.relative_to(outputs_dir).as_posix()
        if rel == JSONL_NAME or (rel.endswith(SIDECAR_SUFFIX) and rel[: -len(SIDECAR_SUFFIX)] in rels):
            continue
        sha256, md5, sha1, size = _hash_file(path)
        _store_blob(store_dir, path, sha256)
        files.append((rel, sha256, md5, sha1, size))
    return files


@dataclass
class _VersionPlan:
    """The datums one execution adds to `dataset://name/version`, and the version it starts `from`."""

    datums: list[str] = field(default_factory=list)
    start_from: str | None = None
    exclude: set[str] = field(default_factory=set)


def collect_outputs(store: Store, store_dir: Path, execution: Row, outputs_dir: Path) -> CollectedOutputs:
    """Store every output file as a datum and create dataset versions, all in one transaction."""
    collected = CollectedOutputs()
    if not outputs_dir.is_dir():
        return collected
    metadata = _read_metadata(outputs_dir, collected.warnings)
    files = _stored_files(store_dir, outputs_dir)
    if not files:  # nothing to write: no transaction
        return collected
    now = now_iso()
    versions: dict[tuple[str, str], _VersionPlan] = {}
    with store.write() as tx:
        for rel, sha256, md5, sha1, size in files:
            meta = metadata.get(rel, {})
            tags = meta.get("valohai.tags") or []
            datum_id = new_id()
            db.datums.insert(
                tx,
                {
                    "id": datum_id,
                    "project_id": execution["project_id"],
                    "name": rel,
                    "size": size,
                    "sha256": sha256,
                    "md5": md5,
                    "sha1": sha1,
                    "ctime": now,
                    "output_execution_id": execution["id"],
                    "metadata": dumps([meta] if meta else []),
                    "tags": dumps(tags if isinstance(tags, list) else [tags]),
                },
            )
            collected.datums.append({"id": datum_id, "name": rel})
            _plan_versions(rel, datum_id, meta, versions, collected.warnings)
        for (name, version), plan in versions.items():
            _create_dataset_version(tx, execution, name, version, plan, now, collected.warnings)
    return collected


def _plan_versions(
    rel: str, datum_id: str, meta: dict[str, Any], versions: dict[tuple[str, str], _VersionPlan], warnings: list[str]
) -> None:
    """Read the datum's `valohai.dataset-versions` (URIs, or objects with `uri`, `from`, `exclude`)."""
    for target in meta.get("valohai.dataset-versions") or []:
        spec = target if isinstance(target, dict) else {"uri": target}
        uri = str(spec.get("uri", ""))
        if not uri.startswith("dataset://") or uri.count("/") < 3:
            warnings.append(f"{rel}: ignored dataset version {uri!r} (expected dataset://name/version)")
            continue
        name, version = uri[len("dataset://") :].split("/", 1)
        try:
            dataset_part(name, "dataset name", "dataset")
            dataset_part(version, "dataset version name", "dataset")
        except ApiError as exc:
            warnings.append(f"{rel}: ignored dataset version: {flatten(exc.body)}")
            continue
        plan = versions.setdefault((name, version), _VersionPlan())
        plan.datums.append(datum_id)
        if spec.get("from"):
            plan.start_from = str(spec["from"])
        plan.exclude.update(spec.get("exclude") or [])


def _inherited(tx: Transaction, project_id: str, plan: _VersionPlan) -> list[str] | None:
    """The datums of the `from` version minus the excluded names; None when that version does not exist."""
    assert plan.start_from is not None
    old = plan.start_from[len("dataset://") :].split("/", 1) if plan.start_from.startswith("dataset://") else None
    if not old or len(old) != 2:
        return None
    old_ds = db.datasets.by_name(tx, project_id, old[0])
    old_ver = db.datasets.find_version(tx, old_ds["id"], old[1]) if old_ds else None
    if old_ver is None:
        return None
    return [
        row["id"]
        for row in db.datasets.files(tx, old_ver["id"])
        if row["name"] not in plan.exclude and os.path.basename(row["name"]) not in plan.exclude
    ]


def _create_dataset_version(
    tx: Transaction, execution: Row, name: str, version: str, plan: _VersionPlan, now: str, warnings: list[str]
) -> None:
    project_id = execution["project_id"]
    ds = db.datasets.by_name(tx, project_id, name)
    dataset_id = ds["id"] if ds else db.datasets.create(tx, project_id, name, now)
    if db.datasets.version_named(tx, dataset_id, version) is not None:
        warnings.append(f"dataset://{name}/{version} already exists; versions are immutable, not changed")
        return
    datum_ids: list[str] = []
    if plan.start_from:
        inherited = _inherited(tx, project_id, plan)
        if inherited is None:
            warnings.append(f"dataset://{name}/{version}: 'from' version {plan.start_from!r} not found")
        else:
            datum_ids.extend(inherited)
    datum_ids.extend(plan.datums)
    db.datasets.create_version(tx, dataset_id, version, datum_ids, now, execution["id"])
