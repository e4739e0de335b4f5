"""valohai.yaml parsed without valohai-yaml's schema self-check (providers/sweep/yaml_file.py): the same `Config`
and the same errors as `valohai_yaml.parse`."""

from __future__ import annotations

from pathlib import Path

import pytest
import valohai_yaml
from valohai_yaml.excs import ValidationErrors

from providers.sweep.yaml_file import parse_config

REPO_YAML = Path(__file__).resolve().parents[2] / "valohai.yaml"


def test_the_projects_file_parses_as_valohai_yaml_parses_it():
    text = REPO_YAML.read_text()
    assert parse_config(text).serialize() == valohai_yaml.parse(text).serialize()


@pytest.mark.parametrize(
    "text",
    [
        "step: [1]",  # not a list of items
        "- step: {name: x}",  # no image, no command
        "- step: {name: x, image: python:3.11, command: echo, parameters: [{name: p, type: nope}]}",
        "- pipeline: {name: p, nodes: 3, edges: []}",
    ],
)
def test_an_invalid_file_raises_what_valohai_yaml_raises(text):
    with pytest.raises(ValidationErrors) as ours:
        parse_config(text)
    with pytest.raises(ValidationErrors) as theirs:
        valohai_yaml.parse(text)
    assert [e.message for e in ours.value] == [e.message for e in theirs.value]
    assert str(ours.value) == str(theirs.value)


def test_an_empty_file_is_an_empty_config():
    assert parse_config("").serialize() == valohai_yaml.parse("").serialize()
