"""`plan-explain`: the plan of a stack, one line per changed resource saying why, for people and for CI.

Runs `pulumi preview --json` (through `toolchain.pulumi_cli.run_pulumi`) and collects the reason lines
the providers print while diffing (`providers.sweep.explain`, grammar `<name>: <op>: <reason>`), e.g.
`harbor_A/epochs-2: replace: learning_rate 0.001 -> 0.002` or `prediction: re-run: steps/predict_models.py
changed`, from the engine's diagnostics. The JSON report also lists each resource's planned operation.
It also shows the reuse the program plans (stacks/reuse.py, line shapes in `providers.sweep.reuse`): one
line per node that will be a mimic, `harbor_A/epochs-2: reuse train from pipeline #7 (same key)`, and the
summary `N nodes to run, M reused` (under `reuse` and `reuse_summary` in the JSON report).

Exit codes: 0 no changes, 1 changes planned, 2 the preview itself failed (its error is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from providers.sweep.explain import REASON_LINE
from providers.sweep.reuse import REUSE_LINE, SUMMARY_LINE
from toolchain.pulumi_cli import run_pulumi

EXIT_SAME, EXIT_CHANGES, EXIT_ERROR = 0, 1, 2
# "same"/"refresh"/"read" change nothing; a replace is listed once as "replace" (its halves are left out)
QUIET_OPS = ("same", "refresh", "read", "create-replacement", "delete-replaced", "discard-replaced")


def parse_preview(preview: dict[str, Any]) -> dict[str, Any]:
    """Planned operations (resource name -> op, changed ones only), the reason lines and the reuse lines
    (deduplicated), and the reuse summary (the last one printed; None when reuse is off)."""
    steps = {}
    for step in preview.get("steps") or []:
        name = step.get("urn", "").split("::")[-1]
        if step.get("op") not in QUIET_OPS and not name.startswith(("valohai-sweep-", "default")):
            steps[name] = step["op"]
    reasons: list[dict[str, str]] = []
    reuse: list[dict[str, str]] = []
    summary: dict[str, int] | None = None
    for diagnostic in preview.get("diagnostics") or []:
        for line in (diagnostic.get("message") or "").splitlines():
            line = line.strip()
            if (match := REASON_LINE.match(line)) and match.groupdict() not in reasons:
                reasons.append(match.groupdict())
            elif (match := REUSE_LINE.match(line)) and match.groupdict() not in reuse:
                reuse.append(match.groupdict())
            elif match := SUMMARY_LINE.match(line):
                summary = {k: int(v) for k, v in match.groupdict().items()}
    return {"steps": dict(sorted(steps.items())), "reasons": reasons, "reuse": reuse, "reuse_summary": summary}


def explain(stack: str, cwd: str) -> tuple[int, dict[str, Any], str]:
    env = {k: v for k, v in os.environ.items() if k != "PULUMI_SKIP_CONFIRMATIONS"}
    result = run_pulumi(["preview", "--json", "--stack", stack], cwd, env)
    try:
        preview = json.loads(result.stdout or "{}")
    except json.JSONDecodeError:
        preview = None
    if result.returncode != 0 or not isinstance(preview, dict):
        empty: dict[str, Any] = {"steps": {}, "reasons": [], "reuse": [], "reuse_summary": None}
        return EXIT_ERROR, empty, (result.stderr or result.stdout).strip()[-2000:]
    report = parse_preview(preview)
    return (EXIT_CHANGES if report["steps"] else EXIT_SAME), report, ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="plan-explain", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--cwd", default=".", help="the directory holding Pulumi.yaml")
    parser.add_argument("--json", action="store_true", help="print a JSON report instead of text")
    args = parser.parse_args(argv)
    code, report, message = explain(args.stack, args.cwd)
    try:
        show(args, code, report, message)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader stopped early (`plan-explain ... | head`): not an error of the plan. As the Python docs
        # advise (signal module, "Note on SIGPIPE"), point stdout at devnull so the exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(code)


def show(args: argparse.Namespace, code: int, report: dict, message: str) -> None:
    """The report as text, or as JSON with `--json`."""
    if args.json:
        print(json.dumps({"exit_code": code, **report, "message": message}, indent=2))
    elif code == EXIT_ERROR:
        print(f"plan-explain: the preview failed: {message}", file=sys.stderr)
    elif code == EXIT_SAME:
        print(f"no changes: stack {args.stack} matches its config and code")
    else:
        print(f"plan for stack {args.stack}: {len(report['steps'])} resource(s) change")
        for r in report["reasons"]:
            print(f"  {r['name']}: {r['op']}: {r['reason']}")
        explained = {r["name"] for r in report["reasons"]}
        for name, op in report["steps"].items():
            if op in ("create", "delete") and name not in explained:
                print(f"  ({name}: {op})")
        for r in report["reuse"]:
            print(f"  {r['name']}: reuse {r['node']} from {r['source']} (same key)")
        if report["reuse_summary"]:
            print(f"  {report['reuse_summary']['to_run']} nodes to run, {report['reuse_summary']['reused']} reused")


if __name__ == "__main__":
    main()
