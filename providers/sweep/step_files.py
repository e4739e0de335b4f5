"""Which files a step runs: the script in its command and the project's own modules it imports.

A node's content key (`providers.sweep.identity.node_identity`) hashes these files, so a comment added to
`steps/predict_models.py` changes only the prediction's key, and `steps/common.py` (imported by every
step) changes every key. Found statically with `ast`, recursively, keeping only files inside the project
root: third-party and standard-library imports are the image's business, not the step's identity.

A script's own folder comes first when an import is resolved (Python puts it on `sys.path` when it runs
`python steps/x.py`; the steps also insert it themselves), then the project root.

A command line runs a script when it is `python <file>.py …` or `sh|bash|dash <file> …`, the interpreter's own
options skipped (`python -u -X dev steps/x.py`, `bash -e -o pipefail run.sh`); a shell script is hashed as a
file (what it calls in turn is not followed). Per-step override: a step whose command runs neither (`python -m
…`, a binary) must list its files in `STEP_FILES` (step name -> paths relative to the project root); those
files are then hashed, with the imports of the `.py` files among them followed as usual.

Files a script reads rather than imports are invisible to `ast`: `READS` lists them per script.
`steps/ensure_requirements.py`, the first command of every step (valohai.yaml), installs
`steps/requirements.txt`, so changing a pin changes every node's key and the plan says
`steps/requirements.txt changed` (providers/sweep/explain.py `file_changes`).
"""

from __future__ import annotations

import ast
import hashlib
import re
import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path

# step name -> files it runs, for commands that are not `python <file>.py`; empty for this project's steps.
STEP_FILES: dict[str, tuple[str, ...]] = {}
# script (relative to the project root) -> the project files it reads at run time.
READS: dict[str, tuple[str, ...]] = {"steps/ensure_requirements.py": ("steps/requirements.txt",)}

_PYTHON = re.compile(r"^python(\d+(\.\d+)?)?$")
_SHELL = re.compile(r"^(sh|bash|dash)$")
# interpreter options whose value is the next word (`python -X dev`, `python -W error`, `bash -o pipefail`)
_OPTIONS_WITH_VALUE = {"python": {"-X", "-W", "--check-hash-based-pycs"}, "shell": {"-o", "+o", "-O", "+O"}}
# words that may come before a command (`exec sh run.sh`, `FOO=1 bash run.sh`)
_PREFIXES = {"exec", "nohup", "time", "env", "command"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# options after which the interpreter runs no file: a module or a command string
_NO_SCRIPT = {"-m", "-c"}


def _script_after(interpreter: str, words: list[str]) -> str | None:
    """The script an interpreter's words run (`-u steps/x.py {parameters}` -> steps/x.py), or None."""
    remaining = iter(words)
    for word in remaining:
        if word in _NO_SCRIPT or word == "-":
            return None
        if word in _OPTIONS_WITH_VALUE[interpreter]:
            next(remaining, None)
        elif not word.startswith(("-", "+")):
            return word if interpreter == "shell" or word.endswith(".py") else None
    return None


class StepFilesError(ValueError):
    """A step's files cannot be determined."""


def command_scripts(commands: Iterable[str]) -> list[str]:
    """The files a step's command lines run with `python <file>.py` (anywhere in a line, as before shells were
    known: `pip install … && python steps/x.py`) or `sh|bash|dash <file>` (in command position only, so a
    word `sh` among another program's arguments is not taken for a shell). {parameters} and the like are
    ignored; `python -m`/`-c` run no file."""
    scripts: list[str] = []
    for line in commands:
        for part in re.split(r"&&|;|\|\|", line):
            try:
                words = shlex.split(part)
            except ValueError:
                words = part.split()
            for i, word in enumerate(words[:-1]):
                name = Path(word).name
                in_command_position = all(w in _PREFIXES or _ASSIGNMENT.match(w) for w in words[:i])
                interpreter = (
                    "python" if _PYTHON.match(name) else "shell" if _SHELL.match(name) and in_command_position else None
                )
                script = _script_after(interpreter, words[i + 1 :]) if interpreter else None
                if script:
                    scripts.append(script)
    return scripts


def _candidates(base: Path, dotted: str) -> list[Path]:
    rel = Path(*dotted.split("."))
    return [base / rel.with_suffix(".py"), base / rel / "__init__.py"]


def _imported_files(path: Path, root: Path) -> list[Path]:
    """Project files that `path` imports (modules and packages), found with `ast`."""
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except (SyntaxError, UnicodeDecodeError):
        return []  # not Python we can read: the file itself is still hashed
    bases = [path.parent, root]
    names: list[tuple[list[Path], str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(bases, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = path.parent
                for _ in range(node.level - 1):
                    package = package.parent
                where = [package]
            else:
                where = bases
            module = node.module or ""
            if module:
                names.append((where, module))
            names += [(where, f"{module}.{a.name}" if module else a.name) for a in node.names if a.name != "*"]
    found: list[Path] = []
    for where, dotted in names:
        parts = dotted.split(".")
        for base in where:
            # every package on the way (`a/__init__.py` for `a.b`) runs too
            for depth in range(1, len(parts) + 1):
                for candidate in _candidates(base, ".".join(parts[:depth])):
                    resolved = candidate.resolve()
                    if resolved.is_file() and resolved.is_relative_to(root):
                        found.append(resolved)
    return found


def step_files(
    root: Path,
    step_name: str,
    commands: Iterable[str],
    overrides: Mapping[str, Iterable[str]] | None = None,
    reads: Mapping[str, Iterable[str]] | None = None,
) -> dict[str, str]:
    """{path relative to root: sha256} of every project file the step runs or its scripts read, by path."""
    root = root.resolve()
    overrides = STEP_FILES if overrides is None else overrides
    reads = READS if reads is None else reads
    commands = list(commands)
    entries = list(overrides[step_name]) if step_name in overrides else command_scripts(commands)
    if not entries:
        raise StepFilesError(
            f"step {step_name!r}: its command ({' && '.join(commands) or 'empty'}) runs no `python <file>.py` nor `sh <file>`; "
            f"list the files it runs in STEP_FILES in providers/sweep/step_files.py"
        )
    seen: dict[Path, str] = {}
    todo = []
    for entry in entries:
        path = (root / entry).resolve()
        if not path.is_file() or not path.is_relative_to(root):
            raise StepFilesError(f"step {step_name!r} runs {entry}, which is not a file in {root}")
        todo.append(path)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen[path] = hashlib.sha256(path.read_bytes()).hexdigest()
        if path.suffix == ".py":
            todo += [p for p in _imported_files(path, root) if p not in seen]
        for name in reads.get(path.relative_to(root).as_posix(), ()):
            data = (root / name).resolve()
            if not data.is_file() or not data.is_relative_to(root):
                raise StepFilesError(f"{path.relative_to(root)} reads {name}, which is not a file in {root}")
            todo.append(data)
    return {p.relative_to(root).as_posix(): seen[p] for p in sorted(seen, key=lambda p: p.relative_to(root).as_posix())}
