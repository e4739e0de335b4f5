"""Pulumi's Python language host, as a small Python gRPC server.

Why this exists: the Pulumi CLI (`pkg/v3`) is built from the Go module proxy, but the proxy does not
serve the Go language host (`sdk/python/cmd/pulumi-language-python/v3`, an untagged module that exists
only at pseudo-versions). The engine talks to a language host over the `LanguageRuntime` gRPC protocol,
and the Python SDK ships both that protocol's stubs and the `pulumi-language-python-exec` script that
the Go host launches. This module speaks the same protocol and runs programs the same way the Go host
does (`Run` starts `pulumi-language-python-exec` in a child process with the same arguments and the
`PULUMI_CONFIG` / `PULUMI_CONFIG_SECRET_KEYS` environment), so the program, the engine and the dynamic
providers are all the real ones.

It implements what `preview`, `up`, `refresh`, `destroy` and `stack` commands need: `Handshake`,
`GetPluginInfo`, `GetRequiredPlugins`, `GetRequiredPackages`, `GetProgramDependencies`, `About`,
`InstallDependencies` (a no-op: the project's venv is managed by `make setup`) and `Run`.
Started by the `pulumi-language-python` shim that scripts/install-pulumi.sh writes:
`python -u -m toolchain.language_host [flags] [engine]`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from concurrent import futures
from pathlib import Path

import grpc
from pulumi.runtime.proto import language_pb2, language_pb2_grpc, plugin_pb2

EXEC_SCRIPT = "pulumi-language-python-exec"
# The exec script exits with this code after it printed an actionable message itself (see the Go host).
EXIT_AFTER_USER_MESSAGE = 32


def host_version() -> str:
    """Report the SDK's version: host, SDK and CLI are pinned to the same release."""
    from importlib.metadata import version

    return "v" + version("pulumi")


def find_exec_script(given: str | None = None) -> Path:
    """The exec script sits next to the host shim on PATH, exactly where the Go host looks for it."""
    if given:
        return Path(given)
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory) / EXEC_SCRIPT
        if candidate.is_file():
            return candidate
    raise SystemExit(f"missing executor {EXEC_SCRIPT}: put it on PATH next to pulumi-language-python")


def run_arguments(request: language_pb2.RunRequest, engine_address: str) -> list[str]:
    """The exec script's command line, argument for argument as the Go host builds it."""
    args: list[str] = []

    def maybe(key: str, value: str) -> None:
        if value:
            args.extend(["--" + key, value])

    maybe("monitor", request.monitor_address)
    maybe("engine", engine_address)
    maybe("project", request.project)
    maybe("root_directory", request.info.root_directory)
    maybe("stack", request.stack)
    maybe("pwd", request.pwd)
    maybe("dry_run", "true" if request.dryRun else "false")
    maybe("parallel", str(request.parallel))
    maybe("organization", request.organization)
    args.append(request.info.entry_point or ".")
    args.extend(request.args)
    return args


