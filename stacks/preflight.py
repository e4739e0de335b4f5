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

`run` does all four, in that order; `stacks/program.py` calls it from `read_connection`. Once the sweep
config is parsed, `check_steps` (called from `stacks/program.py`'s `declare_shared`) does the checks that
need it:

- `check_environments`: every `steps.<step>.environment` names an environment the host offers (one
  `GET environments/` per program run, the route and fields `vh environments` uses: valohai-cli 0.37,
  valohai_cli/commands/environments.py, `results` with `slug`, `name`, `id`); an unknown one lists the
  known slugs;
- `step_secrets`: the values of the steps' `secret_environment_variables`, from the secret config
  `secrets` (stored encrypted, one string per name), as Pulumi secrets (providers/sweep/step_settings.py).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime
import requests
import yaml

from providers.api.client import ValohaiClient, has_credentials, never_connected, redact_url
from providers.api.credentials import TOKEN_ENV
from providers.api.errors import ValohaiAuthError, ValohaiError, ValohaiUnreachable
from providers.sweep.step_settings import (
    SECRETS_KEY,
    StepSettingsError,
    add_secrets,
    parse_secret_values,
    payload_steps,
    secret_names,
)
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
    """The project `valohai:project` names, or a RunError listing what the token can see. Listing the projects
    is also the token's check (a refused token is a 401 there): no `users/me` call of its own."""
    try:
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


# --- per-step settings: environments and secret values ------------------------------------------------

_ENVIRONMENTS: dict[str, list[dict]] = {}  # host -> its environments, listed once per program run


def environments(api: ValohaiClient) -> list[dict]:
    """The environments the host offers (`GET environments/`), cached for the rest of the program run."""
    if api.host not in _ENVIRONMENTS:
        _ENVIRONMENTS[api.host] = list(api.paginate("environments/"))
    return _ENVIRONMENTS[api.host]


def check_environments(api: ValohaiClient, steps: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse a `steps.<step>.environment` the host does not offer, listing the ones it does. Listing
    failures (other than a refused token) only warn: the host still checks the slug at creation."""
    wanted = {step: str(s["environment"]) for step, s in steps.items() if s.get("environment")}
    if not wanted:
        return
    try:
        offered = environments(api)
    except ValohaiAuthError as exc:
        raise pulumi.RunError(f"the Valohai API at {api.host} refused the token: {exc}") from None
    except ValohaiError as exc:
        pulumi.log.warn(f"could not list the environments at {api.host} ({exc}); the slugs are checked on creation")
        return
    known = {str(env.get(k)) for env in offered for k in ("slug", "id") if env.get(k)}
    unknown = {step: slug for step, slug in sorted(wanted.items()) if slug not in known}
    if unknown:
        slugs = ", ".join(sorted(str(env.get("slug")) for env in offered if env.get("slug"))) or "none"
        step, slug = next(iter(unknown.items()))
        raise pulumi.RunError(
            f"steps.{step}.environment: {slug!r} is not an environment of {api.host}; known: {slugs} "
            f"(`vh environments` lists them): run `pulumi config set --path 'steps.{step}.environment' <slug>`"
        )


@dataclass(frozen=True)
class StepSecrets:
    """The steps' secret variables: {step: {NAME: value}}. Its repr shows names only."""

    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        return f"StepSecrets({ {step: sorted(v) for step, v in self.values.items()} })"

    def added_to(self, payload: pulumi.Output) -> pulumi.Output:
        """The payload with its steps' secret variables in (`add_secrets`), then a Pulumi secret, so it is
        encrypted in state and shown as [secret]; a payload whose steps have none is left as it is (with no
        `apply` at all when no step has any: each is an Output and a task in the SDK, per cell)."""
        if not self.values:
            return payload

        def add(value: Any) -> Any:
            if not isinstance(value, dict) or not payload_steps(value) & set(self.values):
                return value
            return pulumi.Output.secret(add_secrets(copy.deepcopy(value), self.values))

        return payload.apply(add)

    def for_step(self, step: str) -> pulumi.Output[dict] | None:
        """One step's {NAME: value} as a Pulumi secret, or None when the step has none."""
        return pulumi.Output.secret(dict(self.values[step])) if step in self.values else None


def plain_secret_names(settings: Mapping[str, Any] | None) -> list[str]:
    """Names under `<project>:secrets` in the stack's settings file that are stored in plain text."""
    config = (settings or {}).get("config") or {}
    if not isinstance(config, Mapping):
        return []
    plain: list[str] = []
    for key, value in config.items():
        if str(key).split(":")[-1] != SECRETS_KEY or (isinstance(value, Mapping) and "secure" in value):
            continue
        if isinstance(value, Mapping):
            plain += [str(n) for n, v in value.items() if not (isinstance(v, Mapping) and "secure" in v)]
        else:
            plain.append("(the whole value)")
    return plain


def step_secrets(
    config: pulumi.Config, steps: Mapping[str, Mapping[str, Any]], settings: Mapping[str, Any] | None
) -> StepSecrets:
    """The values the steps' `secret_environment_variables` name, checked: stored encrypted (never in plain
    text in the stack's settings file), a string each, one for every name (messages never show a value)."""
    names = secret_names(steps)
    raw = config.get_object(SECRETS_KEY) if names or config.get(SECRETS_KEY) is not None else None
    plain = plain_secret_names(settings)
    if plain:
        raise pulumi.RunError(
            f"{config.name}:{SECRETS_KEY} holds {', '.join(plain)} in plain text in the stack's settings file: "
            f"remove it (`pulumi config rm --path '{SECRETS_KEY}.{plain[0]}'`) and set it again with "
            f"`pulumi config set --secret --path '{SECRETS_KEY}.{plain[0]}' <value>`"
        )
    try:
        values = parse_secret_values(raw, steps)
    except StepSettingsError as exc:
        raise pulumi.RunError(f"invalid stack config: {exc}") from None
    return StepSecrets({step: {n: values[n] for n in step_names} for step, step_names in names.items()})


def check_steps(api: ValohaiClient, config: pulumi.Config, steps: Mapping[str, Mapping[str, Any]]) -> StepSecrets:
    """`check_environments` and `step_secrets`, once per program run, before any resource is declared."""
    secrets = step_secrets(
        config, steps, stack_settings(Path(pulumi.get_root_directory() or os.getcwd()), pulumi.get_stack())
    )
    check_environments(api, steps)
    return secrets
