"""The Pulumi program: read the sweep from stack config, declare the resources, export the results.

Kept thin on purpose: validation lives in `providers.sweep`, payloads in `providers.payloads`, behaviour in
the providers. See README.md for the config keys.
"""

from __future__ import annotations

from pathlib import Path

import pulumi

from providers.stack_program import build_stack

build_stack(Path(__file__).resolve().parent.parent)
