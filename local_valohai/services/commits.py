"""Ad-hoc commits: a tarball of the project directory, identified by `~` + its sha256 (like Valohai)."""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import tarfile
import threading
import uuid
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

import valohai_yaml
import yaml
from valohai_yaml.objs import Config

from .. import db
from ..db import Row, Store, now_iso
from ..errors import ApiError, bad_request
from ..settings import Limits, Settings
from ..validation import safe_name, text

_config_cache: dict[tuple[str, str], Config] = {}
_cache_lock = threading.Lock()


def _check_members(tar: tarfile.TarFile, limits: Limits, compressed: int) -> list[tarfile.TarInfo]:
    """Refuse packages whose members would escape the repository directory, or that unpack too big.

    Members are read one header at a time, so a package over a limit is refused at the first member past
    it, without decompressing the rest.
    """
    members: list[tarfile.TarInfo] = []
    unpacked = 0
    by_ratio = max(1024 * 1024, limits.package_ratio * compressed)
    for member in tar:
        members.append(member)
        unpacked += max(member.size, 0)
        if len(members) > limits.package_members:
            raise ApiError(
                413, {"data": [f"The package has more than {limits.package_members} members (Limits.package_members)."]}
            )
        if unpacked > limits.package_unpacked_bytes:
            raise ApiError(
                413,
                {
                    "data": [
                        f"The package unpacks to more than {limits.package_unpacked_bytes} bytes"
                        " (Limits.package_unpacked_bytes)."
                    ]
                },
            )
        if unpacked > by_ratio:
            raise ApiError(
                413,
                {
                    "data": [
                        f"The package unpacks to more than {limits.package_ratio} times its compressed size"
                        " (Limits.package_ratio); large or generated files belong in inputs, not in the code package."
                    ]
                },
            )
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts:
            raise bad_request("data", f"Unsafe path in package: {member.name!r} (absolute or containing '..')")
        if member.issym() or member.islnk():
            target = PurePosixPath(member.linkname)
            if target.is_absolute() or ".." in target.parts:
                raise bad_request("data", f"Unsafe link in package: {member.name!r} -> {member.linkname!r}")
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise bad_request("data", f"Unsupported member type in package: {member.name!r}")
    return members


