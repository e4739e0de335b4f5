"""The code package is reproducible, so its commit identifier is known before upload."""

import hashlib
import io
import tarfile
from pathlib import Path

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
