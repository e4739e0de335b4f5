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


def test_packed_values_are_compressed_and_the_previous_plain_json_still_reads():
    """State bytes are what a 1,000-cell `up` pays for at every checkpoint: a packed identity or payload is
    zlib + base64 (no JSON escapes), well under its canonical JSON; the plain canonical JSON the previous version
    stored still unpacks; damaged or bomb-sized packed values fail with the fix, not a crash or a full memory."""
    import base64
    import zlib

    from providers.resources.packed import MAX_UNPACKED_BYTES, PACKED_PREFIX, pack, unpack
    from providers.sweep.identity import canonical_json

    identity = {
        node: {
            "files": {f"steps/{node}.py": "0de27647dfeacd6f10b04c6baa8636b19f8f4db1af9b067a67ff476552a2ad9d"},
            "parameters": {"dataset_name": "harbor_E", "epochs": 5, "learning_rate": 0.002},
            "step": {"name": node, "sha256": "74ae3d65e14998cb59b4aae5fcee42ba386eff0fcb67f4e0e15684d7f1289085"},
            "upstream": {"dataset": "7827220d8744780a76940a4e68fb447207c4ab684a210294b6207f2811fc81f3"},
        }
        for node in ("preprocess", "train")
    }
    packed = pack(identity)
    assert packed.startswith(PACKED_PREFIX) and '"' not in packed and "\\" not in packed
    assert len(packed) < 0.8 * len(canonical_json(identity))
    assert unpack(packed) == identity
    assert unpack(canonical_json(identity)) == identity  # state of the previous version
    with pytest.raises(ValueError, match="edited by hand"):
        unpack(PACKED_PREFIX + "not base64!")
    with pytest.raises(ValueError, match="edited by hand"):
        unpack(PACKED_PREFIX + base64.b64encode(b"not zlib").decode())
    bomb = zlib.compress(b"[" + b" " * (MAX_UNPACKED_BYTES + 1) + b"]")
    with pytest.raises(ValueError, match="unpacks to more than"):
        unpack(PACKED_PREFIX + base64.b64encode(bomb).decode())


def test_the_dictionary_format_is_smaller_and_the_previous_zlib_format_still_reads():
    """Values packed with the preset dictionary (`ZDICT`) are smaller than plain zlib for a cell's payload and
    identity; what the previous version stored (`zlib64:`, no dictionary) unpacks to the same object."""
    import base64
    import zlib

    from providers.resources.packed import LEGACY_PREFIX, PACKED_PREFIX, pack, unpack
    from providers.sweep.identity import canonical_json

    payload = {
        "edges": [{"source_key": "train/*", "source_node": "preprocess", "source_type": "output",
                   "target_key": "dataset", "target_node": "train", "target_type": "input"}],
        "nodes": [{"name": n, "type": "execution", "template": {
            "command": [f"python steps/{n}.py {{parameters}}"], "commit": "~" + "7" * 64, "image": "python:3.11",
            "inputs": {}, "name": n, "parameters": {"dataset_name": "harbor_C", "epochs": 7}, "runtime_config": {},
            "step": n, "tags": ["vpac-node:0123456789abcdef01234567"]}} for n in ("preprocess", "train")],
        "parameters": {}, "project": "cbbed9c1-2d5a-4fb8-b3c3-63b9aee86486", "tags": ["stack:dev"],
        "title": "training-pipeline-harbor_C-epochs-7",
    }  # fmt: skip
    legacy = LEGACY_PREFIX + base64.b64encode(zlib.compress(canonical_json(payload).encode(), 9)).decode()
    packed = pack(payload)
    assert packed.startswith(PACKED_PREFIX) and len(packed) < 0.85 * len(legacy)
    assert unpack(packed) == unpack(legacy) == payload


