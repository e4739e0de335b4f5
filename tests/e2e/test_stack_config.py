"""Stack configs a careless user or an attacker writes, through the real `pulumi preview` against the real
local backend: each stops preview with one line naming the key and the fix, no Python traceback, no
credential echoed, nothing created. And the secrets policy: a token stored as a secret under the
repository's default passphrase is refused; re-encrypted under a passphrase of one's own, it works.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

import pytest
import yaml

from providers.api.client import ValohaiClient
from toolchain import pulumi_cli
from toolchain.environment import DEFAULT_PASSPHRASE

PASSWORD = "hunter2-" + uuid.uuid4().hex[:6]


def nothing_created(api: ValohaiClient, project_id: str) -> None:
    assert api.list_pipelines(project_id) == []
    assert api.list_executions(project_id) == []
    commits = api.get(f"projects/{project_id}/commits/")
    assert (commits.get("results", commits) if isinstance(commits, dict) else commits) == []


def edit_config(stack: Any, change: dict[str, Any]) -> None:
    """Write raw values into the stack file, as a hand edit would (keys without `:` are the project's)."""
    path = stack.dir / f"Pulumi.{stack.name}.yaml"
    settings = yaml.safe_load(path.read_text())
    for key, value in change.items():
        settings["config"][key if ":" in key else f"valohai-sweep:{key}"] = value
    path.write_text(yaml.safe_dump(settings))


def preview_fails(stack: Any) -> str:
    result = stack.run(["preview"], check=None)
    shown = result.stdout + result.stderr
    assert result.returncode != 0, shown[-3000:]
    assert "Traceback" not in shown, f"a Python traceback reached the user:\n{shown[-3000:]}"
    nothing_created(stack.api, stack.project_id)
    assert '"urn"' not in stack.run(["stack", "export"]).stdout, "preview registered resources in the state"
    return shown


def error_line(shown: str, phrase: str) -> str:
    """The one output line holding `phrase` (the error is one line, whatever pulumi prints around it)."""
    lines = [line for line in shown.splitlines() if phrase in line]
    assert lines, f"expected {phrase!r} in:\n{shown[-3000:]}"
    return lines[0]


# id, raw config change, the phrase the one error line holds
SHAPE_CASES = [
    ("training-as-list", {"training": [0.01, 16]}, "invalid stack config: training must be a mapping such as {"),
    ("data-as-list", {"data": [{"image_size": 16}]}, "invalid stack config: data must be a mapping such as {"),
    ("harbors-as-mapping", {"harbors": {"hA": 1}}, "invalid stack config: harbors must be a list such as"),
    ("epochs-as-lists", {"epochs": [[1, 2]]}, "invalid stack config: epochs must be a flat list such as [2, 5]"),
    ("learning-rate-as-list", {"training": {"learning_rate": [0.1]}}, "training.learning_rate must be a number"),
]


@pytest.mark.parametrize("case_id,change,phrase", SHAPE_CASES, ids=[c[0] for c in SHAPE_CASES])
def test_a_wrong_shape_is_one_line_naming_the_key(make_stack, case_id, change, phrase):
    stack = make_stack()
    stack.configure(["hA"], [1])
    edit_config(stack, change)
    error_line(preview_fails(stack), phrase)


def test_a_project_that_does_not_exist_stops_preview_listing_the_visible_ones(make_stack):
    stack = make_stack()
    missing = f"no-such-project-{uuid.uuid4().hex[:6]}"
    stack.configure(["hA"], [1], **{"valohai:project": missing})
    line = error_line(
        preview_fails(stack), f"no Valohai project named or with id {missing!r} is visible with this token (visible: "
    )
    assert "create it or fix valohai:project" in line


def test_a_host_with_credentials_is_refused_and_never_echoed(make_stack, backend):
    stack = make_stack()
    port = backend.url.rsplit(":", 1)[1]
    stack.configure(["hA"], [1], **{"valohai:host": f"http://admin:{PASSWORD}@127.0.0.1:{port}"})
    shown = preview_fails(stack)
    error_line(shown, f"valohai:host must not hold credentials, got http://***@127.0.0.1:{port}")
    assert PASSWORD not in shown


def test_a_secret_token_under_the_default_passphrase_is_refused_then_fixed(make_stack, backend):
    stack = make_stack(token_in_config=True)
    stack.configure(["hA"], [1])
    # Make the stack as `. scripts/env.sh` would: secrets under the repository's default passphrase.
    stack.env["PULUMI_CONFIG_PASSPHRASE"] = DEFAULT_PASSPHRASE
    path = stack.dir / f"Pulumi.{stack.name}.yaml"
    settings = yaml.safe_load(path.read_text())
    settings.pop("encryptionsalt", None)  # made under the fixture's passphrase; the next `set` makes a new one
    path.write_text(yaml.safe_dump(settings))
    stack.run(["config", "set", "--secret", "valohai:token", backend.token])
    assert "secure" in yaml.safe_load(path.read_text())["config"]["valohai:token"]

    shown = preview_fails(stack)
    line = error_line(shown, f"valohai:token is a secret encrypted with the default passphrase `{DEFAULT_PASSPHRASE}`")
    assert "pulumi stack change-secrets-provider passphrase" in line and "export PULUMI_CONFIG_PASSPHRASE=" in line
    assert backend.token not in shown

    # The fix the message gives: re-encrypt under a passphrase of one's own (read from stdin without a
    # terminal), then use that passphrase.
    own = "own-" + uuid.uuid4().hex
    rotated = subprocess.run(
        pulumi_cli.pulumi_command(["stack", "change-secrets-provider", "passphrase"]),
        cwd=stack.dir,
        env=stack.env,
        input=own + "\n",
        text=True,
        capture_output=True,
        timeout=120,
    )
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    stack.env["PULUMI_CONFIG_PASSPHRASE"] = own
    assert stack.run(["config", "get", "valohai:token"]).stdout.strip() == backend.token
    plan = stack.preview()
    assert plan["changeSummary"]["create"] > 0, json.dumps(plan)[:2000]
    nothing_created(stack.api, stack.project_id)
