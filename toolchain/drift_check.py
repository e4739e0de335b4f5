"""`drift-check`: the CI drift gate, with a report a human can act on.

The gate is Pulumi's own: `pulumi refresh --preview-only --expect-no-changes` (exit 7 on drift; it writes
nothing). Pulumi's JSON says *that* something drifted but not *how* (a refreshed resource shows as
`refresh` whatever changed), so each resource of the stack is then classified by the providers' own
`read`, against the state: deleted outside the tool, status changed (failed/stopped), or edited.
An edit of a cosmetic field (a pipeline's title) is reported as edited too, but `pulumi up` keeps the
object (it is not part of the object's content key) and records the new value, which ends the report.

Exit codes: 0 clean, 7 drift found, 2 could not check (bad stack, backend unreachable, pulumi error).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from toolchain.pulumi_cli import run_pulumi

if TYPE_CHECKING:
    from providers.resources.base import ValohaiProvider

EXIT_CLEAN, EXIT_DRIFT, EXIT_ERROR = 0, 7, 2
DELETED, STATUS, EDITED = "deleted outside the tool", "status changed", "edited outside the tool"
TYPE_PREFIX = "pulumi-python:dynamic/valohai:"


@dataclass
class Drift:
    urn: str
    type: str
    id: str
    kind: str
    detail: str


class CheckFailed(Exception):
    """The check itself could not run (exit 2); the message says why."""


def provider_for(type_name: str) -> type[ValohaiProvider] | None:
    """The provider class that owns a resource type (the same code `pulumi refresh` runs).

    Imported here, not at the top: `drift-check --help` and a failing gate need none of them.
    """
    from providers.resources.code_package import CodePackageProvider
    from providers.resources.harbor_dataset import HarborDatasetProvider
    from providers.resources.pipelines import PipelineProvider
    from providers.resources.prediction import PredictionProvider
    from providers.resources.training_results import TrainingResultsProvider

    providers: dict[str, type[ValohaiProvider]] = {
        "CodePackage": CodePackageProvider,
        "HarborDataset": HarborDatasetProvider,
        "TrainingPipeline": PipelineProvider,
        "SweepPipeline": PipelineProvider,
        "Prediction": PredictionProvider,
        "TrainingResults": TrainingResultsProvider,
    }
    return providers.get(type_name)


def classify(type_name: str, urn: str, id_: str, outputs: dict) -> Drift | None:
    """Read one resource live and say how it differs from what the state recorded."""
    provider_class = provider_for(type_name)
    if provider_class is None:
        return None
    provider = provider_class()
    from providers.resources.packed import spec_view

    label = spec_view(outputs).get("label") or urn.split("::")[-1]
    with contextlib.redirect_stdout(io.StringIO()):  # read's progress lines are for the pulumi CLI only
        result = provider.read(id_, dict(outputs))
    if not result.id:
        return Drift(urn, type_name, id_, DELETED, f"{label}: {id_} no longer exists in Valohai")
    live = result.outs or {}
    problem = provider.remote_problem(live)
    if problem == "status":
        return Drift(urn, type_name, id_, STATUS, f"{label}: status {outputs.get('status')} -> {live.get('status')}")
    if problem:
        return Drift(urn, type_name, id_, EDITED, f"{label}: {problem} is {live.get(problem)!r} in Valohai")
    cosmetic = provider.cosmetic_edit(outputs, live)
    if cosmetic:
        return Drift(urn, type_name, id_, EDITED, f"{label}: {cosmetic} (cosmetic: `pulumi up` keeps it)")
    return None


def pulumi(args: list[str], cwd: str) -> subprocess.CompletedProcess[str]:
    """Run pulumi without PULUMI_SKIP_CONFIRMATIONS: it means `--yes`, which `refresh --preview-only` refuses."""
    env = {k: v for k, v in os.environ.items() if k != "PULUMI_SKIP_CONFIRMATIONS"}
    return run_pulumi(args, cwd, env)


def stack_resources(stack: str, cwd: str) -> list[dict[str, Any]]:
    """The stack's Valohai resources as the state records them (`pulumi stack export`)."""
    exported = pulumi(["stack", "export", "--stack", stack], cwd)
    if exported.returncode != 0:
        raise CheckFailed(exported.stderr.strip())
    resources = json.loads(exported.stdout).get("deployment", {}).get("resources", []) or []
    return [r for r in resources if r.get("type", "").startswith(TYPE_PREFIX) and r.get("id")]