def test_identities_keep_short_hashes_and_the_reasons_compare_them_with_whole_ones():
    """State keeps each hash of an identity cut to 16 hex digits (keys are computed before); reasons between a
    whole identity (older state) and a cut one name only what really changed."""
    from providers.resources.packed import pack_identity, unpack
    from providers.sweep.explain import reasons
    from providers.sweep.identity import STORED_HASH_LENGTH, stored_identity

    whole = {
        "train": {
            "files": {"steps/train.py": "a" * 64},
            "parameters": {"epochs": 2},
            "step": {"name": "train", "sha256": "b" * 64},
            "upstream": {"dataset": "c" * 64},
        }
    }
    cut = unpack(pack_identity(whole))
    assert cut == stored_identity(whole) == stored_identity(cut)
    assert cut["train"]["files"]["steps/train.py"] == "a" * STORED_HASH_LENGTH
    assert cut["train"]["step"]["sha256"] == "b" * STORED_HASH_LENGTH and cut["train"]["parameters"] == {"epochs": 2}
    changed = {"train": {**cut["train"], "parameters": {"epochs": 3}}}
    assert reasons(whole, changed) == ["epochs 2 -> 3"]  # not "steps/train.py changed" for the cut hash
    edited = {"train": {**whole["train"], "files": {"steps/train.py": "d" * 64}}}
    assert reasons(whole, stored_identity(edited)) == ["steps/train.py changed"]


def test_check_keeps_a_stored_value_whose_content_is_unchanged(monkeypatch):
    """A new packing (dictionary, cut hashes) of unchanged content must not change the inputs the engine compares:
    every unchanged cell would be rewritten into state once after an upgrade. A real change is passed on."""
    import base64
    import zlib

    from providers.resources import base
    from providers.resources.packed import LEGACY_PREFIX, pack, pack_identity
    from providers.sweep.identity import canonical_json

    monkeypatch.setattr(base, "verify_access", lambda host: None)

    def legacy(value):
        return LEGACY_PREFIX + base64.b64encode(zlib.compress(canonical_json(value).encode(), 9)).decode()

    identity = {"train": {"files": {"steps/train.py": "a" * 64}, "parameters": {"epochs": 2}}}
    payload = {"project": "p", "nodes": [{"name": "train"}]}
    stored = {"host": "http://h", "key": "k", "identity": legacy(identity), "payload": legacy(payload)}
    news = {"host": "http://h", "key": "k", "identity": pack_identity(identity), "payload": pack(payload)}
    assert news["identity"] != stored["identity"] and news["payload"] != stored["payload"]
    inputs = PipelineProvider().check(stored, news).inputs
    assert inputs["identity"] == stored["identity"] and inputs["payload"] == stored["payload"]
    news["payload"] = pack({**payload, "project": "q"})
    assert PipelineProvider().check(stored, news).inputs["payload"] == news["payload"]


def test_the_plan_reasons_read_packed_and_unpacked_identities_alike(capsys):
    from providers.resources.packed import pack

    old = {"train": {"step": {"name": "train", "sha256": "a"}, "parameters": {"epochs": 2}}}
    new = {"train": {"step": {"name": "train", "sha256": "a"}, "parameters": {"epochs": 3}}}
    olds = {"host": "http://h", "key": "k1", "identity": old, "status": "complete"}  # state of an older version
    news = {"host": "http://h", "key": "k2", "identity": pack(new)}
    result = PipelineProvider().diff("id", olds, news)
    assert result.replaces == ["key"]
    assert "epochs 2 -> 3" in capsys.readouterr().out  # the reason line, from an object and a string


