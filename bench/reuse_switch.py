"""Wall time of switching the demo sweep from `mode: parallel` to `mode: single`, with reuse and without.

Two stacks of the demo sweep (stacks/Pulumi.local.yaml: harbor_A, harbor_B x epochs 2, 5, the real steps),
each in a project of its own on one local backend: both are brought up in parallel mode first (not timed),
then switched to single mode, one with reuse on (the default: every preprocess/train node becomes a mimic
of the finished one, only predict runs) and one with `reuse: false` (every node runs again). The two
switches are timed one after the other in the same run and printed side by side, with the executions
each made, counted on the backend.

    .venv/bin/python bench/reuse_switch.py           # demo data (image_size 64, 150 images per class)
    .venv/bin/python bench/reuse_switch.py --tiny    # tiny data, for a quick check
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import ROOT, backend, create_project, init_stack, machine, pulumi, pulumi_env

from providers.api.client import ValohaiClient

TINY = {"image_size": 16, "images_per_class": 6, "test_images_per_harbor": 4, "seed": 7}


def write_stack(work: Path, name: str, host: str, project: str, data: dict | None, **extra: object) -> None:
    demo = yaml.safe_load((ROOT / "stacks" / "Pulumi.local.yaml").read_text())["config"]
    config = {k: v for k, v in demo.items() if k.startswith("valohai-sweep:")}
    config.update({"valohai:host": host, "valohai:project": project})
    config["valohai-sweep:report_dir"] = str(work / f"report-{name}")
    if data:
        config["valohai-sweep:data"] = data
    config.update({f"valohai-sweep:{k}": v for k, v in extra.items()})
    (work / f"Pulumi.{name}.yaml").write_text(json.dumps({"config": config}, indent=2))


def executions(api: ValohaiClient, project_id: str) -> Counter:
    return Counter(e["step"] for e in api.list_executions(project_id))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny data instead of the demo's")
    args = parser.parse_args()
    data = TINY if args.tiny else None
    with tempfile.TemporaryDirectory(prefix="vpac-reuse-bench-") as tmp:
        work = Path(tmp)
        with backend(work, workers=4) as server:
            env = pulumi_env(work, server.token)
            (work / "Pulumi.yaml").write_text(
                f"name: valohai-sweep\nruntime: python\nmain: {ROOT / 'stacks'}\noptions:\n  refresh: always\n"
            )
            api = ValohaiClient(server.url, server.token)
            stacks = {"with-reuse": {}, "without-reuse": {"reuse": False}}
            projects = {}
            for name in stacks:
                projects[name] = create_project(server, f"bench-{name}")["id"]
                init_stack(work, env, name)
                write_stack(work, name, server.url, f"bench-{name}", data, mode="parallel")
                seconds, _ = pulumi(["up", "--yes", "--skip-preview", "--stack", name], work, env, timeout=3600)
                print(f"{name}: parallel sweep up in {seconds:.1f} s (not part of the comparison)", flush=True)
            rows = []
            for name, extra in stacks.items():
                before = executions(api, projects[name])
                write_stack(work, name, server.url, f"bench-{name}", data, mode="single", **extra)
                seconds, _ = pulumi(["up", "--yes", "--skip-preview", "--stack", name], work, env, timeout=3600)
                made = executions(api, projects[name]) - before
                rows.append((name, seconds, dict(sorted(made.items()))))
    print(f"\nparallel -> single, demo sweep ({'tiny' if args.tiny else 'demo'} data), {machine()}")
    print(f"{'':16}{'wall s':>8}  new executions")
    for name, seconds, made in rows:
        print(f"{name:16}{seconds:8.1f}  {made}")
    print(f"ratio with/without: {rows[0][1] / rows[1][1]:.2f}")


if __name__ == "__main__":
    main()
