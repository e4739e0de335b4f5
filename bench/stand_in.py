"""A throw-away project with trivial stand-in steps: the one definition the benchmarks and the tests share.

Why: the orchestration benchmarks (bench/_harness.py) and the end-to-end tests whose subject is not
learning (tests/e2e) measure or check orchestration (Pulumi, the providers, the backend's scheduling), not
training. So this project's valohai.yaml has the same steps, parameters, inputs and pipeline as the real
one, and each step's script has the real step's file name (steps/train.py, ...) or, for the two steps
that run once per cell, the same name ending in `.sh` (steps/train.sh), so a step's content key changes only
with its own script. Each script writes the output files the providers and the stack read, with the real
steps' names and shapes (predictions.json has `models`, `missing_cells` and `reused_cells` as
steps/predict_models.py writes them), and `train` prints metadata lines as the real one does. `train` sleeps
`--sleep` seconds plus `epoch_seconds` per epoch (both 0 by default), so a test can keep a cell running as
long as it needs.

preprocess and train are POSIX shell (~4 ms of CPU a run against ~50 ms for the smallest Python script:
interpreter start-up and `json`'s import of `re`): a 1,000-cell sweep runs 2,000 of them on the same 2 cores
as the Pulumi engine it is measuring. generate and predict, which run once per harbor and once per sweep,
stay Python.

The project's `program/__main__.py` calls `stacks.program.build_stack` on the project root, so the real
stack program runs against it.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_NAME = "valohai-sweep"  # the config namespace the stack program reads

STEP_SCRIPT = r'''"""Trivial stand-ins for generate and predict: same parameters, inputs and output names, no ML."""
import json, os, sys, time

# `--name=value` or `--name value`, each name any number of times; no argparse: its import (re, enum, gettext)
# was a third of each stand-in's ~70 ms (generate runs once per harbor on the machine a benchmark measures)
kind, given, words = sys.argv[1], {}, iter(sys.argv[2:])
for word in words:
    if word.startswith("--"):
        name, eq, value = word[2:].partition("=")
        given.setdefault(name, []).append(value if eq else next(words, ""))


def last(name, default):
    return given.get(name, [default])[-1]


out = os.environ.get("VH_OUTPUTS_DIR", "outputs")
inputs = os.environ.get("VH_INPUTS_DIR", "inputs")
exec_id = os.environ.get("VH_EXECUTION_ID", "local")


def write(name, text, meta=None):
    path = os.path.join(out, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)
    if meta:
        with open(path + ".metadata.json", "w") as fh:
            json.dump(meta, fh)


def values(name):
    return [v for value in given.get(name, []) for v in value.split(",") if v]


harbors = values("harbors")
if kind == "generate":
    write("images.zip", "not really a zip " + ",".join(harbors))
    for h in harbors:
        write(f"train_{h}.csv", f"image,category\n{h}_0.png,1\n")
        write(f"test_labels_{h}.csv", f"image,category\n{h}_t0.png,2\n")
elif kind == "predict":
    import re

    model_file = re.compile(r"^model-(?P<harbor>.+)-epochs-(?P<epochs>\d+)\.keras$")
    found = []
    for folder, _, files in os.walk(os.path.join(inputs, "models")):
        found += [m for m in map(model_file.match, files) if m]
    harbours = values("harbours") or sorted({m["harbor"] for m in found})
    reused = {}
    for value in values("reused_cells"):
        cell, _, where = value.partition("=")
        reused[cell.strip()] = where.strip() or "an earlier pipeline"
    selected = sorted((m for m in found if m["harbor"] in harbours), key=lambda m: (m["harbor"], int(m["epochs"])))
    cells = {f"{m['harbor']}/epochs-{m['epochs']}" for m in selected}
    models = {
        m.group(0).rsplit(".", 1)[0]: {"harbor": m["harbor"], "epochs": int(m["epochs"]), "val_accuracy": 0.8,
                     "reused_from": reused.get(f"{m['harbor']}/epochs-{m['epochs']}")}
        for m in selected
    }
    epochs = sorted({int(m["epochs"]) for m in selected})
    missing = [f"{h}/epochs-{e}" for h in harbours for e in epochs if f"{h}/epochs-{e}" not in cells]
    summary = {"harbours": harbours, "models": models, "missing_cells": missing,
               "reused_cells": {c: w for c, w in reused.items() if c in cells}, "exec_ids": values("exec_ids")}
    write("predictions.json", json.dumps(summary))
    write("report/index.html", "<html><body>stand-in report</body></html>")
else:
    sys.exit(f"unknown step kind {kind!r}")
'''

# `--name=value` words ({parameters}); harbor names are letters, digits, '_', '-', '.' (steps/harbor_names.py),
# so they need no quoting in the JSON below
PREPROCESS_SCRIPT = r"""# Trivial stand-in for preprocess-dataset: same parameters and output names, no ML.
h=harbor_A
for word; do
  case $word in --dataset_name=*) h=${word#*=} ;; esac
done
out=${VH_OUTPUTS_DIR:-outputs}
id=${VH_EXECUTION_ID:-local}
mkdir -p "$out/train" "$out/test/$h"
printf 'train %s %s' "$h" "$id" > "$out/train/preprocessed_data_$h.npz"
printf '{"valohai.dataset-versions": ["dataset://%s_train/%s"]}' "$h" "$id" \
  > "$out/train/preprocessed_data_$h.npz.metadata.json"
printf 'test %s %s' "$h" "$id" > "$out/test/$h/preprocessed_test_data_$h.npz"
printf '{"valohai.dataset-versions": ["dataset://%s_test/%s"]}' "$h" "$id" \
  > "$out/test/$h/preprocessed_test_data_$h.npz.metadata.json"
printf '{"run_training_for": "%s"}\n' "$h"
"""

TRAIN_SCRIPT = r"""# Trivial stand-in for train: same parameters and output names, metadata per epoch, no ML.
h=harbor_A n=1 pause=0 per_epoch=0
for word; do
  case $word in
    --dataset_name=*) h=${word#*=} ;;
    --epochs=*) n=${word#*=} ;;
    --sleep=*) pause=${word#*=} ;;
    --epoch_seconds=*) per_epoch=${word#*=} ;;
  esac
done
out=${VH_OUTPUTS_DIR:-outputs}
id=${VH_EXECUTION_ID:-local}
[ "$pause" = 0 ] || sleep "$pause"
epoch=1
while [ "$epoch" -le "$n" ]; do
  [ "$per_epoch" = 0 ] || sleep "$per_epoch"
  printf '{"epoch": %d, "accuracy": 0.9, "loss": 0.1}\n' "$epoch"
  epoch=$((epoch + 1))
done
printf '{"val_accuracy": 0.8, "val_loss": 0.2}\n'
mkdir -p "$out"
printf 'model %s %s %s' "$h" "$n" "$id" > "$out/model-$h-epochs-$n.keras"
printf '{"val_accuracy": 0.8, "epochs": %d}' "$n" > "$out/metrics-$h-epochs-$n.json"
"""

# one script per step, named as the real steps' scripts (valohai.yaml), so each step's key has its own file
SCRIPTS = {
    "steps/generate_harbors.py": STEP_SCRIPT,
    "steps/preprocess_dataset.sh": PREPROCESS_SCRIPT,
    "steps/train.sh": TRAIN_SCRIPT,
    "steps/predict_models.py": STEP_SCRIPT,
}

VALOHAI_YAML = """\
- step:
    name: generate-harbors
    image: python:3.11
    command:
      - python steps/generate_harbors.py generate {{parameters}}
    parameters:
      - name: harbors
        type: string
        default: [harbor_A, harbor_B]
        multiple: separate
        multiple-separator: ","
      - name: image_size
        type: integer
        default: 64
        min: 16
      - name: images_per_class
        type: integer
        default: 150
        min: 4
      - name: test_images_per_harbor
        type: integer
        default: 50
        min: 1
      - name: seed
        type: integer
        default: 42
- step:
    name: preprocess-dataset
    image: python:3.11
    command:
      - sh steps/preprocess_dataset.sh {{parameters}}
    inputs:
      - name: dataset
      - name: labels
    parameters:
      - name: dataset_name
        type: string
        default: harbor_A
      - name: validation_split
        type: float
        default: 0.3
      - name: image_size
        type: integer
        default: 64
- step:
    name: train
    image: python:3.11
    command:
      - sh steps/train.sh --sleep={sleep} --epoch_seconds={epoch_seconds} {{parameters}}
    inputs:
      - name: dataset
        default: dataset://{{parameter:dataset_name}}_train/latest
    parameters:
      - name: dataset_name
        type: string
        default: harbor_A
      - name: epochs
        type: integer
        default: 5
        min: 1
      - name: learning_rate
        type: float
        default: 0.001
      - name: batch_size
        type: integer
        default: 16
      - name: seed
        type: integer
        default: 42
- step:
    name: predict-models
    image: python:3.11
    command:
      - python steps/predict_models.py predict {{parameters}}
    inputs:
      - name: dataset
        default:
          - dataset://harbor_A_test/latest
      - name: models
        optional: true
      - name: test_labels
        optional: true
    parameters:
      - name: exec_ids
        type: string
        optional: true
        multiple: separate
        multiple-separator: ","
      - name: harbours
        type: string
        default: [harbor_A, harbor_B]
        multiple: separate
        multiple-separator: ","
      - name: reused_cells
        type: string
        optional: true
        multiple: separate
        multiple-separator: ","
- pipeline:
    name: training-pipeline
    nodes:
      - name: preprocess
        type: execution
        step: preprocess-dataset
      - name: train
        type: execution
        step: train
    edges:
      - [preprocess.metadata.run_training_for, train.parameter.dataset_name]
      - [preprocess.output.train/*, train.input.dataset]
"""

PULUMI_YAML = """\
name: {name}
runtime: python
main: program/
options:
  refresh: always
"""

SWEEP_PROGRAM = """\
from pathlib import Path
from stacks.program import build_stack

build_stack(Path(__file__).resolve().parent.parent)
"""


def write_stand_in_project(root: Path, *, sleep: float = 0, epoch_seconds: float = 0) -> Path:
    """The stand-in project under `root`: valohai.yaml, one script per step, Pulumi.yaml and `program/`
    (a Pulumi program calling build_stack(root)). `train` sleeps `sleep` s plus `epoch_seconds` per epoch."""
    (root / "steps").mkdir(parents=True, exist_ok=True)
    (root / "program").mkdir(exist_ok=True)
    for script, text in SCRIPTS.items():
        (root / script).write_text(text)
    (root / "valohai.yaml").write_text(VALOHAI_YAML.format(sleep=sleep, epoch_seconds=epoch_seconds))
    (root / "Pulumi.yaml").write_text(PULUMI_YAML.format(name=PROJECT_NAME))
    (root / "program" / "__main__.py").write_text(SWEEP_PROGRAM)
    return root
