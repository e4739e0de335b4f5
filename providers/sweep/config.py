"""The sweep as a small typed model: what the user declared, validated once, with errors that name the
key and the fix. No Pulumi and no HTTP, so it is tested directly and used by the program and the
providers' `check` alike. Defaults and ranges of the parameters come from valohai.yaml
(`providers.sweep.parameters`); the harbor-name rule from `steps/harbor_names.py`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from providers.sweep.parameters import (
    ParameterSpec,
    data_parameters,
    defaults,
    epochs_parameter,
    training_parameters,
)
from providers.sweep.step_settings import StepSettingsError, parse_step_settings
from steps.harbor_names import is_harbor_name

MODES = ("parallel", "single")
MAX_CELLS = 1000  # the largest sweep measured (bench/nochange_preview.py, bench/sweep_overhead.py)
WAIT_TIMEOUT_MINUTES = (0.1, 7 * 24 * 60)  # range of wait_timeout_minutes (default 120)
POLL_INTERVAL_SECONDS = (0.05, 600)  # range of poll_interval_seconds (default: providers/resources/polling.py)
ON_END_EARLY = ("leave", "stop")  # on_cancel / on_timeout: what becomes of unfinished work


class SweepConfigError(ValueError):
    """A stack config value is wrong; the message names the key and how to fix it."""


def _shown(value: Any, limit: int = 80) -> str:
    """A value as the one-line error shows it: its repr, cut short (a pasted 10 MB list stays one line)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _kind(value: Any) -> str:
    """What the user gave, in YAML words: `a list`, `a mapping`, `a string`."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (int, float)):
        return "a number"
    return type(value).__name__


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
    """The whole declared sweep; `train` and `data` default to valohai.yaml's defaults."""

    harbors: tuple[str, ...]
    epochs: tuple[int, ...]
    mode: str = "parallel"
    train: Mapping[str, Any] = field(default_factory=lambda: defaults(training_parameters()))
    data: Mapping[str, Any] = field(default_factory=lambda: defaults(data_parameters()))
    wait_timeout_minutes: float = 120.0
    steps: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # per-step execution settings
    poll_interval_seconds: float | None = None  # None: fast for a loopback host, 5 s for any other
    reuse: bool = True  # nodes whose content key completed before become mimic nodes (providers.sweep.reuse)
    force_rerun: tuple[str, ...] = ()  # cell names whose nodes are never reused
    on_cancel: str = "leave"
    min_success_ratio: float = 1.0
    budget_execution_minutes: float | None = None
    on_timeout: str = "leave"

    def step_settings(self, step: str) -> dict[str, Any]:
        """The execution settings stack config gives `step` (providers/sweep/step_settings.py); {} if none."""
        return dict(self.steps.get(step, {}))

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
        raise SweepConfigError(f"{key} must be a list such as {example}, got {_kind(value)}: {_shown(value)}")
    if not items or any(i in ("", None) for i in items):
        raise SweepConfigError(
            f"{key} must list at least one value and no empty ones, e.g. {example}; got {_shown(value)}"
        )
    nested = next((i for i in items if isinstance(i, (Mapping, list, tuple))), None)
    if nested is not None:
        raise SweepConfigError(
            f"{key} must be a flat list such as {example}; one item is {_kind(nested)}: {_shown(nested)}"
        )
    return items


def _number(value: Any, key: str, kind: type, low: float, high: float) -> Any:
    if isinstance(value, bool):
        raise SweepConfigError(f"{key} must be a number between {low:g} and {high:g}, got {value!r}")
    try:
        number = kind(value)
        if kind is int and (
            (isinstance(value, float) and not value.is_integer())
            or (isinstance(value, str) and not re.fullmatch(r"\s*-?\d+\s*", value))
        ):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise SweepConfigError(
            f"{key} must be {'a whole number' if kind is int else 'a number'} between {low:g} and {high:g}, "
            f"got {_shown(value)}"
        ) from None
    if not low <= number <= high:
        raise SweepConfigError(f"{key} must be between {low:g} and {high:g}, got {number!r}")
    return number


def _declared(value: Any, key: str, spec: ParameterSpec) -> Any:
    """A value of a parameter valohai.yaml declares, checked against its type and range."""
    return _number(value, key, spec.kind, spec.low, spec.high)


def parse_harbors(value: Any) -> tuple[str, ...]:
    harbors = [str(h).strip() for h in _list_of(value, "harbors", "[harbor_A, harbor_B]")]
    for h in harbors:
        if not is_harbor_name(h):
            raise SweepConfigError(
                f"harbors: {_shown(h)} is not a valid harbor name: use letters, digits, '_', '-' or '.' "
                f"(it names datasets such as dataset://<harbor>_train)"
            )
    dupes = sorted({h for h in harbors if harbors.count(h) > 1})
    if dupes:
        raise SweepConfigError(f"harbors lists {', '.join(dupes)} more than once: each harbor may appear once")
    return tuple(harbors)