class PythonLanguageHost(language_pb2_grpc.LanguageRuntimeServicer):
    """Runs Pulumi Python programs in child processes, like the Go host."""

    def __init__(self, exec_script: Path, engine_address: str) -> None:
        self.exec_script = exec_script
        self.engine_address = engine_address
        self._children: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def Handshake(self, request, context):
        self.engine_address = request.engine_address or self.engine_address
        return language_pb2.LanguageHandshakeResponse()

    def GetPluginInfo(self, request, context):
        return plugin_pb2.PluginInfo(version=host_version())

    def GetRequiredPlugins(self, request, context):
        # A dynamic-provider-only program needs no plugin besides the bundled `pulumi-python` one.
        return language_pb2.GetRequiredPluginsResponse()

    def GetRequiredPackages(self, request, context):
        return language_pb2.GetRequiredPackagesResponse()

    def GetProgramDependencies(self, request, context):
        from importlib.metadata import distributions

        deps = [
            language_pb2.DependencyInfo(name=d.metadata["Name"], version=d.version)
            for d in distributions()
            if d.metadata["Name"]
        ]
        return language_pb2.GetProgramDependenciesResponse(dependencies=deps)

    def About(self, request, context):
        version = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
        return language_pb2.AboutResponse(executable=sys.executable, version=version)

    def InstallDependencies(self, request, context):
        yield language_pb2.InstallDependenciesResponse(
            stdout=b"dependencies are installed by `make setup` into the project's .venv\n"
        )

    def Run(self, request, context):
        env = dict(os.environ)
        env["PULUMI_CONFIG"] = json.dumps(dict(request.config))
        env["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(list(request.configSecretKeys))
        command = [sys.executable, "-u", str(self.exec_script), *run_arguments(request, self.engine_address)]
        cwd = request.pwd or None
        try:
            child = subprocess.Popen(command, cwd=cwd, env=env, stdout=sys.stdout, stderr=sys.stderr)
        except OSError as exc:
            return language_pb2.RunResponse(error=f"problem executing program (could not run language executor): {exc}")
        with self._lock:
            self._children.add(child)
        try:
            code = child.wait()
        finally:
            with self._lock:
                self._children.discard(child)
        sys.stdout.flush()
        sys.stderr.flush()
        if code == 0:
            return language_pb2.RunResponse()
        if code == EXIT_AFTER_USER_MESSAGE:
            return language_pb2.RunResponse(bail=True)
        return language_pb2.RunResponse(error=f"program exited with non-zero exit code: {code}")

    def Cancel(self, request, context):
        self.interrupt_children()
        from google.protobuf import empty_pb2

        return empty_pb2.Empty()

    def interrupt_children(self) -> None:
        # SIGTERM, not SIGINT: the program is only waiting on the engine by then, and SIGINT would make
        # the exec script print a KeyboardInterrupt traceback into the user's `pulumi up` output.
        with self._lock:
            for child in list(self._children):
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)


def engine_alive(address: str, timeout: float = 1.0) -> bool:
    """Can we still connect to the engine's gRPC port? (What the Go host's health check amounts to.)"""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def watch_engine(host: PythonLanguageHost, stop: threading.Event, interval: float = 1.0, misses: int = 3) -> None:
    """Exit when the engine is gone (the CLI was killed): otherwise this process and the program it runs
    would live on as orphans, since the CLI starts plugins in process groups of their own."""
    missed = 0
    while not stop.wait(interval):
        address = host.engine_address
        if not address:
            continue
        missed = 0 if engine_alive(address) else missed + 1
        if missed >= misses:
            host.interrupt_children()
            stop.set()


def parse_args(argv: list[str]) -> tuple[str | None, str, bool]:
    """Accept the Go host's flags (`-tracing`, `-use-executor`, `-version`, `-root`) and the engine address."""
    executor: str | None = None
    show_version = False
    positional: list[str] = []
    it = iter(argv)
    for arg in it:
        name, _, value = arg.lstrip("-").partition("=")
        if not arg.startswith("-"):
            positional.append(arg)
        elif name == "version":
            show_version = True
        elif name in ("use-executor", "tracing", "root", "binary", "virtualenv"):
            if not value:
                value = next(it, "")
            if name == "use-executor":
                executor = value
    return executor, (positional[0] if positional else ""), show_version


def main(argv: list[str] | None = None) -> None:
    executor, engine_address, show_version = parse_args(sys.argv[1:] if argv is None else argv)
    if show_version:
        print(host_version())
        return
    host = PythonLanguageHost(find_exec_script(executor), engine_address)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(host, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    # The engine reads the port from the first line of stdout.
    print(port, flush=True)

    stop = threading.Event()

    def on_signal(signum, frame):
        host.interrupt_children()
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    threading.Thread(target=watch_engine, args=(host, stop), daemon=True, name="engine-health").start()
    stop.wait()
    server.stop(grace=2)


if __name__ == "__main__":
    main()
