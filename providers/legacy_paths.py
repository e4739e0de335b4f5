"""Old module paths of the providers, for stacks whose state was written before `providers/` was split.

Why: a dynamic provider is pickled into the stack's state by reference to its module
(`providers.pipelines.PipelineProvider`), so `refresh`, `destroy` and `drift-check` on such a stack
import the old path. This finder answers those imports with the module's new home; nothing in the
project imports an old path itself. Safe to delete once no state written by the flat layout remains.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

MOVED: dict[str, str] = {
    "providers.client": "providers.api.client",
    "providers.waiting": "providers.api.waiting",
    "providers.base": "providers.resources.base",
    "providers.idempotent": "providers.resources.adoption",
    "providers.executions": "providers.resources.executions",
    "providers.code_package": "providers.resources.code_package",
    "providers.harbor_dataset": "providers.resources.harbor_dataset",
    "providers.pipelines": "providers.resources.pipelines",
    "providers.training_results": "providers.resources.training_results",
    "providers.prediction": "providers.resources.prediction",
    "providers.payloads": "providers.sweep.payloads",
    "providers.probe": "toolchain.probe",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        """The target module is already executed by its own import."""


class LegacyPathFinder(importlib.abc.MetaPathFinder):
    """Resolves an old `providers.<module>` name to the module at its new path."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None or new == fullname:
            return None
        return importlib.util.spec_from_loader(fullname, _Alias(new))


def install() -> None:
    if not any(isinstance(finder, LegacyPathFinder) for finder in sys.meta_path):
        sys.meta_path.append(LegacyPathFinder())