def parse_epochs(value: Any) -> tuple[int, ...]:
    spec = epochs_parameter()
    epochs = [_declared(e, "epochs", spec) for e in _list_of(value, "epochs", "[2, 5]")]
    dupes = sorted({e for e in epochs if epochs.count(e) > 1})
    if dupes:
        raise SweepConfigError(
            f"epochs lists {', '.join(map(str, dupes))} more than once: duplicate cells are not allowed"
        )
    return tuple(epochs)


def _parameters(value: Any, specs: dict[str, ParameterSpec], key: str) -> dict[str, Any]:
    if value is not None and not isinstance(value, Mapping):
        example = ", ".join(f"{k}: {v}" for k, v in defaults(specs).items())
        raise SweepConfigError(
            f"{key} must be a mapping such as {{{example}}}, got {_kind(value)}: {_shown(value)}; "
            f"set one value with `pulumi config set --path '{key}.<name>' <value>`"
        )
    given = dict(value or {})
    unknown = sorted(str(k) for k in set(given) - set(specs))
    if unknown:
        raise SweepConfigError(f"{key} has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(specs))}")
    merged = {**defaults(specs), **given}
    return {k: _declared(merged[k], f"{key}.{k}", specs[k]) for k in sorted(specs)}


def parse_reuse(value: Any) -> bool:
    """`reuse`: true (default) or false; `pulumi config set reuse false` stores the string."""
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise SweepConfigError(f"reuse must be true or false, got {_shown(value)}: run `pulumi config set reuse false`")


def parse_force_rerun(value: Any, cells: list[Cell]) -> tuple[str, ...]:
    """`force_rerun`: cell names (`harbor_A/epochs-2`) of this sweep whose nodes are never reused."""
    if value is None:
        return ()
    names = [str(n).strip() for n in _list_of(value, "force_rerun", "[harbor_A/epochs-2]")]
    known = [c.name for c in cells]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SweepConfigError(
            f"force_rerun names {', '.join(unknown)}, not a cell of this sweep; cells are {', '.join(known)}"
        )
    return tuple(dict.fromkeys(names))


def parse_sweep(raw: Mapping[str, Any]) -> Sweep:
    """Build a Sweep from stack config values (already decoded from YAML/JSON)."""
    if raw.get("harbors") is None:
        raise SweepConfigError("harbors is not set: run `pulumi config set --path 'harbors[0]' harbor_A`")
    if raw.get("epochs") is None:
        raise SweepConfigError("epochs is not set: run `pulumi config set --path 'epochs[0]' 2`")
    mode = raw.get("mode") or "parallel"
    try:
        steps = parse_step_settings(raw.get("steps"))
    except StepSettingsError as exc:
        raise SweepConfigError(str(exc)) from None
    if mode not in MODES:
        raise SweepConfigError(f"mode must be one of {', '.join(MODES)}, got {_shown(mode)}")
    sweep = Sweep(
        harbors=parse_harbors(raw["harbors"]),
        epochs=parse_epochs(raw["epochs"]),
        mode=mode,
        train=_parameters(raw.get("training"), training_parameters(), "training"),
        data=_parameters(raw.get("data"), data_parameters(), "data"),
        wait_timeout_minutes=_number(
            raw.get("wait_timeout_minutes", 120), "wait_timeout_minutes", float, *WAIT_TIMEOUT_MINUTES
        ),
        steps=steps,
        poll_interval_seconds=None
        if raw.get("poll_interval_seconds") is None
        else _number(raw["poll_interval_seconds"], "poll_interval_seconds", float, *POLL_INTERVAL_SECONDS),
        reuse=parse_reuse(raw.get("reuse")),
        on_cancel=raw.get("on_cancel") or "leave",
        budget_execution_minutes=None
        if raw.get("budget_execution_minutes") is None
        else _number(raw["budget_execution_minutes"], "budget_execution_minutes", float, 0.01, 10**7),
        min_success_ratio=_number(raw.get("min_success_ratio", 1.0), "min_success_ratio", float, 0.01, 1.0),
        on_timeout=raw.get("on_timeout") or "leave",
    )
    for key in ("on_cancel", "on_timeout"):
        if (raw.get(key) or "leave") not in ON_END_EARLY:
            raise SweepConfigError(
                f"{key} must be leave (unfinished work keeps running) or stop, got {_shown(raw.get(key))}"
            )
    if sweep.min_success_ratio < 1 and sweep.mode != "parallel":
        raise SweepConfigError(
            "min_success_ratio below 1 needs mode: parallel (in single mode the predict node runs only "
            "when every cell completed); set mode: parallel or remove min_success_ratio"
        )
    if len(sweep.cells) > MAX_CELLS:
        raise SweepConfigError(
            f"the sweep has {len(sweep.cells)} cells (harbors x epochs); at most {MAX_CELLS} are allowed"
        )
    if raw.get("force_rerun") is not None:
        sweep = replace(sweep, force_rerun=parse_force_rerun(raw["force_rerun"], sweep.cells))
    return sweep