def test_the_plan_reasons_come_from_the_inputs_check_sees_when_outputs_keep_no_identity(capsys, monkeypatch):
    """A pipeline's outputs no longer repeat its identity: `check` gets the stored inputs (with the identity) and
    notes the reasons for a changed key, which `diff` (given the outputs) prints."""
    from providers.resources import base
    from providers.resources.packed import pack

    monkeypatch.setattr(base, "verify_access", lambda host: None)
    old = {"train": {"step": {"name": "train", "sha256": "a"}, "parameters": {"epochs": 2}}}
    new = {"train": {"step": {"name": "train", "sha256": "a"}, "parameters": {"epochs": 5}}}
    old_inputs = {"host": "http://h", "key": "k-old", "label": "harbor_A/epochs-2", "identity": pack(old)}
    old_outputs = {"host": "http://h", "key": "k-old", "label": "harbor_A/epochs-2", "status": "complete"}
    news = {"host": "http://h", "key": "k-new", "label": "harbor_A/epochs-2", "identity": pack(new)}
    provider = PipelineProvider()
    assert "identity" not in provider.KEPT_INPUTS
    assert not provider.check(old_inputs, news).failures
    result = provider.diff("id", old_outputs, news)
    assert result.replaces == ["key"]
    assert "harbor_A/epochs-2: replace: epochs 2 -> 5" in capsys.readouterr().out
    # a diff with no check before it in this process still names the change, never a wrong reason
    provider.diff("id", {**old_outputs, "key": "k-other"}, news)
    assert "content key k-other -> k-new" in capsys.readouterr().out


def test_a_pipelines_live_title_and_nodes_are_one_packed_output_and_older_state_keeps_its_shape():
    """New outputs carry the live title and the nodes' executions as one packed value (`live`); outputs stored
    before, with `live_title` and `nodes` of their own, are refreshed in that shape, so an unchanged pipeline's
    refresh changes nothing; the title drift and a failed node's reason read both shapes."""
    from providers.resources.pipelines import LIVE, live_outputs, live_view, stored_ids

    pipeline = {
        "id": "p1",
        "status": "error",
        "counter": 7,
        "title": "training-pipeline-harbor_A-epochs-2",
        "nodes": [
            {"name": "preprocess", "execution": {"id": "e1", "counter": 3, "status": "complete"}},
            {"name": "train", "execution": {"id": "e2", "counter": 4, "status": "error", "status_detail": "OOM"}},
        ],
    }
    new = live_outputs(pipeline, project_id="proj")
    assert set(new) == {"status", "counter", LIVE} and isinstance(new[LIVE], str)
    assert stored_ids(new) == ("p1", "proj")
    title, nodes = live_view(new)
    assert title == pipeline["title"] and nodes["train"] == {
        "id": "e2",
        "counter": 4,
        "status": "error",
        "detail": "OOM",
    }
    assert live_outputs(pipeline, stored=new) == new  # refreshing the new shape: equal when nothing changed

    # the shape before the ids were packed too: `pipeline_id` and `project_id` of their own, kept so on refresh
    before = {"pipeline_id": "p1", "project_id": "proj", "status": "error", "counter": 7, LIVE: "x"}
    kept = {**before, **live_outputs(pipeline, stored=before)}
    assert set(kept) == set(before) and stored_ids(kept) == ("p1", "proj") and live_view(kept) == live_view(new)

    old = {"label": "harbor_A/epochs-2", "url": "http://x/p/1/", "live_title": title, "nodes": nodes, "status": "error"}
    refreshed = {**old, **live_outputs(pipeline, stored=old)}
    assert LIVE not in refreshed and refreshed["nodes"] == nodes and refreshed["url"] == old["url"]
    assert live_view(refreshed) == live_view(new)

    provider = PipelineProvider()
    assert (
        provider.problem_reason(new, "status")
        == provider.problem_reason(old, "status")
        == "last run error (train: OOM)"
    )
    assert provider.cosmetic_edit(old, new) is None
    renamed = live_outputs({**pipeline, "title": "renamed"})
    assert provider.cosmetic_edit(old, renamed) == f"title is 'renamed' in Valohai, was {title!r}"


