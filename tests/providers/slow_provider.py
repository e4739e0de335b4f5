"""A provider whose create waits on work that never ends: the subject of the cancellation tests, served by
the SDK's real provider server (`python -m pulumi.dynamic`). Importable by reference from that process."""

from __future__ import annotations

from pulumi.dynamic import CreateResult

from providers.api.waiting import WaitCancelled, wait_for
from providers.resources.base import ValohaiProvider


class SlowProvider(ValohaiProvider):
    def create(self, props: dict) -> CreateResult:
        try:
            wait_for(lambda: {"harbor_A/epochs-1": "started", "harbor_B/epochs-1": "complete"}, timeout=600)
        except WaitCancelled as exc:
            raise RuntimeError(f"ended early: {exc}") from None
        return CreateResult("never", {})
