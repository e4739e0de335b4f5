"""`CodePackage`: the steps and valohai.yaml, uploaded once per content as an ad-hoc commit.

What goes in: `package_files` (caches, swap and OS files left out; a `.vhignore` honoured).

The tarball is built deterministically (sorted names, zeroed times and owners), so its identifier
(`~` + sha256, as valohai-cli computes it) is known in the program before anything is uploaded:
preview can show exact payloads and cell keys, and an unchanged tree never uploads again.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import io
import tarfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

import pathspec
import pulumi
from pulumi.dynamic import CreateResult, ReadResult, Resource

from providers.api.credentials import client
from providers.api.errors import ValohaiNotFound
from providers.resources.adoption import create_once
from providers.resources.base import ValohaiProvider, input_view, progress

PACKAGE_ROOTS = ("valohai.yaml", "steps")
IGNORE_FILE = ".vhignore"
# Never packaged, whatever the ignore file says: caches, editor swap and backup files, OS litter, and every
# dot-file or dot-folder (`.DS_Store`, `.ipynb_checkpoints`, `.valohai`, `.a.py.swp`, `.git`), as
# valohai-cli's own file walk skips them (valohai_cli/packager.py, `_get_files_walk`).
SKIPPED_DIRS = frozenset({"__pycache__", ".ipynb_checkpoints", ".valohai", ".mypy_cache", ".pytest_cache"})
SKIPPED_FILES = ("*.pyc", "*.pyo", "*.swp", "*.swo", "*~", "#*#", ".DS_Store", "Thumbs.db", "desktop.ini")


def ignore_rules(root: Path) -> pathspec.GitIgnoreSpec | None:
    """The project's `.vhignore` (at `root`, next to valohai.yaml), or None when there is none.

    Same file and semantics as valohai-cli (valohai_cli/packager.py, `_get_files`: a `.vhignore` in the
    project directory, gitignore patterns, matched against paths relative to that directory), parsed
    with `pathspec`'s gitignore implementation: `*.log` anywhere, `/steps/x.py` from the root only,
    `data/` a folder anywhere, `!keep.log` re-includes, `#` comments, `**` any depth.
    """
    path = root / IGNORE_FILE
    if not path.is_file():
        return None
    return pathspec.GitIgnoreSpec.from_lines(path.read_text(encoding="utf-8", errors="replace").splitlines())


def is_skipped(relative: PurePosixPath) -> bool:
    """Whether a path (relative to the project root) is a cache, swap, backup, OS or hidden file."""
    if any(part in SKIPPED_DIRS or part.startswith(".") for part in relative.parts):
        return True
    return any(fnmatch.fnmatchcase(relative.name, pattern) for pattern in SKIPPED_FILES)


def package_files(root: Path) -> list[Path]:
    """What the package holds, sorted by path: valohai.yaml and the files under steps/, minus what
    `is_skipped` names and what the project's `.vhignore` (see `ignore_rules`) excludes."""
    if not (root / "valohai.yaml").is_file():
        raise FileNotFoundError(f"no valohai.yaml in {root}")
    rules = ignore_rules(root)
    if rules is not None and rules.match_file("valohai.yaml"):
        raise FileNotFoundError(f"{root / IGNORE_FILE} excludes valohai.yaml, which every package must hold")
    files: list[Path] = []
    for entry in PACKAGE_ROOTS:
        path = root / entry
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += [p for p in path.rglob("*") if p.is_file()]
    kept = []
    for path in files:
        relative = PurePosixPath(path.relative_to(root).as_posix())
        if not is_skipped(relative) and not (rules is not None and rules.match_file(relative.as_posix())):
            kept.append(path)
    return sorted(kept, key=lambda p: p.relative_to(root).as_posix())


def build_package(root: Path, files: Iterable[Path] | None = None) -> bytes:
    """A byte-for-byte reproducible .tgz of the package files."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in files if files is not None else package_files(root):
            data = path.read_bytes()
            info = tarfile.TarInfo(path.relative_to(root).as_posix())
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=6, mtime=0)


def commit_identifier(tarball: bytes) -> str:
    """The ad-hoc commit's name, as valohai-cli computes it: `~` + sha256 of the tarball."""
    return "~" + hashlib.sha256(tarball).hexdigest()


def files_hash(root: Path, names: Iterable[str]) -> str:
    """Hash of selected files (e.g. the data generator), to know when their outputs must be remade."""
    digest = hashlib.sha256()
    for name in sorted(names):
        path = root / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"<missing>") + b"\0")
    return digest.hexdigest()


class CodePackageProvider(ValohaiProvider):
    replace_keys = ("host", "project", "commit")
    INPUTS = ("host", "project", "root", "commit")

    def label(self, props, id_):
        return "code"

    def check_inputs(self, news):
        problems = []
        if not news.get("project"):
            problems.append(
                ("project", "valohai:project is not set: run `pulumi config set valohai:project <name or id>`")
            )
        return problems

    def create(self, props: dict) -> CreateResult:
        api = client(props["host"])
        project = api.resolve_project(props["project"])
        tarball = build_package(Path(props["root"]))
        commit = commit_identifier(tarball)
        if commit != props["commit"]:
            raise RuntimeError(
                f"the files under {props['root']} changed between preview and update "
                f"({props['commit'][:13]} -> {commit[:13]}); run `pulumi up` again"
            )
        found, existed = create_once(
            lambda: api.import_package(project["id"], tarball, description="valohai-pipelines-as-code package"),
            lambda: api.find_commit(project["id"], commit),
            what=f"code package {commit[:13]}",
        )
        if not existed:
            progress(f"uploaded code package {commit[:13]} ({len(tarball)} bytes) to project {project['name']}")
        if found.get("identifier") != commit:
            raise RuntimeError(f"the server named the package {found.get('identifier')!r}, expected {commit!r}")
        return CreateResult(
            commit,
            {
                **input_view(props, self.INPUTS),
                "project_id": project["id"],
                "project_name": project["name"],
                "size": len(tarball),
            },
        )

    def read(self, id_: str, props: dict) -> ReadResult:
        try:
            found = client(props["host"]).find_commit(props["project_id"], id_)
        except ValohaiNotFound:
            found = None
        if found is None:
            return ReadResult("", {})
        return ReadResult(id_, props, inputs=input_view(props, self.INPUTS))

    def delete(self, id_: str, props: dict) -> None:
        """Commits are immutable and shared by content; nothing to remove."""


class CodePackage(Resource, module="valohai", name="CodePackage"):
    project_id: pulumi.Output[str]
    commit: pulumi.Output[str]

    def __init__(
        self, name: str, *, host: Any, project: Any, root: str, commit: str, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(
            CodePackageProvider(),
            name,
            {
                "host": host,
                "project": project,
                "root": root,
                "commit": commit,
                "project_id": None,
                "project_name": None,
                "size": None,
            },
            opts,
        )
