"""The harbor-name rule, defined once for the steps and the stack config.

A harbor name becomes part of file names (`train_<harbor>.csv`), dataset names (`dataset://<harbor>_train`)
and node names, so it is limited to letters, digits, `_`, `-` and `.`, starts with a letter or digit and
has at most 64 characters. Standard library only: the steps import it as `harbor_names` (they put their
own folder on `sys.path`), the providers as `steps.harbor_names`.
"""

from __future__ import annotations

import re

HARBOR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def is_harbor_name(name: str) -> bool:
    """True when `name` may name a harbor."""
    return bool(HARBOR_NAME.match(name))
