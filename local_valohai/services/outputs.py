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

from ..store import Store, dumps, new_id, now_iso

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


def collect_outputs(store: Store, store_dir: Path, execution, outputs_dir: Path) -> CollectedOutputs:
    """Store every output file as a datum and create dataset versions, all in one transaction."""
    collected = CollectedOutputs()
    if not outputs_dir.is_dir():
        return collected
    metadata = _read_metadata(outputs_dir, collected.warnings)
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

    now = now_iso()
    project_id = execution["project_id"]
    versions: dict[tuple[str, str], dict[str, Any]] = {}
    with store.write() as tx:
        for rel, sha256, md5, sha1, size in files:
            meta = metadata.get(rel, {})
            tags = meta.get("valohai.tags") or []
            datum_id = new_id()
            tx.execute(
                "INSERT INTO datums (id, project_id, name, size, sha256, md5, sha1, ctime, output_execution_id,"
                " metadata, tags) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (datum_id, project_id, rel, size, sha256, md5, sha1, now, execution["id"],
                 dumps([meta] if meta else []), dumps(tags if isinstance(tags, list) else [tags])),
            )
            collected.datums.append({"id": datum_id, "name": rel})
            for target in meta.get("valohai.dataset-versions") or []:
                spec = target if isinstance(target, dict) else {"uri": target}
                uri = str(spec.get("uri", ""))
                if not uri.startswith("dataset://") or uri.count("/") < 3:
                    collected.warnings.append(f"{rel}: ignored dataset version {uri!r} (expected dataset://name/version)")
                    continue
                name, version = uri[len("dataset://"):].split("/", 1)
                entry = versions.setdefault((name, version), {"datums": [], "from": None, "exclude": set()})
                entry["datums"].append(datum_id)
                if spec.get("from"):
                    entry["from"] = str(spec["from"])
                entry["exclude"].update(spec.get("exclude") or [])
        for (name, version), entry in versions.items():
            _create_dataset_version(tx, project_id, execution["id"], name, version, entry, now, collected)
    return collected


def _create_dataset_version(tx, project_id, execution_id, name, version, entry, now, collected) -> None:
    ds = tx.execute("SELECT id FROM datasets WHERE project_id=? AND name=?", (project_id, name)).fetchone()
    if ds is None:
        dataset_id = new_id()
        tx.execute("INSERT INTO datasets (id, project_id, name, ctime) VALUES (?,?,?,?)", (dataset_id, project_id, name, now))
    else:
        dataset_id = ds["id"]
    if tx.execute("SELECT 1 FROM dataset_versions WHERE dataset_id=? AND name=?", (dataset_id, version)).fetchone():
        collected.warnings.append(f"dataset://{name}/{version} already exists; versions are immutable, not changed")
        return
    datum_ids: list[str] = []
    if entry["from"]:
        old = entry["from"][len("dataset://"):].split("/", 1) if entry["from"].startswith("dataset://") else None
        old_ver = None
        if old and len(old) == 2:
            old_ds = tx.execute("SELECT id FROM datasets WHERE project_id=? AND name=?", (project_id, old[0])).fetchone()
            if old_ds:
                sql = ("SELECT id FROM dataset_versions WHERE dataset_id=? ORDER BY seq DESC LIMIT 1" if old[1] == "latest"
                       else "SELECT id FROM dataset_versions WHERE dataset_id=? AND name=?")
                old_ver = tx.execute(sql, (old_ds["id"],) if old[1] == "latest" else (old_ds["id"], old[1])).fetchone()
        if old_ver is None:
            collected.warnings.append(f"dataset://{name}/{version}: 'from' version {entry['from']!r} not found")
        else:
            for row in tx.execute(
                "SELECT d.id, d.name FROM dataset_version_files f JOIN datums d ON d.id=f.datum_id "
                "WHERE f.version_id=? ORDER BY f.position", (old_ver["id"],)
            ).fetchall():
                if row["name"] not in entry["exclude"] and os.path.basename(row["name"]) not in entry["exclude"]:
                    datum_ids.append(row["id"])
    datum_ids.extend(entry["datums"])
    seq = tx.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM dataset_versions").fetchone()[0]
    version_id = new_id()
    tx.execute(
        "INSERT INTO dataset_versions (id, dataset_id, name, ctime, seq, output_execution_id) VALUES (?,?,?,?,?,?)",
        (version_id, dataset_id, version, now, seq, execution_id),
    )
    for position, datum_id in enumerate(dict.fromkeys(datum_ids)):
        tx.execute(
            "INSERT INTO dataset_version_files (version_id, datum_id, position) VALUES (?,?,?)",
            (version_id, datum_id, position),
        )
