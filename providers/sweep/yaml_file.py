"""Parsing valohai.yaml with valohai-yaml, validated against valohai-yaml's own schema, without its start-up cost.

Why not plain `valohai_yaml.parse`: before its first validation, valohai-yaml checks its bundled schema against
the JSON Schema meta-schema (valohai_yaml/validation.py `get_validator`, `Draft202012Validator.check_schema`),
~0.3 s of CPU on this machine, once per process. The program pays that before it can declare anything, on the
critical path of every `pulumi preview` and `up` (bench/README.md, "No-change preview cost"). The schema ships
with the library and is tested there; re-checking it here finds nothing. Everything else is valohai-yaml's:
the schema (`get_json_schema`), the validation errors (`ValidationErrors`, as `validate` raises them) and the
parsing (`parse(..., validate=False)` after the same validation).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from valohai_yaml.objs import Config


@functools.cache
def _validator() -> Draft202012Validator:
    """The validator valohai-yaml's `get_validator` builds, minus its check of the schema itself."""
    from jsonschema import Draft202012Validator
    from valohai_yaml.validation import get_json_schema

    return Draft202012Validator(get_json_schema())


def parse_config(text: Any) -> Config:
    """valohai.yaml's text (or a parsed document) as valohai-yaml's `Config`; raises valohai-yaml's
    `ValidationErrors` when it does not follow the schema, like `valohai_yaml.parse`."""
    import valohai_yaml
    from valohai_yaml import objs
    from valohai_yaml.excs import ValidationErrors
    from valohai_yaml.utils import read_yaml

    data = read_yaml(text)
    if data is None:  # an empty file, as valohai_yaml.parse reads it
        return objs.Config()
    errors = list(_validator().iter_errors(data))
    if errors:
        raise ValidationErrors(errors)
    return valohai_yaml.parse(data, validate=False)
