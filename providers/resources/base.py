"""What every provider shares: configure (the token), the common checks, and a key-aware diff.

The token itself is kept by `providers.api.credentials`, never on the provider object (which is pickled
into state).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pulumi.dynamic import CheckFailure, CheckResult, ConfigureRequest, DiffResult, ResourceProvider

from providers.api import cancellation
from providers.api.credentials import TOKEN_CONFIG_KEY, set_token, verify_access
from providers.api.statuses import is_failed, is_terminal
from providers.sweep.identity import canonical_json

# Inside the SDK's provider server: make Ctrl-C and a killed CLI end our waits (no-op elsewhere).
cancellation.install()

# (old key, new key) -> the plan's reasons for that change, noted by `check` from the resource's stored *inputs*:
# the engine hands Check the old inputs as `olds` and Diff the old outputs (pulumi/pulumi
# pkg/resource/deploy/step_generator.go), and both calls of one resource reach the same provider process. So a
# provider's outputs need not carry the identity again just for the reasons (a pipeline's did: ~0.6 KB per cell
# of state, rewritten at every checkpoint of an `up`).
_KEY_CHANGE_REASONS: dict[tuple[str, str], list[str]] = {}


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
    # Replace by deleting (which stops what still runs) before creating the replacement, so a changed
    # sweep never pays for the old and the new pipelines at once (see `diff`).
    stop_before_replace = False
    # Inputs the program no longer sends: a stored one is kept as it is (`check`), as an input that disappears
    # makes the engine rewrite the resource into state once after an upgrade, for nothing.
    RETIRED_INPUTS: tuple[str, ...] = ()

    def configure(self, req: ConfigureRequest) -> None:
        token = None
        try:
            token = req.config.get(TOKEN_CONFIG_KEY)
        except Exception:
            token = None
        set_token(token)

    # --- check -------------------------------------------------------------------------------------

    def check(self, _olds: dict, news: dict) -> CheckResult:
        from providers.resources.packed import keep_stored_packing, keep_stored_shape, spec_view

        news = keep_stored_shape(_olds, keep_stored_packing(_olds, news))
        retired = {k: _olds[k] for k in self.RETIRED_INPUTS if k in _olds and k not in news}
        if retired:
            news = {**news, **retired}
        stored = news
        try:
            _olds, news = spec_view(_olds), spec_view(news)
        except ValueError as exc:
            return CheckResult(stored, [CheckFailure("spec", str(exc))])
        self.note_key_change(_olds, news)
        problems: list[tuple[str, str]] = []
        host = news.get("host")
        if not host or not isinstance(host, str):
            problems.append(
                ("host", "valohai:host is not set: run `pulumi config set valohai:host http://127.0.0.1:8040`")
            )
        elif not is_unknown(host):
            problem = verify_access(host)
            if problem:
                problems.append(("host", problem))
        problems += self.check_inputs(news)
        return CheckResult(stored, [CheckFailure(k, r) for k, r in problems])

    def check_inputs(self, news: Mapping[str, Any]) -> list[tuple[str, str]]:
        return []

    def note_key_change(self, old_inputs: Mapping[str, Any], news: Mapping[str, Any]) -> None:
        """When the content key changes, the reasons in words from the old and new inputs' identities, for `diff`."""
        old_key, new_key = old_inputs.get("key"), news.get("key")
        if "key" not in self.replace_keys or not isinstance(old_key, str) or not isinstance(new_key, str):
            return
        if is_unknown(new_key) or old_key == new_key:
            return
        from providers.resources.packed import unpack
        from providers.sweep.explain import reasons

        _KEY_CHANGE_REASONS[(old_key, new_key)] = reasons(
            unpack(old_inputs.get("identity")), unpack(news.get("identity"))
        )

    def key_change_reasons(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
        """What `check` noted for this change; else the stored outputs' identity (state of older versions)."""
        from providers.resources.packed import unpack
        from providers.sweep.explain import reasons

        noted = _KEY_CHANGE_REASONS.get((olds.get("key"), news.get("key")))  # type: ignore[arg-type]
        if noted is not None:
            return noted
        if olds.get("identity") is None:
            return [f"content key {str(olds.get('key'))[:12]} -> {str(news.get('key'))[:12]}"]
        return reasons(unpack(olds.get("identity")), unpack(news.get("identity")))

    # --- diff --------------------------------------------------------------------------------------

    # The word the plan uses when the key changes: "replace" for pipelines, "re-run" for executions.
    replace_word = "replace"

    def label(self, props: Mapping[str, Any], id_: str) -> str:
        """The resource's name in the plan's reason lines (a cell's name, `data/<harbor>`, `prediction`)."""
        return str(props.get("label") or id_)

    def diff(self, _id: str, olds: dict, news: dict) -> DiffResult:
        """Compare stored outputs with desired inputs key by key, and replace what failed remotely.

        `olds` are the stored *outputs* (refreshed by `read` when refresh is on), which carry every
        input key plus the live status, so drift made outside the tool shows up here. Providers with a
        content key list `key` in `replace_keys` and leave payloads out: a payload may hold values only
        known after an upstream resource is made, the key never does, so the plan equals what `up` does.
        Every change prints one line `<name>: <op>: <reason>` (`providers.sweep.explain`).

        Providers with `stop_before_replace` ask for `delete_before_replace` when the old object still
        runs: the engine then deletes it (our `delete` stops it) before it creates the replacement,
        instead of after the whole update. Safe because nothing is lost that a re-run would need: a
        dataset's delete keeps its data, a pipeline's and an execution's records stay on the server, and
        the replacement's mimic nodes may point at the nodes it finished. A finished old object is
        replaced in the default order (create, then delete), so it stays alive while the new one reuses it.
        """
        from providers.resources.packed import spec_view
        from providers.sweep.explain import reason_line

        olds, news = spec_view(olds), spec_view(news)
        replaces = [
            k for k in self.replace_keys if changed(self.normalized(k, olds.get(k)), self.normalized(k, news.get(k)))
        ]
        updates = [
            k for k in self.update_keys if changed(self.normalized(k, olds.get(k)), self.normalized(k, news.get(k)))
        ]
        why: list[str] = []
        op = self.replace_word
        if "key" in replaces:
            why += self.key_change_reasons(olds, news)
        why += [f"{k} {olds.get(k)} -> {news.get(k)}" for k in replaces if k != "key"]
        status_reason = self.remote_problem(olds)
        if status_reason:
            if not replaces:
                op = "re-run"
            replaces.append(status_reason)
            why.append(self.problem_reason(olds, status_reason))
        label = self.label(news if news.get("label") else olds, _id)
        stop_first = bool(replaces) and self.stop_before_replace and not is_terminal(olds.get("status"))
        if replaces:
            line = reason_line(label, op, why)
            if stop_first:
                line += " (stopped before its replacement starts)"
            progress(line)
        elif updates:
            progress(reason_line(label, "update", [f"{k} changed" for k in updates]))
        return DiffResult(changes=bool(replaces or updates), replaces=replaces, delete_before_replace=stop_first)

    def normalized(self, key: str, value: Any) -> Any:
        """A replace or update key's value as the diff compares it (without what does not matter): a packed
        input (`PACKED_NAMES`) by its content, whether state holds it packed or as an object."""
        from providers.resources.packed import PACKED_NAMES, unpack

        return cosmetic_free(key, unpack(value) if key in PACKED_NAMES else value)

    def remote_problem(self, outs: Mapping[str, Any]) -> str | None:
        """The output key to blame when the remote object ended badly (so the cell is re-run)."""
        if is_failed(outs.get("status")):
            return "status"
        return None

    def cosmetic_edit(self, stored: Mapping[str, Any], live: Mapping[str, Any]) -> str | None:
        """A field edited outside the tool that is not identity (no replace); drift-check reports it."""
        return None

    def problem_reason(self, outs: Mapping[str, Any], problem: str) -> str:
        """`remote_problem`'s answer in words, for the plan."""
        if problem == "status":
            return f"last run {outs.get('status')}"
        return f"{problem} changed outside the tool"


def cosmetic_free(key: str, value: Any) -> Any:
    """A value without what does not matter: the host's trailing slash."""
    if key == "host" and isinstance(value, str) and not is_unknown(value):
        return value.rstrip("/")
    return value


def changed(old: Any, new: Any) -> bool:
    """Equal canonical JSON is the common case and costs microseconds; only values that differ there go
    through deepdiff (imported on first use: it pulls in numpy and pydantic, seconds per provider process)."""
    if is_unknown(new):
        return True
    if canonical_json(integral_numbers(old)) == canonical_json(integral_numbers(new)):
        return False
    from deepdiff import DeepDiff

    return bool(DeepDiff(old, new, ignore_order=False, ignore_numeric_type_changes=True))


def input_view(outs: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The input-shaped part of stored outputs, for `ReadResult(inputs=…)`."""
    return {k: outs[k] for k in keys if k in outs}


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
