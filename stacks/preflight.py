"""What the program checks once, before it declares any resource, so a stack that cannot work stops
`pulumi preview` with one line naming the problem and the fix (a `pulumi.RunError`: no traceback) and
nothing is created:

- `check_host_url`: `valohai:host` holds no credentials (`http://user:pw@host` is refused and shown as
  `http://***@host`, never echoed);
- `check_secrets`: no secret of the stack is encrypted with a passphrase that is in the repository (the
  default `local-stacks-only` of `toolchain/environment.py`, or an empty one); the demo's `local` stack
  holds no secret, its token comes from `VALOHAI_API_TOKEN`;
- `check_host`: the host answers at all (fast: one request, no retries);
- `check_project`: the token is accepted and `valohai:project` names exactly one project it can see (a
  missing one lists the projects it can see; an ambiguous name lists the `owner/name` candidates).

`run` does all four, in that order; `stacks/program.py` calls it from `read_connection`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime
import requests
import yaml

from providers.api.client import ValohaiClient, has_credentials, never_connected, redact_url
from providers.api.credentials import TOKEN_ENV
from providers.api.errors import ValohaiAuthError, ValohaiError, ValohaiUnreachable
from toolchain.environment import DEFAULT_PASSPHRASE, PASSPHRASE_ENV, is_public_passphrase, passphrase_in_effect

TOKEN_KEY = "valohai:token"
PROBE_TIMEOUT = 5.0  # seconds the reachability probe waits


def check_host_url(host: str) -> None:
    """Refuse a host URL with a user name or password in it, showing it redacted."""
    if has_credentials(host):
        raise pulumi.RunError(
            f"valohai:host must not hold credentials, got {redact_url(host)}: set the host alone "
            f"(`pulumi config set valohai:host https://app.valohai.com`) and the token as a secret "
            f"(`pulumi config set --secret {TOKEN_KEY} <token>`) or in {TOKEN_ENV}"
        )


# --- secrets ------------------------------------------------------------------------------------------


def stack_settings(root: Path, stack: str) -> Mapping[str, Any] | None:
    """The stack's settings file (`Pulumi.<stack>.yaml`, in the project's `stackConfigDir`), or None when it
    cannot be found or read."""
    try:
        project = yaml.safe_load((root / "Pulumi.yaml").read_text()) or {}
        folder = root / str(project.get("stackConfigDir") or ".")
        settings = yaml.safe_load((folder / f"Pulumi.{stack.split('/')[-1]}.yaml").read_text())
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    return settings if isinstance(settings, Mapping) else None


def secret_keys(settings: Mapping[str, Any] | None) -> list[str]:
    """The config keys the stack holds as secrets: those the engine passes as secret to the program
    (`PULUMI_CONFIG_SECRET_KEYS`) and those stored `secure:` in the settings file."""
    keys = set(pulumi.runtime.get_config_secret_keys_env())
    config = (settings or {}).get("config") or {}
    if isinstance(config, Mapping):
        keys |= {str(k) for k, v in config.items() if isinstance(v, Mapping) and "secure" in v}
    return sorted(keys)


def uses_passphrase(settings: Mapping[str, Any] | None) -> bool:
    """Whether the stack's secrets are encrypted with a passphrase: a `secretsprovider` of another kind
    (awskms://, gcpkms://, azurekeyvault://, hashivault://, or the service's `default`) holds its key
    elsewhere. Unknown (no readable settings file) counts as passphrase, the file backend's default."""
    provider = str((settings or {}).get("secretsprovider") or "passphrase")
    return provider == "passphrase" or provider.startswith("passphrase://")


def check_secrets(settings: Mapping[str, Any] | None, env: Mapping[str, str]) -> None:
    """Refuse a token stored in plain text, and secrets encrypted with a passphrase anyone with the
    repository knows; both with the fix."""
    keys = secret_keys(settings)
    config = (settings or {}).get("config") or {}
    if isinstance(config, Mapping) and isinstance(config.get(TOKEN_KEY), str) and TOKEN_KEY not in keys:
        raise pulumi.RunError(
            f"{TOKEN_KEY} is stored in plain text in the stack's settings file: remove it "
            f"(`pulumi config rm {TOKEN_KEY}`) and set it as a secret (`pulumi config set --secret {TOKEN_KEY} "
            f"<token>`, under a passphrase of your own) or export {TOKEN_ENV}"
        )
    passphrase = passphrase_in_effect(env)
    if not keys or not uses_passphrase(settings) or not is_public_passphrase(passphrase):
        return
    which = f"the default passphrase `{DEFAULT_PASSPHRASE}`" if (passphrase or "").strip() else "an empty passphrase"
    raise pulumi.RunError(
        f"{', '.join(keys)} {'is a secret' if len(keys) == 1 else 'are secrets'} encrypted with {which}, "
        f"which anyone with the repository can use to decrypt it; re-encrypt with a passphrase of your own: "
        f"`pulumi stack change-secrets-provider passphrase` (it asks for the new passphrase; without a terminal "
        f"it reads it from stdin), then `export {PASSPHRASE_ENV}=<your passphrase>` for every pulumi run "
        f"(or move the stack to a cloud secrets provider: `pulumi stack change-secrets-provider awskms://...`)"
    )


# --- the host and the project -------------------------------------------------------------------------


def check_host(host: str) -> None:
    """Fail fast, with a clear message, when nothing answers at the host (no token is sent)."""
    try:
        requests.get(host.rstrip("/") + "/api/v0/users/me/", timeout=PROBE_TIMEOUT)
    except requests.exceptions.RequestException as exc:
        connected = isinstance(exc, requests.exceptions.ReadTimeout) or (
            isinstance(exc, requests.exceptions.ConnectionError)
            and not isinstance(exc, requests.exceptions.ConnectTimeout)
            and not never_connected(exc)
        )
        if connected:
            return  # something answered, then dropped the connection or was slow: the client's retries decide
        raise pulumi.RunError(
            f"cannot reach the Valohai API at valohai:host={host} ({exc.__class__.__name__}); "
            f"start the local backend (`make backend`) or fix the host"
        ) from None


def check_project(api: ValohaiClient, project: str) -> dict:
    """The project `valohai:project` names, or a RunError listing what the token can see."""
    try:
        api.me()
        return api.resolve_project(project)
    except ValohaiAuthError as exc:
        raise pulumi.RunError(f"the Valohai API at {api.host} refused the token: {exc}") from None
    except ValohaiUnreachable as exc:
        raise pulumi.RunError(f"cannot reach the Valohai API at valohai:host={api.host}: {exc}") from None
    except ValohaiError as exc:
        raise pulumi.RunError(str(exc)) from None


def run(host: str, project: str, valohai: pulumi.Config) -> None:
    """Every check above, once per program run (see the module docstring)."""
    check_host_url(host)
    check_secrets(stack_settings(Path(pulumi.get_root_directory() or os.getcwd()), pulumi.get_stack()), os.environ)
    check_host(host)
    token = valohai.get("token") or os.environ.get(TOKEN_ENV) or ""
    try:
        api = ValohaiClient(host, token)
    except ValueError as exc:
        raise pulumi.RunError(str(exc)) from None
    check_project(api, project)