def _expanded_size(node: yaml.Node, sizes: dict[int, int], cap: int) -> int:
    """How many nodes `node` stands for once every alias is expanded (shared subtrees counted each time)."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    total = 1
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    else:
        children = []
    for child in children:
        total += _expanded_size(child, sizes, cap)
        if total > cap:
            break
    sizes[id(node)] = total
    return total


MAX_FLOW_DEPTH = 200
FLOW_BRACKETS = re.compile(r"[\[\]{}]")


def _too_deep(yaml_text: str) -> bool:
    """Whether flow brackets nest deeper than MAX_FLOW_DEPTH (an upper bound: brackets in strings count too)."""
    depth = 0
    for match in FLOW_BRACKETS.finditer(yaml_text):
        depth = depth + 1 if match.group() in "[{" else max(0, depth - 1)
        if depth > MAX_FLOW_DEPTH:
            return True
    return False


def load_yaml(yaml_text: str, max_nodes: int = Limits.yaml_nodes) -> Any:
    """Parse YAML with PyYAML's safe loader, refusing documents that expand past `max_nodes` nodes.

    An alias bomb (`a: &a [x, x]`, `b: &b [*a, *a]`, ...) is a few hundred bytes that stand for billions of
    nodes; the composed graph is measured, aliases expanded, before anything is built from it. Anchors and
    aliases of ordinary size keep working. valohai-yaml's `parse()` accepts the pre-parsed data
    (valohai-yaml 0.61, valohai_yaml/utils.py `read_yaml`: "Smells already parsed"), so this replaces only
    its `yaml.safe_load`, not its rules.
    """
    if _too_deep(yaml_text):  # PyYAML's scanner is quadratic in `[[[[` nesting
        raise yaml.YAMLError(f"nested deeper than {MAX_FLOW_DEPTH} levels of [ ] or {{ }}")
    loader = yaml.SafeLoader(yaml_text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, {}, max_nodes)
        if size > max_nodes:
            raise yaml.YAMLError(
                f"it expands to more than {max_nodes} YAML nodes (aliases counted each time they are used)"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def parse_config(yaml_text: str) -> Config:
    """Parse and validate valohai.yaml; errors become a 400 naming the problem."""
    try:
        data = load_yaml(yaml_text)
    except RecursionError as exc:
        raise bad_request("data", "valohai.yaml could not be parsed: nested too deeply") from exc
    except yaml.YAMLError as exc:
        raise bad_request("data", f"valohai.yaml could not be parsed: {exc}") from exc
    if data is not None and not isinstance(data, list):
        raise bad_request("data", "valohai.yaml is invalid: expected a list of steps, pipelines and endpoints")
    try:
        config = valohai_yaml.parse(data if data is not None else [], validate=True)
    except valohai_yaml.ValidationErrors as exc:
        messages = [getattr(e, "message", str(e)) for e in exc.errors]
        raise bad_request("data", "valohai.yaml is invalid: " + "; ".join(messages)) from exc
    except Exception as exc:  # valohai-yaml's own parse errors (bad values that pass the schema)
        raise bad_request("data", f"valohai.yaml could not be parsed: {exc}") from exc
    _check_names(config)
    return config


def _check_names(config: Config) -> None:
    """Names from valohai.yaml that become paths follow the same rule as names in requests."""
    for step in config.steps.values():
        for name, inp in step.inputs.items():
            safe_name(name, f"input name in step {step.name!r} of valohai.yaml", "data")
            if inp.filename:
                safe_name(inp.filename, f"input filename in step {step.name!r} of valohai.yaml", "data")


def import_package(
    store: Store, settings: Settings, project_id: str, data: bytes, description: str, yaml_path: str
) -> str:
    """Store the tarball and its valohai.yaml; idempotent (same bytes → same identifier).

    Blocking work (decompression, YAML parsing): callers run it in the thread pool, never on the event loop.
    """
    limits = settings.limits
    if len(data) > limits.package_bytes:
        raise ApiError(
            413, {"data": [f"The package is larger than {limits.package_bytes} bytes (Limits.package_bytes)."]}
        )
    description = text(description, "description", limits.description)
    identifier = "~" + hashlib.sha256(data).hexdigest()
    if db.projects.commit(store, project_id, identifier) is not None:
        return identifier
    yaml_path = safe_name(yaml_path or "valohai.yaml", "yaml_path (a relative path inside the package)", "yaml_path")
    yaml_text = _read_yaml(data, yaml_path, limits)
    parse_config(yaml_text)
    settings.commits_dir.mkdir(parents=True, exist_ok=True)
    tar_path = settings.commits_dir / f"{identifier[1:]}.tgz"
    if not tar_path.exists():
        tmp = tar_path.with_name(f"{tar_path.name}.{uuid.uuid4().hex}.tmp")
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as fh:
            fh.write(data)
        tmp.replace(tar_path)
    with store.write() as tx:
        db.projects.insert_commit(
            tx, project_id, identifier, description, yaml_path, yaml_text, str(tar_path), now_iso()
        )
    return identifier


def _read_yaml(data: bytes, yaml_path: str, limits: Limits) -> str:
    """Check every member of the package and return its valohai.yaml as text."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            members = _check_members(tar, limits, len(data))
            # The last member of a name wins, as when the package is unpacked for an execution.
            member = next((m for m in reversed(members) if m.name in (yaml_path, f"./{yaml_path}")), None)
            if member is None or not member.isfile():
                raise bad_request("data", f"The package has no {yaml_path}")
            if member.size > limits.yaml_bytes:
                raise ApiError(
                    413, {"data": [f"{yaml_path} is larger than {limits.yaml_bytes} bytes (Limits.yaml_bytes)."]}
                )
            fh = tar.extractfile(member)
            assert fh is not None
            raw = fh.read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:  # truncated or corrupt gzip/bzip2/xz too
        raise bad_request("data", f"The package is not a readable tar(.gz) archive: {exc}") from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request("data", f"{yaml_path} is not UTF-8 text: {exc}") from exc


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


def unpacked_commit(row: Row) -> Path:
    """The commit unpacked once, next to its tarball (tar's `data` filter is a second guard); never changed.

    Two workers unpacking the same commit at once each unpack into their own directory; the first rename
    wins and the other copy is removed.
    """
    tarball = Path(row["tarball"])
    tree = tarball.with_name(tarball.name.split(".", 1)[0] + ".tree")
    if tree.is_dir():
        return tree
    tmp = tree.with_name(f"{tree.name}.{uuid.uuid4().hex}.tmp")
    try:
        with tarfile.open(tarball, mode="r:*") as tar:
            tar.extractall(tmp, filter="data")
        tmp.mkdir(exist_ok=True)  # an empty package unpacks to nothing
        os.rename(tmp, tree)
    except OSError:
        if not tree.is_dir():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tree


def extract_commit(row: Row, dest: Path) -> None:
    """Copy the commit's files into an execution's own repository directory (the step may change them).

    A copy of the unpacked tree, not a fresh unpacking of the tarball per execution: cheaper for the
    runner's threads, which share the server's cores and interpreter with the API's requests.
    """
    shutil.copytree(unpacked_commit(row), dest, symlinks=True, dirs_exist_ok=True)
