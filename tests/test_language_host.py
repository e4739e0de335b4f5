"""The project's language host: the exec script's arguments, and exiting with the engine."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

from pulumi.runtime.proto import language_pb2

from toolchain.language_host import PythonLanguageHost, engine_alive, run_arguments, watch_engine


def test_run_arguments_match_the_go_host():
    request = language_pb2.RunRequest(
        monitor_address="127.0.0.1:1",
        project="p",
        stack="s",
        pwd="/w",
        dryRun=True,
        parallel=8,
        organization="org",
        args=["a"],
        info=language_pb2.ProgramInfo(root_directory="/r", entry_point="stacks"),
    )
    assert run_arguments(request, "127.0.0.1:2") == [
        "--monitor",
        "127.0.0.1:1",
        "--engine",
        "127.0.0.1:2",
        "--project",
        "p",
        "--root_directory",
        "/r",
        "--stack",
        "s",
        "--pwd",
        "/w",
        "--dry_run",
        "true",
        "--parallel",
        "8",
        "--organization",
        "org",
        "stacks",
        "a",
    ]


def test_host_and_its_program_exit_when_the_engine_goes_away(tmp_path: Path):
    engine = socket.socket()
    engine.bind(("127.0.0.1", 0))
    engine.listen()
    address = f"127.0.0.1:{engine.getsockname()[1]}"
    host = PythonLanguageHost(tmp_path / "unused-exec", address)
    program = subprocess.Popen(["sleep", "60"])
    host._children.add(program)
    stop = threading.Event()
    watcher = threading.Thread(target=watch_engine, args=(host, stop, 0.05, 3), daemon=True)
    watcher.start()

    time.sleep(0.3)
    assert engine_alive(address) and not stop.is_set()  # a live engine keeps the host up

    engine.close()  # the CLI was killed
    assert stop.wait(5), "the host did not notice that the engine is gone"
    assert program.wait(5) is not None  # and the program it ran was ended, not orphaned
