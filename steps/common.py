"""Helpers shared by the ML steps: categories, parameter defaults and reading, inputs, image decoding, errors.

Every step imports this module after putting its own directory on ``sys.path``, so each step file
still runs standalone as ``python steps/<step>.py --param=value`` from any working directory.

Nothing here imports TensorFlow: steps validate their parameters first, so a bad parameter costs
no TensorFlow start-up and leaves exactly one line on stderr.
"""

from __future__ import annotations

import functools
import io
import json
import os
import sys
import zipfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any

# TensorFlow's C++ start-up chatter goes to stderr; keep stderr for our own messages.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import valohai
from harbor_names import is_harbor_name
from PIL import Image

# The seed's categories: the number is the label in the CSV files, index = number - 1 in one-hot arrays.
CATEGORIES: dict[int, str] = {1: "Cargo", 2: "Military", 3: "Carrier", 4: "Cruise", 5: "Tankers"}
NUM_CLASSES = len(CATEGORIES)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
# The project's valohai.yaml: next to the steps folder here, in a Valohai repository and in a code package.
VALOHAI_YAML = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "valohai.yaml")


class StepError(Exception):
    """A problem the user can fix; reported as one line on stderr, exit code 2, no traceback."""


def run_step(main: Callable[[], None]) -> None:
    """Run a step's ``main`` and turn a ``StepError`` into one clear stderr line and exit code 2."""
    try:
        main()
    except StepError as exc:
        sys.stdout.flush()
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


# --- parameters ---------------------------------------------------------------------------------


def yaml_defaults(step: str) -> dict[str, Any]:
    """The step's parameter defaults as valohai.yaml declares them, so a step run by hand, Valohai and the
    stack config (``providers/sweep/parameters.py`` reads the same file) use the same values.

    valohai-yaml is a dependency of valohai-utils, so it is installed wherever the steps run.
    """
    import valohai_yaml

    with open(VALOHAI_YAML, encoding="utf-8") as fh:
        config = valohai_yaml.parse(fh.read())
    return {name: spec.default for name, spec in config.steps[step].parameters.items()}


def parameter(name: str, default: Any = None) -> Any:
    """A parameter value: CLI ``--name=value`` > ``parameters.json`` > the ``prepare()`` default > ``default``.

    ``parameters.json`` replaces the ``prepare()`` defaults wholesale (valohai-utils behaviour), so a
    parameter missing from it (an optional one left empty) falls back to ``default`` here.
    """
    return valohai.parameters(name, default).value


def as_list(value: Any) -> list[str]:
    """A multi-value parameter as a list of non-empty strings.

    Accepts what the different runners hand over: a list (parameters.json), a comma-separated string
    (``multiple: separate`` on the command line), ``None`` or ``""`` (optional and not given).
    """
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    out: list[str] = []
    for item in items:
        out.extend(part.strip() for part in str(item).split(",") if part.strip())
    return out


def as_int(name: str, value: Any, minimum: int, hint: str = "") -> int:
    try:
        number = int(value)
        if number != float(value):
            raise ValueError
    except (TypeError, ValueError):
        raise StepError(f"parameter {name}={value!r} is not an integer: pass --{name}=<integer ≥ {minimum}>") from None
    if number < minimum:
        raise StepError(f"parameter {name}={number} is too small: pass --{name}=<integer ≥ {minimum}>{hint}")
    return number


