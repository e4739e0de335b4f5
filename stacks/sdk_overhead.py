"""What the Python SDK costs per resource, and what the program does about it.

Diagnostics: for every resource the program declares, the SDK (pulumi 3.260, pulumi/runtime/resource.py
`register_resource`) sends four debug-channel messages to the engine, each a blocking gRPC call
(pulumi/log.py `_log`), and walks the Python stack (`traceback.extract_stack`) for a stack trace that the
engine stores in state with the resource (`stackTrace`, ~1.4 KB per pipeline here, written again at every
checkpoint of an `up`). The debug messages show only under `pulumi --debug`, and every cell's stack trace
points at the same lines of providers/resources/. On a 1,000-cell no-change preview the two cost ~5 s of
~32 (bench/README.md, "No-change preview cost"). `quiet_sdk` turns both off;
`VPAC_PULUMI_SDK_DIAGNOSTICS=1` keeps them (for debugging the program). Other messages (info, warnings,
errors) are untouched. If a later SDK renames what is replaced here, nothing is replaced.

The stack's root: `wait_for_root` blocks until the engine has registered the stack's root resource
(`pulumi:pulumi:Stack`, which every resource names as its parent). Declaring a thousand resources before
that made the program spend 32 CPU-seconds instead of 11 in the SDK's wait for outstanding outputs
(pulumi/runtime/stack.py `wait_for_rpcs`, which waits on every pending Output again after each one
completes): measured on a 1,000-cell no-change preview, 45 s against 26 (bench/README.md).

Garbage collection: the SDK keeps an Output, a future and a task or more per value of every resource alive
until the program ends, so by the last cells CPython's collector walks hundreds of thousands of long-lived
objects, a full collection every few thousand registrations: ~1.9 of the program's ~9 CPU-seconds in a
1,000-cell no-change preview (a gc callback timed it; a program of as many trivial resources spends as much).
`collect_less` raises the thresholds, so the young generations are collected less often and a full collection
does not come during a run of this size; garbage without cycles is freed at once as ever, and a program lives
only as long as one `pulumi` command. Measured alternately on that preview (bench/README.md, "No-change preview
cost"): 21.8 -> 20.6 s median of 3.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from toolchain.environment import SDK_DIAGNOSTICS_ENV


def _no_debug(*_args: Any, **_kwargs: Any) -> None:
    """`pulumi.log.debug` without the round trip to the engine."""


def _no_stack_trace() -> Any:
    from pulumi.runtime.proto import source_pb2

    return source_pb2.StackTrace()


def quiet_sdk(environ: Mapping[str, str] = os.environ) -> bool:
    """Turn the SDK's per-resource debug messages and stack traces off (call before declaring resources);
    True when done, False when kept (the switch) or when this SDK has no such hooks."""
    if environ.get(SDK_DIAGNOSTICS_ENV) == "1":
        return False
    from pulumi import log
    from pulumi.runtime import resource

    if not callable(getattr(log, "debug", None)) or not callable(getattr(resource, "_get_stack_trace", None)):
        return False
    log.debug = _no_debug
    resource._get_stack_trace = _no_stack_trace
    return True


# gen0 (allocations), gen1, gen2 (collections of the generation below): instead of CPython's (700, 10, 10)
GC_THRESHOLDS = (50_000, 50, 100)


def collect_less() -> None:
    """Raise the collector's thresholds for the program's process (see the module docstring)."""
    import gc

    gc.set_threshold(*GC_THRESHOLDS)


def wait_for_root() -> None:
    """Block until the stack's root resource is registered (see the module docstring); no-op outside a
    program run, or if a later SDK keeps the root elsewhere."""
    from pulumi.runtime.settings import get_root_resource
    from pulumi.runtime.sync_await import _sync_await

    root = get_root_resource()
    pending = getattr(getattr(root, "urn", None), "_data", None)
    if pending is not None and not pending.done():
        _sync_await(pending)
