"""Ad-hoc commits: a tarball of the project directory, identified by `~` + its sha256 (like Valohai)."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
import uuid
from pathlib import Path, PurePosixPath

import valohai_yaml
from valohai_yaml.objs import Config

from .. import db
from ..db import Row, Store, now_iso
from ..errors import bad_request
from ..settings import Settings

_config_cache: dict[tuple[str, str], Config] = {}
_cache_lock = threading.Lock()


def _check_member_names(tar: tarfile.TarFile) -> None:
    """Refuse packages whose members would escape the repository directory."""
    for member in tar.getmembers():
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts:
            raise bad_request("data", f"Unsafe path in package: {member.name!r} (absolute or containing '..')")
        if member.issym() or member.islnk():
            target = PurePosixPath(member.linkname)
            if target.is_absolute() or ".." in target.parts:
                raise bad_request("data", f"Unsafe link in package: {member.name!r} -> {member.linkname!r}")
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise bad_request("data", f"Unsupported member type in package: {member.name!r}")


def parse_config(yaml_text: str) -> Config:
    """Parse and validate valohai.yaml; errors become a 400 naming the problem."""
    try:
        return valohai_yaml.parse(yaml_text, validate=True)
    except valohai_yaml.ValidationErrors as exc:
        messages = [getattr(e, "message", str(e)) for e in exc.errors]
        raise bad_request("data", "valohai.yaml is invalid: " + "; ".join(messages)) from exc
    except Exception as exc:  # YAML syntax errors and the like
        raise bad_request("data", f"valohai.yaml could not be parsed: {exc}") from exc


def import_package(
    store: Store, settings: Settings, project_id: str, data: bytes, description: str, yaml_path: str
) -> str:
    """Store the tarball and its valohai.yaml; idempotent (same bytes → same identifier)."""
    identifier = "~" + hashlib.sha256(data).hexdigest()
    if db.projects.commit(store, project_id, identifier) is not None:
        return identifier
    yaml_path = yaml_path or "valohai.yaml"
    yaml_rel = PurePosixPath(yaml_path)
    if yaml_rel.is_absolute() or ".." in yaml_rel.parts:
        raise bad_request("yaml_path", f"yaml_path must be a relative path inside the package: {yaml_path!r}")
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            _check_member_names(tar)
            member = None
            for candidate in (yaml_path, f"./{yaml_path}"):
                try:
                    member = tar.getmember(candidate)
                    break
                except KeyError:
                    continue
            if member is None or not member.isfile():
                raise bad_request("data", f"The package has no {yaml_path}")
            fh = tar.extractfile(member)
            assert fh is not None
            yaml_text = fh.read().decode("utf-8")
    except tarfile.TarError as exc:
        raise bad_request("data", f"The package is not a readable tar(.gz) archive: {exc}") from exc
    parse_config(yaml_text)
    settings.commits_dir.mkdir(parents=True, exist_ok=True)
    tar_path = settings.commits_dir / f"{identifier[1:]}.tgz"
    if not tar_path.exists():
        tmp = tar_path.with_name(f"{tar_path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        tmp.replace(tar_path)
    with store.write() as tx:
        db.projects.insert_commit(
            tx, project_id, identifier, description, yaml_path, yaml_text, str(tar_path), now_iso()
        )
    return identifier


def resolve_commit(store: db.Db, project_id: str, identifier: str | None, field: str = "commit") -> Row:
    """Find a commit by exact identifier, by unique prefix, or the newest one when none is given."""
    if not identifier:
        row = db.projects.newest_commit(store, project_id)
        if row is None:
            raise bad_request(field, "The project has no commits; import a package first")
        return row
    row = db.projects.commit(store, project_id, identifier)
    if row is None:
        rows = db.projects.commits_with_prefix(store, project_id, identifier)
        if len(rows) == 1:
            return rows[0]
        raise bad_request(field, f"Commit {identifier!r} not found in this project")
    return row


def commit_config(row: Row) -> Config:
    """The commit's parsed valohai.yaml, parsed once per process (commits never change)."""
    key = (row["project_id"], row["identifier"])
    with _cache_lock:
        cached = _config_cache.get(key)
    if cached is None:
        cached = parse_config(row["config_yaml"])
        with _cache_lock:
            _config_cache[key] = cached
    return cached


def extract_commit(row: Row, dest: Path) -> None:
    """Unpack the commit into an execution's repository directory (tar's `data` filter is a second guard)."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(row["tarball"], mode="r:*") as tar:
        tar.extractall(dest, filter="data")
