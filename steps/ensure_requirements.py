"""Install the steps' pinned requirements (steps/requirements.txt) when the image lacks them.

Every step's command in valohai.yaml runs this first, so the steps start on a stock image such as
``tensorflow/tensorflow:2.21.0``, which has no valohai-utils or Pillow. When every pinned distribution
is already installed at its pinned version (the local backend's environment, or an image with them baked
in) it only reads package metadata and exits: no import of the packages themselves, no pip, well under a
second. Otherwise it runs ``pip install -r steps/requirements.txt`` once. Standard library only.
"""

from __future__ import annotations

import os
import re
import sys

# Only the fast path's modules are imported at the top (importlib.metadata alone costs ~0.1 s).
REQUIREMENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "requirements.txt")
PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)")


def pins(text: str) -> dict[str, str]:
    """`name==version` lines of a requirements file (comments and blank lines skipped)."""
    return {m.group(1): m.group(2) for line in text.splitlines() if (m := PIN.match(line))}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def installed_versions() -> dict[str, str]:
    """Normalized name -> version of the `*.dist-info` folders on sys.path: one directory listing per
    path entry, much faster than a metadata lookup per name in a large environment."""
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info") and "-" in name:
                dist, _, version = name[: -len(".dist-info")].rpartition("-")
                found.setdefault(_normal(dist), version)
    return found


def _metadata_version(name: str) -> str | None:
    """The slow way, for distributions not found as a `*.dist-info` folder (eggs, zip imports)."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def missing(required: dict[str, str]) -> list[str]:
    """The pins not satisfied here: not installed, or installed at another version."""
    wrong = []
    listed = installed_versions()
    for name, version in sorted(required.items()):
        installed = listed.get(_normal(name)) or _metadata_version(name)
        if installed is None:
            wrong.append(f"{name} (not installed)")
            continue
        if installed != version:
            wrong.append(f"{name} ({installed}, pinned {version})")
    return wrong


def main() -> int:
    try:
        with open(REQUIREMENTS) as fh:
            wrong = missing(pins(fh.read()))
    except OSError as exc:
        print(f"ensure_requirements: cannot read steps/requirements.txt ({exc.strerror}): package it", file=sys.stderr)
        return 1
    if not wrong:
        return 0
    import subprocess

    print(f"installing steps/requirements.txt: {', '.join(wrong)}", flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", REQUIREMENTS]
    )
    if done.returncode != 0:
        print(
            "ensure_requirements: pip install -r steps/requirements.txt failed; use an image with network access "
            "or with these packages installed",
            file=sys.stderr,
        )
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
