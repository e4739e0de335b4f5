"""Content keys: which files a step runs, what goes into a node's key, and the plan's reasons in words."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from providers.sweep import explain
from providers.sweep.identity import node_identity, node_key, resource_key
from providers.sweep.step_files import StepFilesError, command_scripts, step_files

ROOT = Path(__file__).resolve().parents[2]


def test_the_real_steps_run_their_script_and_the_shared_modules():
    assert list(step_files(ROOT, "train", ["python steps/train.py {parameters}"])) == [
        "steps/common.py",
        "steps/harbor_names.py",
        "steps/train.py",
    ]


def test_imports_are_followed_recursively_inside_the_project_only(tmp_path):
    (tmp_path / "steps" / "pkg").mkdir(parents=True)
    (tmp_path / "steps" / "run.py").write_text("import os\nimport numpy\nfrom helper import x\nfrom pkg import mod\n")
    (tmp_path / "steps" / "helper.py").write_text("from . import nothing\nimport lib.deep\n")
    (tmp_path / "steps" / "pkg" / "__init__.py").write_text("")
    (tmp_path / "steps" / "pkg" / "mod.py").write_text("from .sibling import y\n")
    (tmp_path / "steps" / "pkg" / "sibling.py").write_text("")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "deep.py").write_text("")
    (tmp_path / "steps" / "unused.py").write_text("")
    files = step_files(tmp_path, "s", ["pip install -r x.txt && python3 steps/run.py {parameters}"])
    assert list(files) == [
        "lib/deep.py",
        "steps/helper.py",
        "steps/pkg/__init__.py",
        "steps/pkg/mod.py",
        "steps/pkg/sibling.py",
        "steps/run.py",
    ]
    before = files["steps/pkg/sibling.py"]
    (tmp_path / "steps" / "pkg" / "sibling.py").write_text("# a comment\n")
    assert step_files(tmp_path, "s", ["python steps/run.py"])["steps/pkg/sibling.py"] != before


def test_a_command_that_runs_no_script_needs_the_override(tmp_path):
    (tmp_path / "run.sh").write_text("echo hi\n")
    with pytest.raises(StepFilesError, match=r"step 'bin'.*runs no `python <file>.py` nor `sh <file>`.*STEP_FILES"):
        step_files(tmp_path, "bin", ["./run.sh", "python -m pkg {parameters}"])
    overridden = step_files(tmp_path, "bin", ["./run.sh"], overrides={"bin": ["run.sh"]})
    assert overridden == step_files(tmp_path, "sh", ["bash run.sh"]) and list(overridden) == ["run.sh"]
    assert command_scripts(["python -m pkg", "echo python", "python -c 'import x'", "echo sh run.sh"]) == []


def test_interpreter_options_and_shell_scripts_are_followed():
    assert command_scripts(
        [
            "python -u -X dev steps/a.py {parameters}",
            "pip install -r r.txt && python3 -W error steps/b.py",
            "bash -e -o pipefail steps/c.sh --x=1",
            "FOO=1 exec sh steps/d.sh",
            "sh -c 'python steps/e.py'",
            "python steps/f.py --shell sh g.sh",
        ]
    ) == ["steps/a.py", "steps/b.py", "steps/c.sh", "steps/d.sh", "steps/f.py"]


def test_keys_change_with_content_not_with_number_types():
    base = node_identity({"name": "train"}, {"steps/train.py": "a"}, {"epochs": 2}, {"dataset": "k"})
    assert node_key(base) == node_key(
        node_identity({"name": "train"}, {"steps/train.py": "a"}, {"epochs": 2}, {"dataset": "k"})
    )
    for other in (
        node_identity({"name": "train", "image": "x"}, {"steps/train.py": "a"}, {"epochs": 2}, {"dataset": "k"}),
        node_identity({"name": "train"}, {"steps/train.py": "b"}, {"epochs": 2}, {"dataset": "k"}),
        node_identity({"name": "train"}, {"steps/train.py": "a"}, {"epochs": 3}, {"dataset": "k"}),
        node_identity({"name": "train"}, {"steps/train.py": "a"}, {"epochs": 2}, {"dataset": "j"}),
    ):
        assert node_key(other) != node_key(base)
    assert resource_key("cell", "s1", {"train": base}) != resource_key("cell", "s2", {"train": base})


def test_reasons_name_files_and_old_and_new_values():
    old = {
        "train": node_identity({"name": "train"}, {"steps/train.py": "a"}, {"learning_rate": 0.001, "epochs": 2.0}, {})
    }
    new = {
        "train": node_identity({"name": "train"}, {"steps/train.py": "b"}, {"learning_rate": 0.002, "epochs": 2}, {})
    }
    assert explain.reasons(old, new) == ["steps/train.py changed", "learning_rate 0.001 -> 0.002"]
    up = {
        "train": node_identity({"name": "train"}, {"steps/train.py": "a"}, {"learning_rate": 0.001}, {"dataset": "x"})
    }
    up2 = {
        "train": node_identity({"name": "train"}, {"steps/train.py": "a"}, {"learning_rate": 0.001}, {"dataset": "y"})
    }
    assert explain.reasons(up, up2) == ["input dataset of train changed upstream"]
    assert explain.reasons(None, new) == ["no content key recorded (made by an older version of the tool)"]
    plain = {"train": node_identity({"name": "train"}, {}, {}, {})}
    on_gpu = {"train": node_identity({"name": "train"}, {}, {}, {}, {"environment": "gpu-1"})}
    assert explain.reasons(plain, on_gpu) == ["train setting environment added (gpu-1)"]
    line = explain.reason_line("harbor_A/epochs-2", "replace", ["learning_rate 0.001 -> 0.002"])
    assert explain.REASON_LINE.match(line).groupdict() == {
        "name": "harbor_A/epochs-2",
        "op": "replace",
        "reason": "learning_rate 0.001 -> 0.002",
    }


def test_plan_explain_collects_the_reason_lines_and_the_planned_ops():
    from toolchain.plan_explain import parse_preview

    urn = "urn:pulumi:s::valohai-sweep::pulumi-python:dynamic/valohai:TrainingPipeline::"
    preview = {
        "steps": [
            {"op": "same", "urn": urn + "cell-hA-epochs-1"},
            {"op": "replace", "urn": urn + "cell-hA-epochs-2"},
            {"op": "create-replacement", "urn": urn + "cell-hA-epochs-2"},
            {"op": "create", "urn": "urn:pulumi:s::valohai-sweep::pulumi:pulumi:Stack::valohai-sweep-s"},
        ],
        "diagnostics": [
            {"message": "hA/epochs-2: replace: learning_rate 0.001 -> 0.002\n", "severity": "info"},
            {"message": "hA/epochs-2: replace: learning_rate 0.001 -> 0.002\n", "severity": "info"},
            {"message": "sweep: 1 started (3s)\n", "severity": "info"},
            {"message": "hA/epochs-2: reuse preprocess from pipeline #7 (same key)\n", "severity": "info"},
            {"message": "hA/epochs-2: reuse preprocess from pipeline #7 (same key)\n", "severity": "info"},
            {"message": "reuse: 1 nodes to run, 1 reused\n", "severity": "info"},
        ],
    }
    assert parse_preview(preview) == {
        "steps": {"cell-hA-epochs-2": "replace"},
        "reasons": [{"name": "hA/epochs-2", "op": "replace", "reason": "learning_rate 0.001 -> 0.002"}],
        "reuse": [{"name": "hA/epochs-2", "node": "preprocess", "source": "pipeline #7"}],
        "reuse_summary": {"to_run": 1, "reused": 1},
    }


def test_the_requirements_every_step_installs_are_part_of_its_files_and_its_reason(tmp_path):
    from providers.sweep import payloads

    config = payloads.load_config((ROOT / "valohai.yaml").read_text())
    for name, step in config.steps.items():
        assert "steps/requirements.txt" in step_files(ROOT, name, step.command), name
    (tmp_path / "steps").mkdir()
    (tmp_path / "steps" / "ensure_requirements.py").write_text("import os\n")
    (tmp_path / "steps" / "run.py").write_text("")
    (tmp_path / "steps" / "requirements.txt").write_text("pillow==12.0.0\n")
    commands = ["python steps/ensure_requirements.py", "python steps/run.py {parameters}"]
    old = {"run": node_identity({"name": "run"}, step_files(tmp_path, "run", commands), {}, {})}
    (tmp_path / "steps" / "requirements.txt").write_text("pillow==12.1.0\n")
    new = {"run": node_identity({"name": "run"}, step_files(tmp_path, "run", commands), {}, {})}
    assert node_key(old["run"]) != node_key(new["run"])
    assert explain.reasons(old, new) == ["steps/requirements.txt changed"]
    (tmp_path / "steps" / "requirements.txt").unlink()
    with pytest.raises(
        StepFilesError, match=r"steps/ensure_requirements.py reads steps/requirements.txt, which is not"
    ):
        step_files(tmp_path, "run", commands)


def test_plan_explain_prints_the_reuse_lines_and_summary(monkeypatch, capsys):
    """The text report shows what the program printed at preview: one line per reused node, then the counts."""
    from subprocess import CompletedProcess

    from providers.sweep.reuse import Source, plan_lines, summary_line
    from toolchain import plan_explain

    source = Source("n1", "train", "p7", 7, "e1", 3)
    lines = [*plan_lines({"train": "hA/epochs-1"}, {"train": "train"}, {"train": source}), summary_line(2, 1)]
    preview = {
        "steps": [{"op": "create", "urn": "urn:pulumi:s::valohai-sweep::x:y:SweepPipeline::sweep"}],
        "diagnostics": [{"message": line + "\n", "severity": "info"} for line in lines],
    }
    result = CompletedProcess([], 0, stdout=json.dumps(preview), stderr="")
    monkeypatch.setattr(plan_explain, "run_pulumi", lambda *a, **k: result)
    with pytest.raises(SystemExit) as exited:
        plan_explain.main(["--stack", "s"])
    assert exited.value.code == plan_explain.EXIT_CHANGES
    out = capsys.readouterr().out
    assert "  hA/epochs-1: reuse train from pipeline #7 (same key)\n" in out
    assert out.rstrip().endswith("2 nodes to run, 1 reused")
