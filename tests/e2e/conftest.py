"""End-to-end fixtures: the real local backend on a free port and real `pulumi` stacks in temp dirs.

Every test gets its own Valohai project, so counting pipelines and executions through the API tells
exactly what that test's `pulumi` runs created.

A stack runs the repository's own project (`stacks/`, `steps/`, `valohai.yaml`: real TensorFlow training on
tiny data) unless its module is not about learning: then it runs the stand-in project of bench/stand_in.py
(the same steps, parameters, inputs, outputs and script names; each step a few lines of Python), through
the same stack program. `test_lifecycle.py` keeps the real steps, so the ML job stays covered end to end.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import ROOT, run_pulumi

from bench.stand_in import write_stand_in_project
from local_valohai.testing import LocalValohai
from providers.api.client import ValohaiClient
from toolchain.environment import offline_env

# Tiny data: where a stack runs the real steps, the models still train for real, in a few seconds each.
TINY_DATA = {"image_size": 16, "images_per_class": 6, "test_images_per_harbor": 4, "seed": 7}


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def backend(tmp_path_factory) -> LocalValohai:
    server = LocalValohai(tmp_path_factory.mktemp("local-valohai"), workers=2, access_log=True)
    server.start()
    yield server
    server.stop()


class Stack:
    """A pulumi project in a temp dir whose program is the repo's `stacks/`, on a file backend of its own."""

    def __init__(
        self,
        workdir: Path,
        env: dict[str, str],
        backend: LocalValohai,
        project: str,
        name: str = "e2e",
        program: Path = ROOT / "stacks",
    ):
        self.dir = workdir
        self.env = env
        self.backend = backend
        self.project = project
        self.name = name
        self.api = ValohaiClient(backend.url, backend.token)
        self.project_id = self.api.create_project(project)["id"]
        (workdir / "Pulumi.yaml").write_text(
            f"name: valohai-sweep\nruntime: python\nmain: {program}\noptions:\n  refresh: always\n"
        )
        self.run(["stack", "init", name])

    def run(self, args: list[str], check: int | None = 0, timeout: float = 600) -> subprocess.CompletedProcess:
        return run_pulumi(args, self.dir, self.env, check=check, timeout=timeout)

    def configure(self, harbors: list[str], epochs: list[int], **extra: Any) -> None:
        values = {
            "valohai:host": self.backend.url,
            "valohai:project": self.project,
            "harbors": harbors,
            "epochs": epochs,
            "data": TINY_DATA,
            "report_dir": str(self.dir / "report"),
            "training": {"learning_rate": 0.005, "batch_size": 16},
            **extra,
        }
        path = self.dir / f"Pulumi.{self.name}.yaml"
        settings = yaml.safe_load(path.read_text()) if path.exists() else {}
        settings = settings or {}
        kept = {k: v for k, v in (settings.get("config") or {}).items() if k == "valohai:token"}  # secrets survive
        settings["config"] = {**kept, **{k if ":" in k else f"valohai-sweep:{k}": v for k, v in values.items()}}
        path.write_text(yaml.safe_dump(settings))

    def up(self, check: int | None = 0) -> subprocess.CompletedProcess:
        return self.run(["up", "--yes", "--skip-preview"], check=check)

    def preview(self, *extra: str, check: int | None = 0) -> dict:
        """`pulumi preview --json`: returns {op: count} and the steps."""
        result = self.run(["preview", "--json", *extra], check=check)
        return json.loads(result.stdout)

    def outputs(self) -> dict:
        return json.loads(self.run(["stack", "output", "--json"]).stdout)

    def pipelines(self, **filters: Any) -> list[dict]:
        return self.api.list_pipelines(self.project_id, **filters)

    def executions(self, **filters: Any) -> list[dict]:
        return self.api.list_executions(self.project_id, **filters)


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory) -> Path:
    """A module's own stand-in project (bench/stand_in.py); returns its Pulumi program folder."""
    return write_stand_in_project(tmp_path_factory.mktemp("stand-in")) / "program"


@pytest.fixture
def make_stack(tmp_path: Path, pulumi_env, backend):
    """Factory: `make_stack()` gives a fresh Stack with its own project; the token is in the environment.
    `program` is the Pulumi program to run: the repository's `stacks/` (real steps) or `stand_in`."""

    def make(name: str = "e2e", token_in_config: bool = False, program: Path = ROOT / "stacks") -> Stack:
        env = dict(pulumi_env)
        if token_in_config:
            env.pop("VALOHAI_API_TOKEN", None)
        else:
            env["VALOHAI_API_TOKEN"] = backend.token
        workdir = tmp_path / f"stack-{name}"
        workdir.mkdir()
        return Stack(workdir, env, backend, f"e2e-{uuid.uuid4().hex[:8]}", name, program=program)

    return make


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory) -> Path:
    """A module's own stand-in project root (bench/stand_in.py): the module's tests edit its step scripts."""
    return write_stand_in_project(tmp_path_factory.mktemp("project"))


def stack_on_copy(tmp_path_factory, backend: LocalValohai, project: Path, name: str) -> Stack:
    """A stack (own state, token in the environment) whose program is the project copy's `program/`, brought
    up with harbor hA x epochs 1, 2: the starting point the module-scoped e2e scenarios build on."""
    env = dict(offline_env(tmp_path_factory.mktemp("pulumi"), passphrase="test-passphrase"))
    env["VALOHAI_API_TOKEN"] = backend.token
    made = Stack(tmp_path_factory.mktemp("stack"), env, backend, name, "one", program=project / "program")
    made.configure(["hA"], [1, 2])
    made.up()
    return made
