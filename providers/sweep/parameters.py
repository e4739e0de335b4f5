"""The sweep's parameters as valohai.yaml declares them: type, default and allowed range (min/max).

Why read them from valohai.yaml: the steps, Valohai (and the local backend, which validates a submitted
value with valohai-yaml's `Parameter.validate`) and the stack config then take the same defaults and
ranges from one file, so they cannot disagree. valohai-yaml is imported on first use only (the providers
must import fast), and the file is parsed once per process.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from valohai_yaml.objs import Config

VALOHAI_YAML = Path(__file__).resolve().parents[2] / "valohai.yaml"
KINDS: dict[str, type] = {"integer": int, "float": float}

# Stack config key -> (step, parameter) in valohai.yaml. The training values are shared by every cell;
# validation_split belongs to preprocess-dataset, and image_size goes to both generate-harbors and
# preprocess-dataset (its range is generate-harbors').
TRAINING: dict[str, tuple[str, str]] = {
    "learning_rate": ("train", "learning_rate"),
    "batch_size": ("train", "batch_size"),
    "validation_split": ("preprocess-dataset", "validation_split"),
}
DATA: dict[str, tuple[str, str]] = {
    "image_size": ("generate-harbors", "image_size"),
    "images_per_class": ("generate-harbors", "images_per_class"),
    "test_images_per_harbor": ("generate-harbors", "test_images_per_harbor"),
    "seed": ("generate-harbors", "seed"),
}
EPOCHS = ("train", "epochs")


@dataclass(frozen=True)
class ParameterSpec:
    """One numeric parameter: the Python type a value must have, its range (inclusive) and default."""

    kind: type
    low: float
    high: float
    default: Any


@functools.cache
def project_config() -> Config:
    """The project's valohai.yaml, parsed once."""
    from providers.sweep.yaml_file import parse_config

    return parse_config(VALOHAI_YAML.read_text())


def parameter_spec(step: str, name: str) -> ParameterSpec:
    """Type, range and default of one step parameter; valohai.yaml must give it a type, min and max."""
    try:
        parameter = project_config().steps[step].parameters[name]
    except KeyError:
        raise ValueError(f"valohai.yaml has no parameter {name!r} in step {step!r}; the sweep needs it") from None
    kind = KINDS.get(parameter.type)
    if kind is None or parameter.min is None or parameter.max is None:
        raise ValueError(
            f"valohai.yaml: parameter {name!r} of step {step!r} needs type integer or float, a min and a max "
            f"(they are the range the stack config accepts)"
        )
    return ParameterSpec(kind, kind(parameter.min), kind(parameter.max), parameter.default)


def _specs(keys: dict[str, tuple[str, str]]) -> dict[str, ParameterSpec]:
    return {key: parameter_spec(step, name) for key, (step, name) in keys.items()}


@functools.cache
def training_parameters() -> dict[str, ParameterSpec]:
    """The `training` stack config keys."""
    return _specs(TRAINING)


@functools.cache
def data_parameters() -> dict[str, ParameterSpec]:
    """The `data` stack config keys (sizes and seed of the generated data)."""
    return _specs(DATA)


def epochs_parameter() -> ParameterSpec:
    return parameter_spec(*EPOCHS)


def defaults(specs: dict[str, ParameterSpec]) -> dict[str, Any]:
    """Stack config key -> valohai.yaml's default."""
    return {key: spec.default for key, spec in specs.items()}
