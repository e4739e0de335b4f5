"""The sweep as a small typed model: what the user declared, validated once, with errors that name the
key and the fix. Pure: no I/O, no Pulumi, so it is tested directly and used by the program and by the
providers' `check` alike."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from providers.client import dumps_stable

MODES = ("parallel", "single")
HARBOR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_CELLS = 500

# Training parameters shared by every cell, with their type and allowed range.
TRAIN_PARAMETERS: dict[str, tuple[type, float, float]] = {
    "learning_rate": (float, 1e-6, 1.0),
    "batch_size": (int, 1, 4096),
    "validation_split": (float, 0.05, 0.9),
}
DEFAULT_TRAIN_PARAMETERS = {"learning_rate": 0.001, "batch_size": 32, "validation_split": 0.3}

# Sizes of the generated data.
DATA_PARAMETERS: dict[str, tuple[type, float, float]] = {
    "image_size": (int, 16, 256),
    "images_per_class": (int, 4, 5000),
    "test_images_per_harbor": (int, 1, 2000),
    "seed": (int, 0, 2**31 - 1),
}
DEFAULT_DATA_PARAMETERS = {"image_size": 48, "images_per_class": 60, "test_images_per_harbor": 30, "seed": 42}


class SweepConfigError(ValueError):
    """A stack config value is wrong; the message names the key and how to fix it."""


@dataclass(frozen=True)
class Cell:
    """One sweep cell: one harbor trained for one number of epochs."""

    harbor: str
    epochs: int

    @property
    def name(self) -> str:
        """The cell's name in outputs and resource names: `harbor_A/epochs-2`."""
        return f"{self.harbor}/epochs-{self.epochs}"

    @property
    def slug(self) -> str:
        """The cell's name where `/` is not allowed (Pulumi resource names, node names)."""
        return f"{self.harbor}-epochs-{self.epochs}"

    @property
    def title(self) -> str:
        """Pipeline title, as the seed names its pipelines."""
        return f"training-pipeline-{self.harbor}-epochs-{self.epochs}"


@dataclass(frozen=True)
class Sweep:
    harbors: tuple[str, ...]
    epochs: tuple[int, ...]
    mode: str = "parallel"
    train: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_TRAIN_PARAMETERS))
    data: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_DATA_PARAMETERS))
    wait_timeout_minutes: float = 120.0

    @property
    def cells(self) -> list[Cell]:
        return [Cell(h, e) for h in self.harbors for e in self.epochs]


def _list_of(value: Any, key: str, example: str) -> list[Any]:
    """Accept a YAML list or a comma-separated string (`harbor_A,harbor_B`)."""
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise SweepConfigError(f"{key} must be a list such as {example}, got {value!r}")
    if not items or any(i in ("", None) for i in items):
        raise SweepConfigError(f"{key} must list at least one value and no empty ones, e.g. {example}; got {value!r}")
    return items


def _number(value: Any, key: str, kind: type, low: float, high: float) -> Any:
    if isinstance(value, bool):
        raise SweepConfigError(f"{key} must be a number between {low} and {high}, got {value!r}")
    try:
        number = kind(value)
        if kind is int and (isinstance(value, float) and not value.is_integer() or
                            isinstance(value, str) and not re.fullmatch(r"\s*-?\d+\s*", value)):
            raise ValueError
    except (TypeError, ValueError):
        raise SweepConfigError(f"{key} must be {'a whole number' if kind is int else 'a number'} "
                               f"between {low:g} and {high:g}, got {value!r}") from None
    if not low <= number <= high:
        raise SweepConfigError(f"{key} must be between {low:g} and {high:g}, got {number!r}")
    return number


def parse_harbors(value: Any) -> tuple[str, ...]:
    harbors = [str(h).strip() for h in _list_of(value, "harbors", "[harbor_A, harbor_B]")]
    for h in harbors:
        if not HARBOR_NAME.match(h):
            raise SweepConfigError(f"harbors: {h!r} is not a valid harbor name: use letters, digits, '_', '-' or '.' "
                                   f"(it names datasets such as dataset://{'<harbor>'}_train)")
    dupes = sorted({h for h in harbors if harbors.count(h) > 1})
    if dupes:
        raise SweepConfigError(f"harbors lists {', '.join(dupes)} more than once: each harbor may appear once")
    return tuple(harbors)


def parse_epochs(value: Any) -> tuple[int, ...]:
    epochs = [_number(e, "epochs", int, 1, 1000) for e in _list_of(value, "epochs", "[2, 5]")]
    dupes = sorted({e for e in epochs if epochs.count(e) > 1})
    if dupes:
        raise SweepConfigError(f"epochs lists {', '.join(map(str, dupes))} more than once: duplicate cells are not allowed")
    return tuple(epochs)


def _parameters(value: Optional[Mapping[str, Any]], spec: dict, defaults: dict, key: str) -> dict[str, Any]:
    given = dict(value or {})
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise SweepConfigError(f"{key} has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(spec))}")
    merged = {**defaults, **given}
    return {k: _number(merged[k], f"{key}.{k}", *spec[k]) for k in sorted(spec)}


def parse_sweep(raw: Mapping[str, Any]) -> Sweep:
    """Build a Sweep from stack config values (already decoded from YAML/JSON)."""
    if raw.get("harbors") is None:
        raise SweepConfigError("harbors is not set: run `pulumi config set --path 'harbors[0]' harbor_A`")
    if raw.get("epochs") is None:
        raise SweepConfigError("epochs is not set: run `pulumi config set --path 'epochs[0]' 2`")
    mode = raw.get("mode") or "parallel"
    if mode not in MODES:
        raise SweepConfigError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    sweep = Sweep(
        harbors=parse_harbors(raw["harbors"]),
        epochs=parse_epochs(raw["epochs"]),
        mode=mode,
        train=_parameters(raw.get("training"), TRAIN_PARAMETERS, DEFAULT_TRAIN_PARAMETERS, "training"),
        data=_parameters(raw.get("data"), DATA_PARAMETERS, DEFAULT_DATA_PARAMETERS, "data"),
        wait_timeout_minutes=_number(raw.get("wait_timeout_minutes", 120), "wait_timeout_minutes", float, 0.1, 7 * 24 * 60),
    )
    if len(sweep.cells) > MAX_CELLS:
        raise SweepConfigError(f"the sweep has {len(sweep.cells)} cells (harbors x epochs); at most {MAX_CELLS} are allowed")
    return sweep


def content_key(*parts: Any) -> str:
    """A deterministic key for anything built from JSON-like parts (cells, datasets, payloads)."""
    return hashlib.sha256(dumps_stable(parts).encode()).hexdigest()
