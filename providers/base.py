"""What every Valohai dynamic provider shares: credentials, API clients, input checks and the diff.

Why a module-level credential store: the provider object is pickled into state (`__provider`), so the
token must never live on it. The engine calls `configure()` in the provider process with the whole stack
config; the token is kept here, in that process's memory only, with `VALOHAI_API_TOKEN` as the fallback.
Clients are created lazily, one per host, and the host is checked once per process (one `users/me` call),
so a missing token or an unreachable host fails `check` at preview, before anything is created.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, Callable, Iterable, Mapping, Optional

from pulumi.dynamic import CheckFailure, CheckResult, ConfigureRequest, DiffResult, ResourceProvider

from providers.client import RetryPolicy, ValohaiClient, ValohaiError, dumps_stable

TOKEN_CONFIG_KEY = "valohai:token"
TOKEN_ENV = "VALOHAI_API_TOKEN"
TERMINAL_BAD = ("error", "stopped", "crashed")
INTERNAL_KEYS = ("__provider",)

_lock = threading.Lock()
_token_from_config: Optional[str] = None
_clients: dict[str, ValohaiClient] = {}
_verified: dict[str, Optional[str]] = {}  # host -> None when fine, else the error message
client_factory: Callable[[str, str], ValohaiClient] = lambda host, token: ValohaiClient(host, token, retry=RetryPolicy())


def set_token(token: Optional[str]) -> None:
    global _token_from_config
    with _lock:
        _token_from_config = token or None
        _clients.clear()
        _verified.clear()


def current_token() -> Optional[str]:
    return _token_from_config or os.environ.get(TOKEN_ENV) or None


def client(host: str) -> ValohaiClient:
    token = current_token()
    if not token:
        raise ValohaiError(missing_token_message())
    with _lock:
        if host not in _clients:
            _clients[host] = client_factory(host, token)
        return _clients[host]


def missing_token_message() -> str:
    return (f"no Valohai API token: run `pulumi config set --secret {TOKEN_CONFIG_KEY} <token>` "
            f"or export {TOKEN_ENV}")


def verify_access(host: str) -> Optional[str]:
    """One `users/me` call per host and process; returns an error message, or None when all is well."""
    if not current_token():
        return missing_token_message()
    with _lock:
        if host in _verified:
            return _verified[host]
    try:
        client(host).me()
        problem = None
    except (ValohaiError, ValueError) as exc:
        problem = str(exc)
    with _lock:
        _verified[host] = problem
    return problem


def progress(message: str) -> None:
    """Provider output reaches the CLI as info lines (stderr would show as errors)."""
    print(message, flush=True)


def is_unknown(value: Any) -> bool:
    """Preview passes values not known yet (outputs of resources still to be created) as a sentinel."""
    from pulumi.output import Unknown
    from pulumi.runtime import rpc

    return isinstance(value, Unknown) or (isinstance(value, str) and value == rpc.UNKNOWN)


class ValohaiProvider(ResourceProvider):
    """Base for the project's providers: configure, common checks, and a key-aware diff.

    Subclasses declare `replace_keys` (changing them makes a new remote object) and `update_keys`
    (changed in place), and implement `check_inputs` returning a list of (key, reason) problems.
    """

    serialize_as_secret_always = False  # the provider holds no secret; keep state readable
    replace_keys: tuple[str, ...] = ()
    update_keys: tuple[str, ...] = ()

    def configure(self, req: ConfigureRequest) -> None:
        token = None
        try:
            token = req.config.get(TOKEN_CONFIG_KEY)
        except Exception:  # noqa: BLE001 - absent or unreadable config means "use the env fallback"
            token = None
        set_token(token)

    # --- check -------------------------------------------------------------------------------------

    def check(self, _olds: dict, news: dict) -> CheckResult:
        problems: list[tuple[str, str]] = []
        host = news.get("host")
        if not host or not isinstance(host, str):
            problems.append(("host", "valohai:host is not set: run `pulumi config set valohai:host http://127.0.0.1:8040`"))
        elif not is_unknown(host):
            problem = verify_access(host)
            if problem:
                problems.append(("host", problem))
        problems += self.check_inputs(news)
        return CheckResult(news, [CheckFailure(k, r) for k, r in problems])

    def check_inputs(self, news: Mapping[str, Any]) -> list[tuple[str, str]]:
        return []

    # --- diff --------------------------------------------------------------------------------------

    def diff(self, _id: str, olds: dict, news: dict) -> DiffResult:
        """Compare stored outputs with desired inputs key by key, and replace what failed remotely.

        `olds` are the stored *outputs* (refreshed by `read` when refresh is on), which carry every
        input key plus the live status, so drift made outside the tool shows up here.
        """
        replaces = [k for k in self.replace_keys if changed(olds.get(k), news.get(k))]
        updates = [k for k in self.update_keys if changed(olds.get(k), news.get(k))]
        status_reason = self.remote_problem(olds)
        if status_reason:
            replaces.append(status_reason)
        if replaces or updates:
            detail = ", ".join(replaces + updates)
            progress(f"{type(self).__name__} {_id}: changes in {detail}")
        return DiffResult(changes=bool(replaces or updates), replaces=replaces, delete_before_replace=False)

    def remote_problem(self, outs: Mapping[str, Any]) -> Optional[str]:
        """The output key to blame when the remote object ended badly (so the cell is re-run)."""
        if outs.get("status") in TERMINAL_BAD:
            return "status"
        return None


def changed(old: Any, new: Any) -> bool:
    """Equal canonical JSON is the common case and costs microseconds; only values that differ there go
    through deepdiff (imported on first use: it pulls in numpy and pydantic, seconds per provider process)."""
    if is_unknown(new):
        return True
    if dumps_stable(integral_numbers(old)) == dumps_stable(integral_numbers(new)):
        return False
    from deepdiff import DeepDiff

    return bool(DeepDiff(old, new, ignore_order=False, ignore_numeric_type_changes=True))


def input_view(outs: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The input-shaped part of stored outputs, for `ReadResult(inputs=…)`."""
    return {k: outs[k] for k in keys if k in outs}


def eprint(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def integral_numbers(value: Any) -> Any:
    """Undo protobuf's doubles: Pulumi carries every number as a float, so `epochs: 2` arrives as 2.0,
    which a step's integer parameter (`--epochs=2.0`) would reject. Whole floats become ints again."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: integral_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integral_numbers(v) for v in value]
    return value
