"""No-change `pulumi preview` cost: seconds and API requests, for sweeps of 10, 50 and 200 cells.

    python bench/nochange_preview.py           # N = 10 (2x5), 50 (5x10), 200 (10x20); 3 previews each
    python bench/nochange_preview.py --quick   # N = 10 only, 1 preview

For each N: a throw-away project with trivial steps (bench/_harness.py) is brought up once (train sleeps 0 s,
many backend workers; not timed as a figure), then `pulumi preview --expect-no-changes` is timed. The project
sets `options: refresh: always`, so every preview refreshes (one provider `read` per resource) before it diffs.
The providers reach the backend only through a counting reverse proxy on loopback (valohai:host points at it),
so the request count is what the providers and the program really sent.

Pulumi's own floor: a stack of the same number of `ToolchainProbe` resources (dynamic, no HTTP at all), same
CLI, same refresh option, previewed alternately with ours in the same run.

Target: at most one API request per resource, and preview time growing linearly with
a small slope.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h

SHAPES = {10: (2, 5), 50: (5, 10), 200: (10, 20)}  # cells -> (harbors, epoch values)
WORKERS = 12


def unchanged_count(stdout: str) -> int:
    match = re.search(r"(\d+) unchanged", stdout)
    return int(match.group(1)) if match else -1


def slope(points: list[tuple[int, float]]) -> float:
    """Least-squares seconds per resource."""
    if len(points) < 2:
        return float("nan")
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else float("nan")


def bring_up(
    server: h.LocalValohai, proxy: h.CountingProxy, env: dict[str, str], work: Path, n: int
) -> tuple[Path, Path, str, int]:
    """Our stack of N cells and the probe floor of as many resources, both `up` once (not a figure)."""
    harbors, epochs = SHAPES[n]
    project = f"preview-{n}"
    h.create_project(server, project)
    root = h.write_sweep_project(work / f"project-{n}", sleep=0)
    stack = f"n{n}"
    h.write_sweep_stack(
        root,
        stack,
        host=proxy.url,
        project=project,
        harbors=h.harbor_names(harbors),
        epochs=list(range(1, epochs + 1)),
    )
    h.init_stack(root, env, stack)
    up_seconds, _ = h.pulumi(["up", "--yes", "--skip-preview", "-s", stack], root, env, timeout=1200)
    up_requests = sum(proxy.snapshot().values())
    resources = n + harbors + 3  # code package, datasets, cells, results, prediction
    print(f"  N={n}: set-up `up` {up_seconds:.1f} s, {resources} resources, {up_requests} requests", flush=True)

    floor_root = h.write_probe_project(work / f"floor-{n}", stack, resources)
    h.init_stack(floor_root, env, stack)
    h.pulumi(["up", "--yes", "--skip-preview", "-s", stack], floor_root, env, timeout=600)
    return root, floor_root, stack, resources


def measure(
    proxy: h.CountingProxy, env: dict[str, str], stacks: tuple[Path, Path, str, int], n: int, repeats: int
) -> dict:
    """Preview ours and the floor alternately `repeats` times; one row of medians and request counts."""
    root, floor_root, stack, resources = stacks
    ours, floor, counts = [], [], []
    for r in range(repeats):
        proxy.reset()
        seconds, result = h.pulumi(["preview", "--expect-no-changes", "-s", stack], root, env, timeout=900)
        snap = proxy.snapshot()
        if unchanged_count(result.stdout) != resources + 1:  # + the Stack resource
            print(f"    warning: expected {resources + 1} unchanged, preview said:\n{result.stdout[-800:]}")
        f_seconds, _ = h.pulumi(["preview", "--expect-no-changes", "-s", stack], floor_root, env, timeout=900)
        ours.append(seconds)
        floor.append(f_seconds)
        counts.append(snap)
        print(
            f"    preview {r + 1}: ours {seconds:6.2f} s, floor {f_seconds:6.2f} s, {sum(snap.values())} requests",
            flush=True,
        )
    last = counts[-1]
    print(
        "    requests by endpoint (last preview): "
        + ", ".join(f"{k} x{v}" for k, v in sorted(last.items(), key=lambda kv: -kv[1])),
        flush=True,
    )
    total = h.median([sum(c.values()) for c in counts])
    # users/me: one from the program's reachability check, one from the provider's token check,
    # per run whatever the size; everything else is a refresh `read`.
    fixed = h.median([c.get("GET users/me/", 0) for c in counts])
    return {
        "n": n,
        "resources": resources,
        "ours": h.median(ours),
        "floor": h.median(floor),
        "requests": total,
        "fixed": fixed,
        "per_resource": total / resources,
        "reads_per_resource": (total - fixed) / resources,
    }


def print_summary(rows: list[dict]) -> bool:
    """The medians table, the slopes and the request target; True when the refresh reads meet it."""
    print("medians")
    print(
        f"{'cells':>5} {'resources':>9} {'ours s':>7} {'floor s':>7} {'ours-floor':>10} {'requests':>8} "
        f"{'req/resource':>12} {'reads/resource':>14}"
    )
    for row in rows:
        print(
            f"{row['n']:>5} {row['resources']:>9} {row['ours']:7.2f} {row['floor']:7.2f} "
            f"{row['ours'] - row['floor']:10.2f} {row['requests']:8.0f} {row['per_resource']:12.2f} "
            f"{row['reads_per_resource']:14.2f}"
        )
    ours_slope = slope([(r["resources"], r["ours"]) for r in rows])
    floor_slope = slope([(r["resources"], r["floor"]) for r in rows])
    extra_slope = slope([(r["resources"], r["ours"] - r["floor"]) for r in rows])
    if len(rows) > 1:
        print(
            f"\nslope (least squares): ours {ours_slope * 1000:.1f} ms/resource, floor {floor_slope * 1000:.1f} "
            f"ms/resource, ours above floor {extra_slope * 1000:.1f} ms/resource"
        )
    requests_ok = all(r["reads_per_resource"] <= 1.0 for r in rows)
    strict_ok = all(r["per_resource"] <= 1.0 for r in rows)
    print(
        f"target <= 1 request per resource: refresh reads {'MET' if requests_ok else 'MISSED'} "
        f"(max {max(r['reads_per_resource'] for r in rows):.2f}/resource); counting the "
        f"{max(r['fixed'] for r in rows):.0f} fixed users/me calls per run too: "
        f"{'MET' if strict_ok else 'MISSED'} (max {max(r['per_resource'] for r in rows):.2f}/resource)"
    )
    return requests_ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 10 only, 1 preview (a smoke run)")
    parser.add_argument("--cells", type=int, nargs="+", choices=sorted(SHAPES), help="sweep sizes (default 10 50 200)")
    parser.add_argument("--repeats", type=int, help="previews per size (default 3, quick 1)")
    args = parser.parse_args()
    sizes = args.cells or ([10] if args.quick else [10, 50, 200])
    repeats = args.repeats or (1 if args.quick else 3)

    print(f"nochange_preview: sizes {sizes}, {repeats} preview(s) each, refresh: always")
    print(f"machine: {h.machine()}\n")
    work = h.temp_dir("vpac-bench-preview-")
    rows = []
    with h.backend(work / "backend", workers=WORKERS) as server:
        proxy = h.CountingProxy(server.url).start()
        env = h.pulumi_env(work, server.token)
        try:
            for n in sizes:
                stacks = bring_up(server, proxy, env, work, n)
                rows.append(measure(proxy, env, stacks, n, repeats))
                print()
        finally:
            proxy.stop()

    requests_ok = print_summary(rows)
    print(f"work dir (state, backend data, logs): {work}")
    return 0 if requests_ok else 1


if __name__ == "__main__":
    sys.exit(main())