def test_a_pipelines_host_label_key_and_identity_are_one_packed_input_and_older_state_keeps_its_shape(
    monkeypatch, capsys
):
    """The program sends a pipeline's host, label, key and identity as one packed `spec`; `check` keeps inputs
    stored before in their own shape while their content is the same (no rewrite after an upgrade), and takes the
    new shape once something changed; `diff` reads any mix of shapes alike."""
    from providers.resources import base
    from providers.resources.packed import SPEC, pack, pack_spec, spec_view, unpack

    monkeypatch.setattr(base, "verify_access", lambda host: None)
    identity = {"train": {"step": {"name": "train", "sha256": "a" * 64}, "parameters": {"epochs": 2}}}
    fields = {"host": "http://h", "label": "harbor_A/epochs-2", "key": "k1", "identity": identity}
    payload = pack({"nodes": [{"name": "train"}], "project": "p"})
    news = {"payload": payload, SPEC: pack_spec(fields)}
    assert set(news) == {"payload", SPEC}
    view = spec_view(news)
    assert view["host"] == "http://h" and view["key"] == "k1" and view["label"] == "harbor_A/epochs-2"
    assert view["identity"]["train"]["step"]["sha256"] == "a" * 16  # cut as state keeps identities
    provider = PipelineProvider()

    fresh = provider.check({}, news)
    assert not fresh.failures and fresh.inputs == news

    # state written before the spec: the same content keeps the stored shape, byte for byte
    stored = {"payload": payload, "stack": "s", **{k: v for k, v in fields.items() if k != "identity"}}
    stored["identity"] = pack(identity)
    kept = provider.check(stored, news)
    assert not kept.failures and kept.inputs == stored
    old_outputs = {"host": "http://h", "key": "k1", "label": "harbor_A/epochs-2", "status": "complete"}
    assert provider.diff("id", old_outputs, news).changes is False

    # a changed key: the new shape, a replace, and the reason from the stored identity
    changed_identity = {"train": {**identity["train"], "parameters": {"epochs": 3}}}
    changed = {"payload": payload, SPEC: pack_spec({**fields, "key": "k2", "identity": changed_identity})}
    replaced = provider.check(stored, changed)
    assert not replaced.failures and SPEC in replaced.inputs and "key" not in replaced.inputs
    new_outputs = {SPEC: pack_spec({k: v for k, v in fields.items() if k != "identity"}), "status": "complete"}
    for outputs in (old_outputs, new_outputs):
        capsys.readouterr()
        assert provider.diff("id", outputs, replaced.inputs).replaces == ["key"]
        assert "harbor_A/epochs-2: replace: epochs 2 -> 3" in capsys.readouterr().out
    assert unpack(replaced.inputs[SPEC])["key"] == "k2"

    # a spec edited by hand into something else is named, not a crash
    broken = provider.check({}, {"payload": payload, SPEC: pack(["not", "an", "object"])})
    assert [f.property for f in broken.failures] == [SPEC]


def test_the_results_per_cell_values_are_packed_and_state_written_before_keeps_its_shape(monkeypatch, capsys):
    """The results' `cells` input travels packed; state that holds it as an object (written before) keeps it while
    the content is the same, so an upgrade shows no change and rewrites nothing; a real change is an update."""
    from providers.resources import base
    from providers.resources.packed import pack

    monkeypatch.setattr(base, "verify_access", lambda host: None)
    cells = {f"h/epochs-{i}": {"pipeline": f"p{i}", "node": "train"} for i in range(3)}
    stored = {"host": "http://h", "cells": cells, "timeout_seconds": 60.0}
    news = {"host": "http://h", "cells": pack(cells), "timeout_seconds": 60}
    provider = TrainingResultsProvider()
    checked = provider.check(stored, news)
    assert checked.failures == [] and checked.inputs["cells"] == cells  # kept as stored
    assert provider.diff("r", {**stored, "training_execution_ids": {}}, news).changes is False
    assert provider.diff("r", {**stored, "cells": pack(cells)}, news).changes is False

    moved = pack({**cells, "h/epochs-9": {"pipeline": "p9", "node": "train"}})
    assert provider.check(stored, {**news, "cells": moved}).inputs["cells"] == moved
    assert provider.diff("r", stored, {**news, "cells": moved}).changes is True
    assert "results: update: cells changed" in capsys.readouterr().out
    assert provider.check({}, {**news, "cells": pack({})}).failures[0].property == "cells"
