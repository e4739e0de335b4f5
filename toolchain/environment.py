"""Where the project's Pulumi CLI is, and the environment that keeps it offline: defined once, here.

The tests, the benchmarks and the shells (`scripts/env.sh` evaluates `python -m toolchain.environment
--shell`) all run the CLI the same way: file backend and home in a directory of their own, passphrase
secrets, no update checks, no plugin downloads, the project venv's Python for the language host and the
dynamic providers.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
# Written by `scripts/setup.sh`: the directory `scripts/install-pulumi.sh` put the CLI in.
RECORDED_TOOLCHAIN_DIR = ROOT / ".pulumi" / "toolchain-dir"
# The project's own Pulumi home and file state, for stacks run by hand (`. scripts/env.sh`).
PROJECT_HOME = ROOT / ".pulumi" / "home"
PROJECT_STATE = ROOT / ".pulumi" / "state"
# The passphrase `. scripts/env.sh` sets when none is set, so that the demo's `local` stack (which holds no
# secret: its token comes from VALOHAI_API_TOKEN) works out of the box. It is in the repository, so it
# protects nothing: a stack whose secrets are encrypted with it (or with an empty passphrase) is refused by
# the program (`stacks/preflight.py`, `check_secrets`), with the fix.
DEFAULT_PASSPHRASE = "local-stacks-only"
PASSPHRASE_ENV = "PULUMI_CONFIG_PASSPHRASE"
PASSPHRASE_FILE_ENV = "PULUMI_CONFIG_PASSPHRASE_FILE"
# Set to 1 to keep the pulumi CLI's automatic log (see `automatic_log_off`).
AUTOMATIC_LOG_ENV = "VPAC_PULUMI_AUTOMATIC_LOG"
# Set to 1 to keep the Python SDK's per-resource debug messages and stack traces (stacks/sdk_overhead.py).
SDK_DIAGNOSTICS_ENV = "VPAC_PULUMI_SDK_DIAGNOSTICS"


def passphrase_in_effect(env: Mapping[str, str]) -> str | None:
    """The passphrase the pulumi CLI encrypts a passphrase-provider stack's secrets with, as it chooses it:
    `PULUMI_CONFIG_PASSPHRASE` when set (even empty), else the contents of the file named by
    `PULUMI_CONFIG_PASSPHRASE_FILE`, else None (the CLI would prompt)."""
    if PASSPHRASE_ENV in env:
        return env[PASSPHRASE_ENV]
    path = env.get(PASSPHRASE_FILE_ENV)
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError:
            return None
    return None


def is_public_passphrase(passphrase: str | None) -> bool:
    """True for a passphrase anyone with the repository knows: the default one, or an empty one."""
    return passphrase is not None and passphrase.strip() in ("", DEFAULT_PASSPHRASE)


def recorded_bin_dir() -> Path | None:
    """The toolchain directory `make setup` recorded, if it did."""
    recorded = RECORDED_TOOLCHAIN_DIR.read_text().strip() if RECORDED_TOOLCHAIN_DIR.is_file() else ""
    return Path(recorded) if recorded else None


def pulumi_bin_dir() -> Path | None:
    """The toolchain `make setup` recorded, else whatever `pulumi` is on PATH, else None."""
    recorded = recorded_bin_dir()
    if recorded is not None:
        return recorded
    found = shutil.which("pulumi")
    return Path(found).parent if found else None


def pinned_version() -> str:
    """The `pulumi` SDK pin in pyproject.toml: the CLI is built at exactly this version."""
    found = re.search(r'"pulumi==([0-9.]+)"', (ROOT / "pyproject.toml").read_text())
    if found is None:
        raise RuntimeError("pyproject.toml pins no `pulumi==<version>`")
    return found.group(1)


def offline_settings(home: Path, state: Path, passphrase: str) -> dict[str, str]:
    """The variables every offline pulumi run sets, whoever runs it."""
    return {
        "PULUMI_HOME": str(home),
        "PULUMI_BACKEND_URL": f"file://{state}",
        "PULUMI_CONFIG_PASSPHRASE": passphrase,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_PYTHON_CMD": str(VENV_PYTHON),
    }


def automatic_log_off(home: Path, keep: bool = False) -> None:
    """Turn off the pulumi CLI's automatic log in `home`, unless `keep`.

    Since 3.260 every CLI run writes each engine debug line, with every resource's full properties, gzipped
    and encrypted, to `<PULUMI_HOME>/logs/` (pulumi/pulumi v3.260.0, pkg/logging/encrypted.go: `StartLogging`, always at debug
    level; no setting turns it off). For a sweep that is Pulumi's largest per-resource cost: at 200 cells
    it was 46% of the engine's CPU in a no-change preview (bench/README.md). `StartLogging` gives up, and the
    CLI runs without it, when it cannot make that directory, so a plain file takes its place. Only homes
    this project owns get it; `VPAC_PULUMI_AUTOMATIC_LOG=1` keeps the log (the placeholder is removed).
    `pulumi -v=N --logtostderr` and `--logflow` still log as before.
    """
    logs = home / "logs"
    if keep:
        if logs.is_file():
            logs.unlink()
        return
    home.mkdir(parents=True, exist_ok=True)
    if logs.is_dir():
        shutil.rmtree(logs)  # the rotating logs of a home this project made, written before this setting
    if not logs.exists():
        logs.write_text("pulumi's automatic log is off here: see toolchain/environment.py, automatic_log_off\n")


def search_path(bin_dir: Path | None, path: str) -> str:
    """PATH with the toolchain (when known) and then the project venv in front."""
    front = [str(bin_dir)] if bin_dir is not None else []
    return os.pathsep.join([*front, str(VENV_PYTHON.parent), path])


def offline_env(work: Path, passphrase: str) -> dict[str, str]:
    """The current environment plus an offline Pulumi with its own state and home under `work`."""
    bin_dir = pulumi_bin_dir()
    if bin_dir is None:
        raise RuntimeError("pulumi is not installed: run `make setup`")
    (work / "pulumi-state").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(offline_settings(work / "pulumi-home", work / "pulumi-state", passphrase))
    automatic_log_off(work / "pulumi-home", keep=env.get(AUTOMATIC_LOG_ENV) == "1")
    env["PATH"] = search_path(bin_dir, env.get("PATH", ""))
    env["PULUMI_SKIP_CONFIRMATIONS"] = "true"
    env.pop("PULUMI_ACCESS_TOKEN", None)
    return env


def project_env(current: Mapping[str, str]) -> dict[str, str]:
    """What `. scripts/env.sh` exports: the project's own home and state unless set, the passphrase
    default only when none is set (an empty one is kept), and the pinned version for the scripts."""
    home = current.get("PULUMI_HOME") or str(PROJECT_HOME)
    backend = current.get("PULUMI_BACKEND_URL") or f"file://{PROJECT_STATE}"
    env = offline_settings(Path(home), PROJECT_STATE, current.get("PULUMI_CONFIG_PASSPHRASE", DEFAULT_PASSPHRASE))
    env["PULUMI_BACKEND_URL"] = backend
    if Path(home) == PROJECT_HOME:  # a home of the user's own choosing keeps Pulumi's defaults
        automatic_log_off(PROJECT_HOME, keep=current.get(AUTOMATIC_LOG_ENV) == "1")
    env["PULUMI_VERSION_PINNED"] = pinned_version()
    env["PATH"] = search_path(recorded_bin_dir(), current.get("PATH", ""))
    return env


def shell_exports(env: Mapping[str, str]) -> str:
    """`export NAME=value` lines, quoted for a POSIX shell's `eval`."""
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m toolchain.environment", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shell", action="store_true", help="print the project's environment as shell exports")
    args = parser.parse_args(argv)
    if not args.shell:
        parser.error("nothing to do: pass --shell")
    print(shell_exports(project_env(os.environ)), end="")


if __name__ == "__main__":
    main()