def classify_all(resources: list[dict[str, Any]], drifts: list[Drift]) -> None:
    """Append each resource's drift to `drifts`; a resource that cannot be read fails the check."""
    for resource in resources:
        try:
            drift = classify(
                resource["type"][len(TYPE_PREFIX) :], resource["urn"], resource["id"], resource.get("outputs", {})
            )
        except Exception as exc:  # whatever the read raised is reported: the gate never crashes
            raise CheckFailed(f"could not read {resource['urn']}: {exc}") from exc
        if drift:
            drifts.append(drift)


def check(stack: str, cwd: str) -> tuple[int, list[Drift], str]:
    """Run the gate, then classify: (exit code, drifts found, message)."""
    gate = pulumi(["refresh", "--preview-only", "--expect-no-changes", "--json", "--stack", stack], cwd)
    if gate.returncode not in (EXIT_CLEAN, EXIT_DRIFT):
        return EXIT_ERROR, [], (gate.stderr or gate.stdout).strip()[-2000:]
    drifts: list[Drift] = []
    try:
        resources = stack_resources(stack, cwd)
        _load_token(stack, cwd)
        classify_all(resources, drifts)
    except CheckFailed as failed:
        return EXIT_ERROR, drifts, str(failed)
    if gate.returncode == EXIT_DRIFT and not drifts:
        summary = json.loads(gate.stdout or "{}").get("changeSummary", {})
        return EXIT_DRIFT, drifts, f"pulumi reports drift {summary} that no Valohai resource explains"
    return (EXIT_DRIFT if drifts or gate.returncode == EXIT_DRIFT else EXIT_CLEAN), drifts, ""


def _load_token(stack: str, cwd: str) -> None:
    """The providers read the token from the stack config (secret) or VALOHAI_API_TOKEN, as in `pulumi up`."""
    from providers.api.credentials import TOKEN_CONFIG_KEY, set_token

    if os.environ.get("VALOHAI_API_TOKEN"):
        return
    got = pulumi(["config", "get", TOKEN_CONFIG_KEY, "--stack", stack], cwd)
    if got.returncode == 0 and got.stdout.strip():
        set_token(got.stdout.strip())


def print_report(stack: str, code: int, drifts: list[Drift], message: str) -> None:
    """The human report: one line when clean or failed, else one line per drifted resource."""
    if code == EXIT_CLEAN:
        print(f"no drift: stack {stack} matches Valohai")
    elif code == EXIT_ERROR:
        print(f"drift check failed: {message}", file=sys.stderr)
    else:
        print(f"DRIFT in stack {stack}: {len(drifts)} resource(s) differ from the state")
        for d in drifts:
            print(f"  - [{d.kind}] {d.detail}  ({d.type} {d.urn.split('::')[-1]})")
        if message:
            print(f"  - {message}")
        print("run `pulumi up` to converge (it re-creates only these)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="drift-check", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--cwd", default=".", help="the directory holding Pulumi.yaml")
    parser.add_argument("--json", action="store_true", help="print a JSON report instead of text")
    args = parser.parse_args(argv)
    code, drifts, message = check(args.stack, args.cwd)
    if args.json:
        print(json.dumps({"exit_code": code, "drift": [asdict(d) for d in drifts], "message": message}, indent=2))
    else:
        print_report(args.stack, code, drifts, message)
    sys.exit(code)


if __name__ == "__main__":
    main()
