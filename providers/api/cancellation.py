"""Ending a provider's waits early: Ctrl-C on `pulumi up`, and a CLI that was killed.

Ctrl-C: on an interrupted update the engine sends every provider the `Cancel` RPC (pulumi
pkg/resource/deploy/deployment_executor.go: `ex.deployment.ctx.Host.SignalCancellation()`), but the
Python SDK's dynamic provider server answers it with a no-op (pulumi sdk/python/lib/pulumi/dynamic/
__main__.py, `DynamicResourceProviderServicer.Cancel`), and that server runs every call on a pool of 4
threads. `install()` (run once when a provider module is imported inside that server) gives the
method a body that sets `CANCELLED`, and lets the pool grow, so a `Cancel` is served even while 4
creates are waiting on remote work.

Killed CLI: the engine passes its gRPC address as the provider's last command-line argument; a thread
checks it (and the parent process) every second, the way toolchain/language_host.py watches the
engine, and sets `CANCELLED` when the CLI is gone, so an orphaned provider does not wait for hours; once
the engine has stayed gone 30 s more, the process ends (`watch_engine` says why).

Every wait (`providers.api.waiting.wait_for`) sleeps on `CANCELLED` and raises `WaitCancelled` once it
is set; the resource decides what happens to the unfinished work (`on_cancel`).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

CANCELLED = threading.Event()
_reason = {"text": ""}
_installed = threading.Lock()
_done = {"installed": False}


def request_cancel(reason: str) -> None:
    """Make every wait in this process end at its next check."""
    if not CANCELLED.is_set():
        _reason["text"] = reason
        CANCELLED.set()


def reason() -> str:
    return _reason["text"] or "cancelled"


def reset() -> None:
    """Tests only: forget a previous cancellation."""
    _reason["text"] = ""
    CANCELLED.clear()


def _cancel_rpc(self: Any, request: Any, context: Any) -> Any:
    """Replacement body of the SDK's `Cancel`. It runs with the SDK server module's globals (`sys` and
    `empty_pb2` are imported there), so it reaches this module through `sys.modules`."""
    sys.modules["providers.api.cancellation"].request_cancel("pulumi up was interrupted")
    return empty_pb2.Empty()  # type: ignore[name-defined]  # noqa: F821  (the SDK module's global)


def engine_address(argv: list[str]) -> str | None:
    """The engine's `host:port`, the last argument the engine gives a provider plugin."""
    if len(argv) < 2:
        return None
    host, _, port = argv[-1].rpartition(":")
    return argv[-1] if host and port.isdigit() else None


def engine_alive(address: str, timeout: float = 1.0) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def watch_engine(
    address: str | None,
    parent: int,
    interval: float = 1.0,
    misses: int = 2,
    exit_after: float = 30.0,
    end_process: Callable[[int], Any] = os._exit,
) -> None:
    """Set `CANCELLED` when the parent process changed (the CLI died) or the engine stopped answering; end the
    process once the engine has been gone `exit_after` seconds more. Why end it: the server itself never stops
    (the SDK's `main` waits on it), and the CLI starts the provider through a shell wrapper that outlives a
    killed CLI, so an orphaned provider would otherwise idle on forever; by then its waits have been told to
    stop and no engine is left to answer. A loopback connect to a live engine succeeds even when the machine
    is loaded (the kernel completes it), so `exit_after` of consecutive refusals means the engine is gone."""
    missed = 0
    while True:
        time.sleep(interval)
        if os.getppid() != parent:
            request_cancel("the pulumi CLI is gone (killed?)")
        if not address:
            if CANCELLED.is_set():
                return
            continue
        missed = 0 if engine_alive(address) else missed + 1
        if missed >= misses:
            request_cancel("the pulumi engine stopped answering (CLI killed?)")
        if missed >= misses + exit_after / interval:
            end_process(0)
            return


def _grow_pool(minimum: int = 32) -> None:
    """Let the server's thread pool take more than 4 calls at once (see the module docstring)."""
    import gc
    from concurrent.futures import ThreadPoolExecutor

    for obj in gc.get_objects():
        if isinstance(obj, ThreadPoolExecutor) and obj._max_workers < minimum:
            obj._max_workers = minimum


def install() -> bool:
    """Hook `Cancel` and start the engine watch, once, and only inside the SDK's provider server."""
    with _installed:
        if _done["installed"]:
            return True
        main = sys.modules.get("__main__")
        servicer = getattr(main, "DynamicResourceProviderServicer", None)
        cancel = getattr(servicer, "Cancel", None)
        if cancel is None or not hasattr(cancel, "__code__") or cancel.__code__.co_freevars:
            return False
        cancel.__code__ = _cancel_rpc.__code__
        _grow_pool()
        threading.Thread(
            target=watch_engine, args=(engine_address(sys.argv), os.getppid()), daemon=True, name="engine-watch"
        ).start()
        _done["installed"] = True
        return True