def as_float(name: str, value: Any, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise StepError(
            f"parameter {name}={value!r} is not a number: pass --{name}=<number in ({low}, {high})>"
        ) from None
    if not low < number < high:
        raise StepError(f"parameter {name}={number} is out of range: pass --{name}=<number in ({low}, {high})>")
    return number


def check_harbor_name(name: str, parameter_name: str) -> str:
    """The name, if it follows the harbor-name rule (``steps/harbor_names.py``); else a ``StepError``."""
    if not is_harbor_name(name):
        raise StepError(
            f"harbor name {name!r} in {parameter_name} is not usable in file names: "
            "use letters, digits, '_', '-', '.' (for example harbor_A)"
        )
    return name


# --- inputs and outputs ---------------------------------------------------------------------------


def input_files(name: str) -> list[str]:
    """Paths of every file of input ``name``, archives left as they are.

    valohai-utils resolves ``inputs.json`` (Valohai, the local backend) and ``--name path…`` (plain
    local runs, globs allowed). When neither names a file, the input directory itself is listed, the
    way the seed's scripts read ``/valohai/inputs/<name>/*``.
    """
    paths = [p for p in valohai.inputs(name).paths(process_archives=False) if os.path.isfile(p)]
    if not paths:
        from valohai.paths import get_inputs_path

        directory = get_inputs_path(name)
        if os.path.isdir(directory):
            for root, _dirs, files in os.walk(directory):
                paths.extend(os.path.join(root, f) for f in files)
    return sorted(dict.fromkeys(paths), key=lambda p: (os.path.basename(p), p))


def output_path(relative: str) -> str:
    """Absolute path of an output file (directories created), e.g. ``output_path("train/x.npz")``."""
    return valohai.outputs().path(relative)


def write_json(path: str, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")


def write_sidecar(path: str, metadata: dict[str, Any]) -> None:
    """Valohai output metadata: ``<file>.metadata.json`` next to the output file."""
    write_json(path + ".metadata.json", metadata)


def execution_id() -> str:
    """This execution's id: ``execution.json`` (Valohai, local backend), ``$VH_EXECUTION_ID``, else a local id."""
    config = valohai.execution().config
    if config and config.id:
        return str(config.id)
    if os.environ.get("VH_EXECUTION_ID"):
        return os.environ["VH_EXECUTION_ID"]
    from valohai.internals.guid import get_execution_guid

    return f"local-{get_execution_guid()}"


def print_metadata(**values: Any) -> None:
    """One JSON object on its own stdout line: Valohai records it as execution metadata."""
    print(json.dumps(values), flush=True)


# --- images ---------------------------------------------------------------------------------------


def iter_image_bytes(paths: Iterable[str]) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """``(flat file name, loader)`` for every image in the given files.

    Zip archives (the seed's ``images.zip``) are read member by member without unpacking them to
    disk; loose image files are taken as they are. Names are flattened to the base name, as the
    labels CSVs use base names. The loader is lazy so unlabelled images that are never used are never read.
    """
    for path in paths:
        lower = path.lower()
        if lower.endswith(".zip"):
            archive = zipfile.ZipFile(path)
            for info in archive.infolist():
                base = os.path.basename(info.filename)
                if info.is_dir() or not base.lower().endswith(IMAGE_EXTENSIONS) or base.startswith("._"):
                    continue
                yield base, functools.partial(archive.read, info)
        elif lower.endswith(IMAGE_EXTENSIONS):
            yield os.path.basename(path), functools.partial(_read_bytes, path)


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def decode_resized(data: bytes, size: int) -> np.ndarray:
    """Decode one image to RGB uint8 ``(size, size, 3)``; JPEG draft mode makes big photos cheap to shrink."""
    with Image.open(io.BytesIO(data)) as img:
        if img.format == "JPEG":
            img.draft("RGB", (size, size))
        img = img.convert("RGB")
        if img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(img, dtype=np.uint8)


def decode_batch(loaders: list[Callable[[], bytes]], size: int) -> np.ndarray:
    """Decode and resize into one preallocated ``(n, size, size, 3)`` uint8 array."""
    out = np.empty((len(loaders), size, size, 3), dtype=np.uint8)
    for i, load in enumerate(loaders):
        out[i] = decode_resized(load(), size)
    return out


def read_labels_csv(path: str) -> dict[str, int]:
    """The seed's labels format: header ``image,category``, category 1-5. Raises ``StepError`` on bad rows."""
    import csv

    labels: dict[str, int] = {}
    name = os.path.basename(path)
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None:  # an empty file: no rows
            return labels
        if not {"image", "category"} <= {f.strip() for f in reader.fieldnames}:
            raise StepError(f"{name} has no 'image,category' header: give a CSV in the seed format (image,category)")
        for line, row in enumerate(reader, start=2):
            image = (row.get("image") or "").strip()
            try:
                category = int(str(row.get("category")).strip())
            except ValueError:
                category = -1
            if not image or category not in CATEGORIES:
                raise StepError(f"{name} line {line}: expected image,<category 1-5>, got {row}: fix the CSV")
            labels[image] = category
    return labels


# --- TensorFlow -----------------------------------------------------------------------------------


def configure_tensorflow(seed: int | None) -> None:
    """Seed every RNG Keras uses and size TensorFlow's thread pools.

    ``TF_NUM_INTRAOP_THREADS`` / ``TF_NUM_INTEROP_THREADS`` are honoured (the local backend runs
    several steps at once on a few cores and can lower them); otherwise intra-op uses every core and
    inter-op 2, which is what a small CNN on CPU wants.
    """
    import keras
    import tensorflow as tf

    intra = int(os.environ.get("TF_NUM_INTRAOP_THREADS") or os.cpu_count() or 1)
    inter = int(os.environ.get("TF_NUM_INTEROP_THREADS") or 2)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:  # already initialised (e.g. imported by a benchmark): keep what is set
        pass
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
