"""Writes one data file per run, adds it to a dataset version, and logs metadata."""

import argparse
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("--harbor", default="alpha")
parser.add_argument("--count", type=int, default=2)
args = parser.parse_args()

outputs = os.environ["VH_OUTPUTS_DIR"]
path = os.path.join(outputs, f"data-{args.harbor}.txt")
with open(path, "w") as fh:
    fh.write("".join(f"row {i}\n" for i in range(args.count)))
with open(path + ".metadata.json", "w") as fh:
    json.dump({"valohai.dataset-versions": [f"dataset://{args.harbor}_train/v1"], "rows": args.count}, fh)
os.makedirs(os.path.join(outputs, "extra"), exist_ok=True)
with open(os.path.join(outputs, "extra", "notes.md"), "w") as fh:
    fh.write("not matched by the edge glob\n")
print(json.dumps({"progress": 0.5}))
print(json.dumps({"run_for": args.harbor, "progress": 1.0}))
