"""No-change `pulumi preview` cost: seconds and API requests, for sweeps of 10 to 1,000 cells.

    python bench/nochange_preview.py                  # N = 10 (2x5), 50 (5x10), 200 (10x20); 3 previews each
    python bench/nochange_preview.py --cells 1000     # N = 1,000 (20x50): its set-up `up` alone takes minutes
    python bench/nochange_preview.py --quick          # N = 10 only, 1 preview

For each N: a throw-away project with trivial steps (bench/_harness.py) is brought up once (train sleeps 0 s,
many backend workers; not timed as a figure), then `pulumi preview --expect-no-changes` is timed. The project
sets `options: refresh: always`, so every preview refreshes (one provider `read` per resource) before it diffs.
The providers reach the backend only through a counting reverse proxy on loopback (valohai:host points at it),
so the request count is what the providers and the program really sent.

Pulumi's own floor: a stack of the same number of `ToolchainProbe` resources (dynamic, no HTTP at all), same
CLI, same refresh option, previewed alternately with ours in the same run.

Also printed: the peak RSS of the dynamic-provider process of each preview (`_harness.ProviderPeakRss`).

Targets (issue 17): at most 10 API requests per preview in all (program and providers), whatever N, and at
1,000 cells a preview of at most 1.5x the floor's time.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h

SHAPES = {10: (2, 5), 50: (5, 10), 200: (10, 20), 500: (20, 25), 1000: (20, 50)}  # cells -> (harbors, epoch values)
MAX_REQUESTS = 10  # per preview, in all
MAX_FLOOR_RATIO = 1.5  # ours / floor, at 1,000 cells
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
    up_seconds, _ = h.pulumi(["up", "--yes", "--skip-preview", "-s", stack], root, env, timeout=3600)
    up_requests = sum(proxy.snapshot().values())
    resources = n + harbors + 3  # code package, datasets, cells, results, prediction
    print(f"  N={n}: set-up `up` {up_seconds:.1f} s, {resources} resources, {up_requests} requests", flush=True)

    floor_root = h.write_probe_project(work / f"floor-{n}", stack, resources)
    h.init_stack(floor_root, env, stack)
    h.pulumi(["up", "--yes", "--skip-preview", "-s", stack], floor_root, env, timeout=1800)
    return root, floor_root, stack, resources


def measure(
    proxy: h.CountingProxy, env: dict[str, str], stacks: tuple[Path, Path, str, int], n: int, repeats: int
) -> dict:
    """Preview ours and the floor alternately `repeats` times; one row of medians and request counts."""
    root, floor_root, stack, resources = stacks
    ours, floor, counts, rss, floor_rss = [], [], [], [], []
    for r in range(repeats):
        proxy.reset()
        with h.ProviderPeakRss() as memory:
            seconds, result = h.pulumi(["preview", "--expect-no-changes", "-s", stack], root, env, timeout=1800)
        snap = proxy.snapshot()
        if unchanged_count(result.stdout) != resources + 1:  # + the Stack resource
            print(f"    warning: expected {resources + 1} unchanged, preview said:\n{result.stdout[-800:]}")
        with h.ProviderPeakRss() as floor_memory:
            f_seconds, _ = h.pulumi(["preview", "--expect-no-changes", "-s", stack], floor_root, env, timeout=1800)
        ours.append(seconds)
        floor.append(f_seconds)
        counts.append(snap)
        rss.append(memory.peak_mb)
        floor_rss.append(floor_memory.peak_mb)
        print(
            f"    preview {r + 1}: ours {seconds:6.2f} s, floor {f_seconds:6.2f} s, {sum(snap.values())} requests, "
            f"provider peak RSS ours {memory.peak_mb:.0f} MB, floor {floor_memory.peak_mb:.0f} MB",
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
        "rss": h.median(rss),
        "floor_rss": h.median(floor_rss),
    }


def print_summary(rows: list[dict]) -> bool:
    """The medians table, the slopes and the targets; True when every target is met."""
    print("medians")
    print(
        f"{'cells':>5} {'resources':>9} {'ours s':>7} {'floor s':>7} {'ours/floor':>10} {'requests':>8} "
        f"{'req/resource':>12} {'provider RSS MB':>15} {'floor RSS MB':>12}"
    )
    for row in rows:
        print(
            f"{row['n']:>5} {row['resources']:>9} {row['ours']:7.2f} {row['floor']:7.2f} "
            f"{row['ours'] / row['floor']:10.2f} {row['requests']:8.0f} {row['per_resource']:12.3f} "
            f"{row['rss']:15.0f} {row['floor_rss']:12.0f}"
        )
    if len(rows) > 1:
        ours_slope = slope([(r["resources"], r["ours"]) for r in rows])
        floor_slope = slope([(r["resources"], r["floor"]) for r in rows])
        extra_slope = slope([(r["resources"], r["ours"] - r["floor"]) for r in rows])
        print(
            f"\nslope (least squares): ours {ours_slope * 1000:.1f} ms/resource, floor {floor_slope * 1000:.1f} "
            f"ms/resource, ours above floor {extra_slope * 1000:.1f} ms/resource"
        )
    requests_ok = all(r["requests"] <= MAX_REQUESTS for r in rows)
    print(
        f"target <= {MAX_REQUESTS} requests per preview in all: {'MET' if requests_ok else 'MISSED'} "
        f"(max {max(r['requests'] for r in rows):.0f})"
    )
    largest = max(rows, key=lambda r: r["n"])
    ratio = largest["ours"] / largest["floor"]
    ratio_ok = ratio <= MAX_FLOOR_RATIO or largest["n"] < 1000
    verdict = ("MET" if ratio <= MAX_FLOOR_RATIO else "MISSED") + (
        "" if largest["n"] >= 1000 else ", below 1,000 cells"
    )
    print(f"target ours <= {MAX_FLOOR_RATIO}x floor at 1,000 cells: {verdict} ({ratio:.2f}x at N = {largest['n']})")
    return requests_ok and ratio_ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 10 only, 1 preview (a smoke run)")
    parser.add_argument(
        "--cells", type=int, nargs="+", choices=sorted(SHAPES), help="sweep sizes (default 10 50 200; 1000 on request)"
    )
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

    met = print_summary(rows)
    print(f"work dir (state, backend data, logs): {work}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
