"""What each provider call costs besides its HTTP: the provider blob carried in state is a reference to its
class (not a copy of modules or objects), and loading the providers pulls in no heavy library (deepdiff
and its numpy/pydantic, valohai-yaml), which every provider process would otherwise pay at its first call."""

from __future__ import annotations

import base64
import subprocess
import sys

import dill
import pytest
from pulumi.dynamic.dynamic import serialize_provider

from providers.resources.code_package import CodePackageProvider
from providers.resources.harbor_dataset import HarborDatasetProvider
from providers.resources.pipelines import PipelineProvider
from providers.resources.prediction import PredictionProvider
from providers.resources.training_results import TrainingResultsProvider

PROVIDERS = [CodePackageProvider, HarborDatasetProvider, PipelineProvider, PredictionProvider, TrainingResultsProvider]
PROVIDER_MODULES = sorted({p.__module__ for p in PROVIDERS})
HEAVY = ("deepdiff", "numpy", "pydantic", "valohai_yaml")


@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.__name__)
def test_the_blob_in_state_is_a_small_reference_to_the_class(provider):
    blob = serialize_provider(provider())
    assert len(blob) < 200, f"{provider.__name__} pickles to {len(blob)} characters: something is captured by value"
    assert isinstance(dill.loads(base64.b64decode(blob)), provider)


def test_loading_the_providers_imports_nothing_heavy():
    imports = "; ".join(f"import {m}" for m in PROVIDER_MODULES)
    check = f"import sys; {imports}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "", f"provider modules import {loaded} at load time"


def test_an_unchanged_diff_does_not_import_deepdiff():
    """The no-change diff (every resource of a no-change preview) compares canonical JSON only."""
    check = (
        "import sys; from providers.resources.pipelines import PipelineProvider; "
        "props = {'host': 'http://h', 'key': 'k', 'payload': {'nodes': [1.0]}, 'status': 'complete'}; "
        "assert not PipelineProvider().diff('id', props, dict(props)).changes; "
        "print('deepdiff' in sys.modules)"
    )
    loaded = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "False"


def test_payloads_and_identities_travel_as_one_string_each_and_come_back_whole():
    """A pipeline's nested inputs are one protobuf value each (not ~150), and unpack gives the object back;
    state written as objects before packing still reads (upgrading changes no key)."""
    import asyncio

    from pulumi.runtime import rpc

    from providers.resources.packed import pack, unpack

    payload = {"project": "p", "nodes": [{"name": "train", "template": {"parameters": {"epochs": 2, "lr": 0.5}}}]}
    packed = pack(payload)
    assert isinstance(packed, str) and unpack(packed) == payload
    assert unpack(payload) == payload and pack(None) is None and unpack(None) is None
    assert unpack(rpc.UNKNOWN) == rpc.UNKNOWN  # a preview's unknown passes through untouched
    struct = asyncio.run(rpc.serialize_properties({"payload": packed}, {}))
    assert struct.fields["payload"].WhichOneof("kind") == "string_value"
    assert unpack(rpc.deserialize_properties(struct)["payload"]) == payload  # 2 stays 2, not 2.0
    with pytest.raises(ValueError, match="edited by hand"):
        unpack("{not json")


def test_the_plan_reasons_read_packed_and_unpacked_identities_alike(capsys):
    from providers.resources.packed import pack

    old = {"train": {"step": {"name": "train", "sha256": "a"}, "parameters": {"epochs": 2}}}
    new = {"train": {"step": {"name": "train", "sha256": "a"}, "parameters": {"epochs": 3}}}
    olds = {"host": "http://h", "key": "k1", "identity": old, "status": "complete"}  # state of an older version
    news = {"host": "http://h", "key": "k2", "identity": pack(new)}
    result = PipelineProvider().diff("id", olds, news)
    assert result.replaces == ["key"]
    assert "epochs 2 -> 3" in capsys.readouterr().out  # the reason line, from an object and a string
