"""`drift-check`: the CI drift gate, with a report a human can act on.

The gate is Pulumi's own: `pulumi refresh --preview-only --expect-no-changes` (exit 7 on drift; it writes
nothing). Pulumi's JSON says *that* something drifted but not *how* (a refreshed resource shows as
`refresh` whatever changed), so each resource of the stack is then classified by the providers' own
`read`, against the state: deleted outside the tool, status changed (failed/stopped), or edited.

Exit codes: 0 clean, 7 drift found, 2 could not check (bad stack, backend unreachable, pulumi error).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import Optional

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


def provider_for(type_name: str):
    """The provider class that owns a resource type (the same code `pulumi refresh` runs)."""
    from providers.code_package import CodePackageProvider
    from providers.harbor_dataset import HarborDatasetProvider
    from providers.pipelines import PipelineProvider
    from providers.prediction import PredictionProvider
    from providers.training_results import TrainingResultsProvider

    return {"CodePackage": CodePackageProvider, "HarborDataset": HarborDatasetProvider,
            "TrainingPipeline": PipelineProvider, "SweepPipeline": PipelineProvider,
            "Prediction": PredictionProvider, "TrainingResults": TrainingResultsProvider}.get(type_name)


def classify(type_name: str, urn: str, id_: str, outputs: dict) -> Optional[Drift]:
    """Read one resource live and say how it differs from what the state recorded."""
    provider_class = provider_for(type_name)
    if provider_class is None:
        return None
    provider = provider_class()
    label = outputs.get("label") or urn.split("::")[-1]
    result = provider.read(id_, dict(outputs))
    if not result.id:
        return Drift(urn, type_name, id_, DELETED, f"{label}: {id_} no longer exists in Valohai")
    live = result.outs or {}
    problem = provider.remote_problem(live)
    if problem == "status":
        return Drift(urn, type_name, id_, STATUS, f"{label}: status {outputs.get('status')} -> {live.get('status')}")
    if problem:
        return Drift(urn, type_name, id_, EDITED, f"{label}: {problem} is {live.get(problem)!r} in Valohai")
    return None


def run_pulumi(args: list[str], cwd: str) -> subprocess.CompletedProcess:
    # PULUMI_SKIP_CONFIRMATIONS means `--yes`, which `refresh --preview-only` refuses.
    env = {k: v for k, v in os.environ.items() if k != "PULUMI_SKIP_CONFIRMATIONS"}
    return subprocess.run(["pulumi", *args, "--non-interactive"], cwd=cwd, env=env, text=True, capture_output=True)


def check(stack: str, cwd: str) -> tuple[int, list[Drift], str]:
    gate = run_pulumi(["refresh", "--preview-only", "--expect-no-changes", "--json", "--stack", stack], cwd)
    if gate.returncode not in (EXIT_CLEAN, EXIT_DRIFT):
        return EXIT_ERROR, [], (gate.stderr or gate.stdout).strip()[-2000:]
    exported = run_pulumi(["stack", "export", "--stack", stack], cwd)
    if exported.returncode != 0:
        return EXIT_ERROR, [], exported.stderr.strip()
    _load_token(stack, cwd)
    drifts = []
    for resource in json.loads(exported.stdout).get("deployment", {}).get("resources", []) or []:
        if not resource.get("type", "").startswith(TYPE_PREFIX) or not resource.get("id"):
            continue
        try:
            drift = classify(resource["type"][len(TYPE_PREFIX):], resource["urn"], resource["id"],
                             resource.get("outputs", {}))
        except Exception as exc:  # noqa: BLE001 - report, do not crash the gate
            return EXIT_ERROR, drifts, f"could not read {resource['urn']}: {exc}"
        if drift:
            drifts.append(drift)
    if gate.returncode == EXIT_DRIFT and not drifts:
        summary = json.loads(gate.stdout or "{}").get("changeSummary", {})
        return EXIT_DRIFT, drifts, f"pulumi reports drift {summary} that no Valohai resource explains"
    return (EXIT_DRIFT if drifts or gate.returncode == EXIT_DRIFT else EXIT_CLEAN), drifts, ""


def _load_token(stack: str, cwd: str) -> None:
    """The providers read the token from the stack config (secret) or VALOHAI_API_TOKEN, as in `pulumi up`."""
    from providers.base import TOKEN_CONFIG_KEY, set_token

    if os.environ.get("VALOHAI_API_TOKEN"):
        return
    got = run_pulumi(["config", "get", TOKEN_CONFIG_KEY, "--stack", stack], cwd)
    if got.returncode == 0 and got.stdout.strip():
        set_token(got.stdout.strip())


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="drift-check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--cwd", default=".", help="the directory holding Pulumi.yaml")
    parser.add_argument("--json", action="store_true", help="print a JSON report instead of text")
    args = parser.parse_args(argv)
    code, drifts, message = check(args.stack, args.cwd)
    if args.json:
        print(json.dumps({"exit_code": code, "drift": [asdict(d) for d in drifts], "message": message}, indent=2))
    else:
        if code == EXIT_CLEAN:
            print(f"no drift: stack {args.stack} matches Valohai")
        elif code == EXIT_ERROR:
            print(f"drift check failed: {message}", file=sys.stderr)
        else:
            print(f"DRIFT in stack {args.stack}: {len(drifts)} resource(s) differ from the state")
            for d in drifts:
                print(f"  - [{d.kind}] {d.detail}  ({d.type} {d.urn.split('::')[-1]})")
            if message:
                print(f"  - {message}")
            print("run `pulumi up` to converge (it re-creates only these)")
    sys.exit(code)


if __name__ == "__main__":
    main()
