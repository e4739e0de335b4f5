"""Where the provider process spends its time: pyinstrument over every gRPC call of `pulumi up` and `preview`.

    .venv/bin/pip install --target /tmp/vpac-pyinstrument pyinstrument==5.1.3   # once; keeps the venv clean
    python bench/profile_providers.py [--pyinstrument-path /tmp/vpac-pyinstrument]

Runs a fresh `pulumi up` (2x2 cells, S = 5 s, trivial steps) and a no-change `pulumi preview` with
PULUMI_PYTHON_CMD pointing at a wrapper that starts the dynamic-provider server under a profiler. The server
handles calls in a thread pool, so each call (Check, Diff, Create, Read, ...) gets its own pyinstrument
Profiler; the sessions, plus the server's module imports, are combined and written as text when Pulumi stops
the process. Prints the per-process call summary and where the reports are.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h

WRAPPER = """#!/bin/sh
# PULUMI_PYTHON_CMD wrapper: profile only the dynamic-provider process (`-u -m pulumi.dynamic`).
if [ "$1" = "-u" ] && [ "$2" = "-m" ] && [ "$3" = "pulumi.dynamic" ]; then
  shift 3
  PYTHONPATH="{extra}${{PYTHONPATH:+:$PYTHONPATH}}" exec {python} -u {server} "$@"
fi
exec {python} "$@"
"""

PROFILED_SERVER = r'''"""pulumi.dynamic's provider server, with every gRPC call profiled (see bench/profile_providers.py)."""
import atexit, functools, os, signal, sys, threading, time, types
from pyinstrument import Profiler
from pyinstrument.renderers import ConsoleRenderer
from pyinstrument.session import Session

out = os.path.join(os.environ["VPAC_PROFILE_DIR"], f"provider-{os.getpid()}")
sessions, calls, lock = [], [], threading.Lock()
started = time.perf_counter()
imports = Profiler(interval=0.0005)
imports.start()
import pulumi.dynamic
# pulumi/dynamic/__main__.py ends with a bare `main()`: load it without that line, patch, then start it.
path = os.path.join(os.path.dirname(pulumi.dynamic.__file__), "__main__.py")
source = open(path).read().rstrip()
assert source.endswith("main()"), "pulumi.dynamic.__main__ changed shape"
server = types.ModuleType("pulumi_dynamic_server")
server.__file__ = path
exec(compile(source[: -len("main()")], path, "exec"), server.__dict__)
imports.stop()
sessions.append(imports.last_session)
calls.append(("(server imports)", time.perf_counter() - started))


def profiled(name, fn):
    @functools.wraps(fn)
    def call(self, request, context):
        profiler = Profiler(interval=0.0005, async_mode="disabled")
        t = time.perf_counter()
        profiler.start()
        try:
            return fn(self, request, context)
        finally:
            profiler.stop()
            with lock:
                sessions.append(profiler.last_session)
                calls.append((name, time.perf_counter() - t))
    return call


for name in ("Check", "Diff", "Create", "Read", "Update", "Delete", "Configure"):
    setattr(server.DynamicResourceProviderServicer, name, profiled(name, getattr(server.DynamicResourceProviderServicer, name)))

written = []


def write_report(*_):
    if written:
        return
    written.append(True)
    try:
        with lock:
            combined = sessions[0]
            for session in sessions[1:]:
                combined = Session.combine(combined, session)
            summary = {}
            for name, seconds in calls:
                n, total = summary.get(name, (0, 0.0))
                summary[name] = (n + 1, total + seconds)
        with open(out + ".txt", "w") as fh:
            fh.write("calls: " + ", ".join(f"{k} x{n} {t:.2f}s" for k, (n, t) in summary.items()) + "\n")
            fh.write(ConsoleRenderer(unicode=False, color=False, show_all=False, time="seconds").render(combined))
    except BaseException:
        import traceback
        open(out + ".err", "w").write(traceback.format_exc())


def on_signal(signum, frame):
    write_report()
    os._exit(0)


signal.signal(signal.SIGINT, on_signal)
signal.signal(signal.SIGTERM, on_signal)
atexit.register(write_report)
sys.argv = ["pulumi.dynamic", *sys.argv[1:]]
server.main()
'''


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pyinstrument-path",
        default=os.environ.get("PYINSTRUMENT_PATH", "/tmp/vpac-pyinstrument"),
        help="a `pip install --target` dir holding pyinstrument (default /tmp/vpac-pyinstrument)",
    )
    parser.add_argument("--sleep", type=float, default=5.0)
    args = parser.parse_args()
    extra = Path(args.pyinstrument_path)
    if not (extra / "pyinstrument").is_dir():
        try:
            import pyinstrument  # noqa: F401
        except ImportError:
            sys.exit(f"pyinstrument not found: .venv/bin/pip install --target {extra} pyinstrument==5.1.3")
    work = h.temp_dir("vpac-bench-profile-")
    (work / "server.py").write_text(PROFILED_SERVER)
    wrapper = work / "python-wrapper.sh"
    wrapper.write_text(
        WRAPPER.format(extra=extra, python=h.ROOT / ".venv" / "bin" / "python", server=work / "server.py")
    )
    wrapper.chmod(0o755)
    print(f"machine: {h.machine()}")
    with h.backend(work / "backend", workers=8) as server:
        h.create_project(server, "profile")
        root = h.write_sweep_project(work / "project", sleep=args.sleep)
        h.write_sweep_stack(
            root, "profile", host=server.url, project="profile", harbors=["harbor_A", "harbor_B"], epochs=[1, 2]
        )
        env = h.pulumi_env(work, server.token)
        env["PULUMI_PYTHON_CMD"] = str(wrapper)
        h.init_stack(root, env, "profile")
        for label, command in (("up", ["up", "--yes"]), ("preview", ["preview"])):
            out = work / label
            out.mkdir()
            env["VPAC_PROFILE_DIR"] = str(out)
            seconds, _ = h.pulumi([*command, "-s", "profile"], root, env)
            print(f"\n== pulumi {' '.join(command)}: {seconds:.2f} s (profiled, so slower than unprofiled)")
            for report in sorted(out.glob("provider-*.txt")):
                print(f"  {report}: {report.read_text().splitlines()[0]}")
            for error in sorted(out.glob("provider-*.err")):
                print(f"  profiling failed, see {error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
