"""Bad input, table-driven: stack configs through the real `pulumi preview`, malformed API payloads through
`ValohaiClient`, and invalid valohai.yaml through `payloads.load_config`.

Each case asserts a failure that names the problem with one specific phrase, no Python traceback shown to
the user, and that nothing was created in the backend.
"""

from __future__ import annotations

import copy
import gzip
import io
import tarfile
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from support import ROOT

from providers.api.client import RetryPolicy, ValohaiClient
from providers.api.errors import ValohaiBadRequest, ValohaiError, ValohaiNotFound
from providers.sweep import payloads

TRIED: list[str] = []


def nothing_created(api: ValohaiClient, project_id: str) -> None:
    assert api.list_pipelines(project_id) == []
    assert api.list_executions(project_id) == []
    commits = api.get(f"projects/{project_id}/commits/")
    commits = commits.get("results", commits) if isinstance(commits, dict) else commits
    assert commits == []


# --- stack configs through the real `pulumi preview` -----------------------------------------------------


def _drop(key: str) -> Callable[[dict], None]:
    return lambda config: config.pop(key, None)


# id, configure(harbors, epochs, **extra), edit of the written config (or None), token in env, exact phrase
CONFIG_CASES = [
    (
        "empty-harbors",
        ([], [1]),
        {},
        None,
        True,
        "invalid stack config: harbors must list at least one value and no empty ones",
    ),
    (
        "epochs-abc",
        (["hA"], ["abc"]),
        {},
        None,
        True,
        "invalid stack config: epochs must be a whole number between 1 and 1000, got 'abc'",
    ),
    ("epochs-zero", (["hA"], [0]), {}, None, True, "invalid stack config: epochs must be between 1 and 1000, got 0"),
    (
        "duplicate-harbors",
        (["hA", "hA"], [1]),
        {},
        None,
        True,
        "invalid stack config: harbors lists hA more than once: each harbor may appear once",
    ),
    (
        "duplicate-epochs",
        (["hA"], [1, 1]),
        {},
        None,
        True,
        "invalid stack config: epochs lists 1 more than once: duplicate cells are not allowed",
    ),
    (
        "unknown-mode",
        (["hA"], [1]),
        {"mode": "serial"},
        None,
        True,
        "invalid stack config: mode must be one of parallel, single, got 'serial'",
    ),
    (
        "learning-rate-out-of-range",
        (["hA"], [1]),
        {"training": {"learning_rate": 5}},
        None,
        True,
        "invalid stack config: training.learning_rate must be between 1e-06 and 1, got 5.0",
    ),
    (
        "unknown-training-key",
        (["hA"], [1]),
        {"training": {"momentum": 0.9}},
        None,
        True,
        "invalid stack config: training has unknown key(s) momentum; allowed: batch_size, learning_rate, validation_split",
    ),
    (
        "missing-token",
        (["hA"], [1]),
        {},
        None,
        False,
        "no Valohai API token: run `pulumi config set --secret valohai:token <token>` or export VALOHAI_API_TOKEN",
    ),
    (
        "unreachable-host",
        (["hA"], [1]),
        {"valohai:host": "http://127.0.0.1:1"},
        None,
        True,
        "cannot reach the Valohai API at valohai:host=http://127.0.0.1:1",
    ),
    (
        "host-not-http",
        (["hA"], [1]),
        {"valohai:host": "ftp://127.0.0.1:8040"},
        None,
        True,
        "valohai:host must be an http(s) URL, got 'ftp://127.0.0.1:8040'",
    ),
    (
        "project-missing",
        (["hA"], [1]),
        {},
        _drop("valohai:project"),
        True,
        "valohai:project is not set: run `pulumi config set valohai:project <name or id>`",
    ),
]


