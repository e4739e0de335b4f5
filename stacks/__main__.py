"""The Pulumi program: read the sweep from stack config, declare the resources, export the results.

Kept thin on purpose: the program is `stacks/program.py`, validation lives in `providers.sweep.config`,
payloads in `providers.sweep.payloads`, behaviour in the providers (`providers/resources/`). See
README.md for the config keys.
"""

from __future__ import annotations

from pathlib import Path

from stacks.program import build_stack

build_stack(Path(__file__).resolve().parent.parent)
