"""steps/requirements.txt holds the same pins as pyproject.toml, and ensure_requirements.py is a fast
no-op where they are installed and names what is missing where they are not."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from step_runner import REPO

from steps.ensure_requirements import REQUIREMENTS, missing, pins

REQUIREMENTS_TEXT = Path(REQUIREMENTS).read_text()


def pyproject_pins() -> dict[str, str]:
    text = (REPO / "pyproject.toml").read_text()
    return {m.group(1).lower(): m.group(2) for m in re.finditer(r'"([A-Za-z0-9._-]+)==([^"]+)"', text)}


def test_requirements_pins_are_pyprojects():
    required = pins(REQUIREMENTS_TEXT)
    assert {"valohai-utils", "pillow", "numpy", "matplotlib", "requests"} <= {n.lower() for n in required}
    project = pyproject_pins()
    assert {n: v for n, v in required.items() if project.get(n.lower()) != v} == {}


def test_installed_pins_make_it_a_fast_no_op():
    assert missing(pins(REQUIREMENTS_TEXT)) == []
    times = []
    for _ in range(3):  # the best of 3: the machine may be busy with other tests
        start = time.monotonic()
        done = subprocess.run(
            [sys.executable, str(REPO / "steps" / "ensure_requirements.py")], capture_output=True, text=True
        )
        times.append(time.monotonic() - start)
    elapsed = min(times)
    print(f"\n[requirements] ensure_requirements.py with everything installed: {elapsed:.2f}s (best of 3)")
    assert done.returncode == 0 and done.stdout == "" and elapsed < 1.0


def test_missing_and_mismatched_pins_are_named():
    wanted = {"numpy": "0.0.1", "surely-not-installed-pkg": "1.0"}
    assert missing(wanted) == [
        f"numpy ({__import__('numpy').__version__}, pinned 0.0.1)",
        "surely-not-installed-pkg (not installed)",
    ]