@pytest.mark.parametrize("case_id,cells,extra,edit,token_in_env,phrase", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_stack_config_fails_preview_clearly_and_creates_nothing(
    make_stack, case_id, cells, extra, edit, token_in_env, phrase
):
    stack = make_stack(token_in_config=not token_in_env)
    stack.configure(*cells, **extra)
    if edit is not None:
        path = stack.dir / f"Pulumi.{stack.name}.yaml"
        settings = yaml.safe_load(path.read_text())
        edit(settings["config"])
        path.write_text(yaml.safe_dump(settings))
    result = stack.run(["preview"], check=None)
    shown = result.stdout + result.stderr
    TRIED.append(f"config:{case_id}")
    assert result.returncode != 0, shown[-3000:]
    assert phrase in shown, f"expected {phrase!r} in:\n{shown[-3000:]}"
    assert "Traceback" not in shown, f"a Python traceback reached the user:\n{shown[-3000:]}"
    nothing_created(stack.api, stack.project_id)
    state = stack.run(["stack", "export"]).stdout
    assert '"urn"' not in state, "preview registered resources in the state"


# --- malformed payloads through ValohaiClient --------------------------------------------------------------

TINY_YAML = """
- step:
    name: hello
    image: python:3.12
    command: echo hello {parameters}
    parameters:
      - name: epochs
        type: integer
        default: 1
    inputs:
      - name: data
        optional: true
"""


def tiny_package() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        data = TINY_YAML.encode()
        info = tarfile.TarInfo("valohai.yaml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


@pytest.fixture(scope="module")
def api_project(backend):
    """A client with few retries, a project holding only a tiny one-step commit, and a valid base payload
    (proved valid once, in a separate control project, so each case fails because of its one change)."""
    api = ValohaiClient(backend.url, backend.token, retry=RetryPolicy(total=2))

    def project_with_commit() -> tuple[str, str]:
        project_id = api.create_project(f"bad-input-{uuid.uuid4().hex[:8]}")["id"]
        commit = api.import_package(project_id, tiny_package())["identifier"]
        return project_id, commit

    def base_payload(project_id: str, commit: str) -> dict:
        node = lambda name: {  # noqa: E731
            "name": name,
            "type": "execution",
            "template": {
                "commit": commit,
                "step": "hello",
                "parameters": {"epochs": 2},
                "inputs": {},
            },
        }
        return {
            "project": project_id,
            "title": "bad-input-base",
            "nodes": [node("a"), node("b")],
            "edges": [
                {
                    "source_node": "a",
                    "source_type": "parameter",
                    "source_key": "epochs",
                    "target_node": "b",
                    "target_type": "parameter",
                    "target_key": "epochs",
                }
            ],
        }

    control_id, control_commit = project_with_commit()
    assert api.create_pipeline(base_payload(control_id, control_commit))["title"] == "bad-input-base"
    project_id, commit = project_with_commit()
    return api, project_id, commit, base_payload(project_id, commit)


def _set(path: str, value: Any) -> Callable[[dict], None]:
    """Set a value at a dotted path (list indexes as numbers): `nodes.0.template.step`."""

    def edit(payload: dict) -> None:
        *parents, last = path.split(".")
        target: Any = payload
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return edit


# id, edit of the valid base payload, error type, exact phrase
PIPELINE_CASES = [
    (
        "unknown-step",
        _set("nodes.0.template.step", "no-such-step"),
        ValohaiBadRequest,
        "step: Step 'no-such-step' not found in valohai.yaml of commit",
    ),
    ("missing-project", lambda p: p.pop("project"), ValohaiBadRequest, "project: This field is required."),
    (
        "unknown-project-id",
        _set("project", "00000000-0000-0000-0000-000000000000"),
        ValohaiBadRequest,
        "project: Project '00000000-0000-0000-0000-000000000000' not found.",
    ),
    (
        "edge-to-unknown-node",
        _set("edges.0.target_node", "ghost"),
        ValohaiBadRequest,
        "edges: Edge a.parameter.epochs -> ghost.parameter.epochs: unknown node 'ghost'",
    ),
    (
        "edge-from-unknown-node",
        _set("edges.0.source_node", "ghost"),
        ValohaiBadRequest,
        "edges: Edge ghost.parameter.epochs -> b.parameter.epochs: unknown node 'ghost'",
    ),
    (
        "edge-to-unknown-parameter",
        _set("edges.0.target_key", "nope"),
        ValohaiBadRequest,
        "step 'hello' has no parameter 'nope'",
    ),
    (
        "edges-form-a-cycle",
        lambda p: p["edges"].append({**p["edges"][0], "source_node": "b", "target_node": "a"}),
        ValohaiBadRequest,
        "edges: The edges form a cycle between nodes",
    ),
    (
        "invalid-parameter-type",
        _set("nodes.0.template.parameters.epochs", "abc"),
        ValohaiBadRequest,
        "parameters: epochs: abc is not an integer",
    ),
    (
        "unknown-parameter",
        _set("nodes.0.template.parameters.momentum", 0.9),
        ValohaiBadRequest,
        "Unknown parameter 'momentum' for step 'hello'",
    ),
    (
        "dotdot-node-name",
        _set("nodes.0.name", "../escape"),
        ValohaiBadRequest,
        "nodes: Invalid node name '../escape': must be a relative name without '..'",
    ),
    (
        "dotdot-input-name",
        _set("nodes.0.template.inputs", {"../data": []}),
        ValohaiBadRequest,
        "nodes: Invalid input name '../data': must be a relative name without '..'",
    ),
    (
        "absolute-node-name",
        _set("nodes.0.name", "/etc/passwd"),
        ValohaiBadRequest,
        "Invalid node name '/etc/passwd': must be a relative name",
    ),
    ("duplicate-node-names", _set("nodes.1.name", "a"), ValohaiBadRequest, "nodes: Duplicate node name 'a'"),
    ("no-nodes", _set("nodes", []), ValohaiBadRequest, "nodes: A pipeline needs a non-empty list of nodes"),
    ("unknown-commit", _set("nodes.0.template.commit", "~" + "0" * 64), ValohaiBadRequest, "not found in this project"),
    ("tags-not-a-list", _set("tags", "not-a-list"), ValohaiBadRequest, "tags: Expected a list of strings"),
    (
        "unknown-input-uri-scheme",
        _set("nodes.0.template.inputs", {"data": ["s3://bucket/x"]}),
        ValohaiBadRequest,
        "unsupported URI scheme",
    ),
    ("oversized-title-2MB", _set("title", "x" * 2_000_000), ValohaiBadRequest, "no more than 1024 characters"),
]


@pytest.mark.parametrize(
    "case_id,edit,error,phrase", PIPELINE_CASES, ids=[c[0] if isinstance(c, tuple) else c.id for c in PIPELINE_CASES]
)
def test_malformed_pipeline_payload_is_a_typed_error_and_creates_nothing(api_project, case_id, edit, error, phrase):
    api, project_id, _commit, base = api_project
    payload = copy.deepcopy(base)
    edit(payload)
    TRIED.append(f"pipeline:{case_id}")
    before = counts(api, project_id)
    with pytest.raises(ValohaiError) as caught:
        api.create_pipeline(payload)
    assert type(caught.value) is error, f"{type(caught.value).__name__}: {caught.value}"
    assert phrase in str(caught.value)
    assert caught.value.status == 400 and caught.value.path == "/api/v0/pipelines/"
    assert counts(api, project_id) == before, "a rejected payload created something"


def counts(api: ValohaiClient, project_id: str) -> tuple[int, int]:
    """(pipelines, executions) in the project; compared before and after each rejected call."""
    return len(api.list_pipelines(project_id)), len(api.list_executions(project_id))


EXECUTION_CASES = [
    ("execution-unknown-step", {"step": "no-such-step"}, ValohaiBadRequest, "step: Step 'no-such-step' not found"),
    (
        "execution-dotdot-input",
        {"inputs": {"../data": ["datum://x"]}},
        ValohaiBadRequest,
        "inputs: Invalid input name '../data': must be a relative name without '..'",
    ),
    (
        "execution-invalid-parameter",
        {"parameters": {"epochs": "many"}},
        ValohaiBadRequest,
        "parameters: epochs: many is not an integer",
    ),
    (
        "execution-unknown-datum",
        {"inputs": {"data": ["datum://0000"]}},
        ValohaiBadRequest,
        "datum://0000: datum '0000' not found in this project",
    ),
]


@pytest.mark.parametrize("case_id,change,error,phrase", EXECUTION_CASES, ids=[c[0] for c in EXECUTION_CASES])
def test_malformed_execution_payload_is_a_typed_error_and_creates_nothing(api_project, case_id, change, error, phrase):
    api, project_id, commit, _base = api_project
    TRIED.append(f"execution:{case_id}")
    before = counts(api, project_id)
    with pytest.raises(error) as caught:
        api.create_execution({"project": project_id, "commit": commit, "step": "hello", **change})
    assert phrase in str(caught.value)
    assert counts(api, project_id) == before, "a rejected payload created something"


def test_unknown_ids_are_not_found(api_project):
    api, _project_id, _commit, _base = api_project
    for call, phrase in [
        (lambda: api.get_pipeline("0" * 8), "Pipeline not found."),
        (lambda: api.get_execution("0" * 8), "Execution not found."),
        (lambda: api.resolve_project("no-such-project-anywhere"), "no Valohai project named"),
    ]:
        TRIED.append("not-found")
        with pytest.raises(ValohaiNotFound) as caught:
            call()
        assert phrase in str(caught.value)


# --- an invalid valohai.yaml (the program reads the repo's own; load_config is what parses it) -----------

REAL_YAML = (ROOT / "valohai.yaml").read_text()


def _yaml_without_step(name: str) -> str:
    doc = yaml.safe_load(REAL_YAML)
    return yaml.safe_dump([item for item in doc if not ("step" in item and item["step"]["name"] == name)])


def _yaml_without_pipeline() -> str:
    return yaml.safe_dump([item for item in yaml.safe_load(REAL_YAML) if "pipeline" not in item])


YAML_CASES = [
    ("not-yaml", "- step: [unclosed\n  name: x", "valohai.yaml is invalid:"),
    ("not-a-list", "just a string", "valohai.yaml is invalid:"),
    ("step-without-name", "- step:\n    image: python:3.12\n    command: echo", "valohai.yaml is invalid:"),
    ("missing-train-step", _yaml_without_step("train"), "valohai.yaml has no step 'train'"),
    ("missing-training-pipeline", _yaml_without_pipeline(), "valohai.yaml has no pipeline 'training-pipeline'"),
]


@pytest.mark.parametrize("case_id,text,phrase", YAML_CASES, ids=[c[0] for c in YAML_CASES])
def test_invalid_valohai_yaml_is_one_payload_error(case_id, text, phrase):
    TRIED.append(f"yaml:{case_id}")
    with pytest.raises(payloads.PayloadError) as caught:
        payloads.load_config(text)
    assert phrase in str(caught.value)
    assert "Traceback" not in str(caught.value)


def test_zz_bad_input_summary():
    """Last in the module: the figure for the closing note."""
    print(
        f"\n[bad input] cases tried: {len(TRIED)} "
        f"(config {sum(t.startswith('config:') for t in TRIED)}, pipeline {sum(t.startswith('pipeline:') for t in TRIED)}, "
        f"execution {sum(t.startswith('execution:') for t in TRIED)}, not-found {TRIED.count('not-found')}, "
        f"yaml {sum(t.startswith('yaml:') for t in TRIED)})"
    )
