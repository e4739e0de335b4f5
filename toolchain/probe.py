"""`ToolchainProbe`: a dynamic resource with no remote side, used to prove the toolchain end to end.

It records which Python and which `pulumi` SDK the provider process runs, so a wrong venv or a provider
that cannot be unpickled by reference shows up at once (tests/test_toolchain.py runs it through the real
CLI; bench/nochange_preview.py uses it as the floor of a no-change preview).
"""

from __future__ import annotations

import sys
from importlib.metadata import version

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider


class ToolchainProbeProvider(ResourceProvider):
    serialize_as_secret_always = False

    def create(self, props: dict) -> CreateResult:
        return CreateResult(
            f"probe-{props['label']}", {**props, "python": sys.executable, "pulumi_sdk": version("pulumi")}
        )

    def diff(self, _id: str, olds: dict, news: dict) -> DiffResult:
        return DiffResult(changes=olds.get("label") != news.get("label"), replaces=["label"])

    def read(self, id_: str, props: dict) -> ReadResult:
        return ReadResult(id_, props, inputs={"label": props.get("label")})


class ToolchainProbe(Resource, module="valohai", name="ToolchainProbe"):
    python: pulumi.Output[str]

    def __init__(self, name: str, label: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(ToolchainProbeProvider(), name, {"label": label, "python": None, "pulumi_sdk": None}, opts)
