"""Fixtures every test folder shares: a private Pulumi environment per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolchain.environment import offline_env


@pytest.fixture
def pulumi_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a pulumi CLI run with its own file backend and home under tmp_path."""
    return offline_env(tmp_path, passphrase="test-passphrase")
