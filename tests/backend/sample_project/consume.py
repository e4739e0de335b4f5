"""Reads its input and parameter through valohai-utils, exactly as a real step would."""

import json
import os
from pathlib import Path

import valohai

harbor = valohai.parameters("harbor").value
paths = list(valohai.inputs("data").paths())
rows = sum(len(Path(p).read_text().splitlines()) for p in paths)
print(f"harbor={harbor} files={len(paths)} rows={rows}")
print(json.dumps({"harbor_seen": harbor, "rows_seen": rows}))
with open(os.path.join(os.environ["VH_OUTPUTS_DIR"], "summary.json"), "w") as fh:
    json.dump({"harbor": harbor, "rows": rows, "inputs": [os.path.basename(p) for p in paths]}, fh)
