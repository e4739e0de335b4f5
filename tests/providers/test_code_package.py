"""The code package is reproducible, so its commit identifier is known before upload; it leaves out
caches, swap and OS files and honours a `.vhignore`."""

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from providers.resources.base import integral_numbers
from providers.resources.code_package import build_package, commit_identifier, package_files


def make_tree(root: Path) -> None:
    (root / "steps" / "__pycache__").mkdir(parents=True)
    (root / "valohai.yaml").write_text("- step: {name: a, image: i, command: c}\n")
    (root / "steps" / "a.py").write_text("print(1)\n")
    (root / "steps" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"junk")
    (root / "README.md").write_text("not packaged")


def test_same_files_give_the_same_identifier_and_caches_are_left_out(tmp_path):
    make_tree(tmp_path)
    first = build_package(tmp_path)
    (tmp_path / "steps" / "a.py").touch()  # a new mtime must not change the package
    assert build_package(tmp_path) == first
    assert commit_identifier(first) == "~" + hashlib.sha256(first).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        names = tar.getnames()
    assert names == ["steps/a.py", "valohai.yaml"]
    assert [p.name for p in package_files(tmp_path)] == ["a.py", "valohai.yaml"]


def test_a_content_change_changes_the_identifier(tmp_path):
    make_tree(tmp_path)
    before = commit_identifier(build_package(tmp_path))
    (tmp_path / "steps" / "a.py").write_text("print(2)\n")
    assert commit_identifier(build_package(tmp_path)) != before


def test_numbers_that_crossed_protobuf_become_ints_again():
    assert integral_numbers({"epochs": 2.0, "lr": 0.5, "xs": [1.0, 2.5], "s": "3.0"}) == {
        "epochs": 2,
        "lr": 0.5,
        "xs": [1, 2.5],
        "s": "3.0",
    }


def packaged(root: Path) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(build_package(root))) as tar:
        names = tar.getnames()
    assert names == [p.relative_to(root).as_posix() for p in package_files(root)]
    return names


LITTER = [
    "steps/__pycache__/a.cpython-311.pyc",
    "steps/b.pyc",
    "steps/b.pyo",
    "steps/.a.py.swp",
    "steps/a.py.swp",
    "steps/a.py.swo",
    "steps/a.py~",
    "steps/#a.py#",
    "steps/.DS_Store",
    "steps/Thumbs.db",
    "steps/.ipynb_checkpoints/a-checkpoint.py",
    "steps/.valohai/config.yml",
    "steps/.mypy_cache/x.json",
    "steps/.hidden/tool.py",
    "steps/.env",
]


def test_caches_swap_backup_os_and_hidden_files_are_left_out(tmp_path):
    make_tree(tmp_path)
    clean = build_package(tmp_path)
    for name in LITTER:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"litter")
    assert packaged(tmp_path) == ["steps/a.py", "valohai.yaml"]
    assert build_package(tmp_path) == clean, "litter changed the package, so the commit identifier too"


def test_vhignore_patterns_are_gitignore_style(tmp_path):
    make_tree(tmp_path)
    for name in ["steps/data/big.bin", "steps/logs/run.log", "steps/keep.log", "steps/sub/notes.txt", "steps/b.py"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    (tmp_path / ".vhignore").write_text(
        "# comments and blank lines are ignored\n\n"
        "data/\n"  # a folder, at any depth
        "*.log\n"  # a name pattern, at any depth
        "!keep.log\n"  # re-included
        "/steps/b.py\n"  # anchored at the project root
        "**/notes.txt\n"
    )
    assert packaged(tmp_path) == ["steps/a.py", "steps/keep.log", "valohai.yaml"]


def test_vhignore_changes_the_identifier_only_through_what_it_leaves_out(tmp_path):
    make_tree(tmp_path)
    before = commit_identifier(build_package(tmp_path))
    (tmp_path / ".vhignore").write_text("nothing-matches-this\n")
    assert commit_identifier(build_package(tmp_path)) == before, "the ignore file itself is not packaged"
    (tmp_path / ".vhignore").write_text("a.py\n")
    assert packaged(tmp_path) == ["valohai.yaml"]


def test_a_vhignore_that_drops_valohai_yaml_is_refused(tmp_path):
    make_tree(tmp_path)
    (tmp_path / ".vhignore").write_text("*.yaml\n")
    with pytest.raises(FileNotFoundError, match=r"\.vhignore excludes valohai\.yaml"):
        package_files(tmp_path)
