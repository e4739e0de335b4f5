"""The program's preflight checks as functions: the secrets policy (which passphrase protects what), the
host-URL check and reading the stack's settings file. The same checks through the real `pulumi` CLI are in
tests/e2e/test_stack_config.py."""

from __future__ import annotations

import asyncio
import json
import socket
import threading

import pulumi
import pytest

from local_valohai.testing import free_port
from stacks import preflight
from toolchain.environment import DEFAULT_PASSPHRASE, is_public_passphrase, passphrase_in_effect

SECRET_TOKEN = {"config": {"valohai:token": {"secure": "v1:abc"}, "valohai:host": "http://h"}, "encryptionsalt": "x"}
NO_SECRET = {"config": {"valohai:host": "http://h"}, "encryptionsalt": "x"}


@pytest.fixture(autouse=True)
def no_engine_secret_keys(monkeypatch):
    monkeypatch.delenv("PULUMI_CONFIG_SECRET_KEYS", raising=False)


@pytest.mark.parametrize(
    "env",
    [
        {"PULUMI_CONFIG_PASSPHRASE": DEFAULT_PASSPHRASE},
        {"PULUMI_CONFIG_PASSPHRASE": ""},
        {"PULUMI_CONFIG_PASSPHRASE": "  "},
    ],
    ids=["default", "empty", "blank"],
)
def test_a_secret_under_a_public_passphrase_is_refused_with_the_fix(env):
    with pytest.raises(pulumi.RunError) as caught:
        preflight.check_secrets(SECRET_TOKEN, env)
    text = str(caught.value)
    assert text.startswith("valohai:token is a secret encrypted with ")
    assert "pulumi stack change-secrets-provider passphrase" in text
    assert "export PULUMI_CONFIG_PASSPHRASE=<your passphrase>" in text and "\n" not in text


def test_the_passphrase_file_counts_like_the_variable(tmp_path):
    phrase = tmp_path / "phrase"
    phrase.write_text(DEFAULT_PASSPHRASE + "\n")  # the CLI trims the file's contents
    env = {"PULUMI_CONFIG_PASSPHRASE_FILE": str(phrase)}
    assert passphrase_in_effect(env) == DEFAULT_PASSPHRASE
    with pytest.raises(pulumi.RunError):
        preflight.check_secrets(SECRET_TOKEN, env)
    phrase.write_text("a passphrase of my own\n")
    preflight.check_secrets(SECRET_TOKEN, env)


@pytest.mark.parametrize(
    "settings, env",
    [
        (SECRET_TOKEN, {"PULUMI_CONFIG_PASSPHRASE": "a passphrase of my own"}),
        (NO_SECRET, {"PULUMI_CONFIG_PASSPHRASE": DEFAULT_PASSPHRASE}),  # the demo's local stack
        (
            {**SECRET_TOKEN, "secretsprovider": "awskms://alias/x?region=eu-west-1", "encryptedkey": "k"},
            {"PULUMI_CONFIG_PASSPHRASE": DEFAULT_PASSPHRASE},  # env.sh sets it, but KMS holds the key
        ),
    ],
    ids=["own-passphrase", "no-secret", "kms-provider"],
)
def test_what_is_allowed(settings, env):
    preflight.check_secrets(settings, env)


def test_secret_keys_from_the_engine_count_too(monkeypatch):
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", '["valohai-sweep:api_key"]')
    with pytest.raises(pulumi.RunError, match=r"^valohai-sweep:api_key is a secret"):
        preflight.check_secrets(NO_SECRET, {"PULUMI_CONFIG_PASSPHRASE": DEFAULT_PASSPHRASE})


def test_a_plain_text_token_in_the_stack_file_is_refused():
    settings = {"config": {"valohai:token": "abc123"}}
    with pytest.raises(pulumi.RunError) as caught:
        preflight.check_secrets(settings, {"PULUMI_CONFIG_PASSPHRASE": "mine"})
    assert "valohai:token is stored in plain text" in str(caught.value) and "abc123" not in str(caught.value)


def test_public_passphrases():
    assert is_public_passphrase(DEFAULT_PASSPHRASE) and is_public_passphrase("")
    assert not is_public_passphrase("correct horse battery staple") and not is_public_passphrase(None)


def test_host_with_credentials_is_refused_redacted():
    with pytest.raises(pulumi.RunError) as caught:
        preflight.check_host_url("http://admin:s3cr3t@127.0.0.1:8040")
    assert "valohai:host must not hold credentials, got http://***@127.0.0.1:8040" in str(caught.value)
    assert "s3cr3t" not in str(caught.value) and "admin" not in str(caught.value)
    preflight.check_host_url("http://127.0.0.1:8040")


def test_stack_settings_are_read_from_the_stack_config_dir(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: p\nruntime: python\nstackConfigDir: stacks\n")
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.dev.yaml").write_text("config:\n  valohai:token:\n    secure: v1:x\n")
    settings = preflight.stack_settings(tmp_path, "dev")
    assert preflight.secret_keys(settings) == ["valohai:token"] and preflight.uses_passphrase(settings)
    assert preflight.stack_settings(tmp_path, "other") is None


def test_host_probe_fails_fast_only_when_nothing_answers():
    """Nothing listening: one line at once. A server that accepts and drops the connection (as a busy or
    fault-injecting one may) is left to the client's retries."""
    port = free_port()
    with pytest.raises(
        pulumi.RunError, match=rf"^cannot reach the Valohai API at valohai:host=http://127.0.0.1:{port} "
    ):
        preflight.check_host(f"http://127.0.0.1:{port}")

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[int] = []

    def drop_connections() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            conn.close()

    threading.Thread(target=drop_connections, daemon=True).start()
    try:
        preflight.check_host(f"http://127.0.0.1:{listener.getsockname()[1]}")
    finally:
        listener.close()
    assert accepted, "the probe never connected"


# --- per-step settings: environments and secret values ------------------------------------------------


class FakeApi:
    """What `check_environments` asks of a client: its host and one paginated list."""

    def __init__(self, host: str, environments: list[dict] | Exception):
        self.host, self.environments, self.calls = host, environments, 0

    def paginate(self, path: str):
        assert path == "environments/"
        self.calls += 1
        if isinstance(self.environments, Exception):
            raise self.environments
        return iter(self.environments)


OFFERED = [{"id": "0000-1", "slug": "aws-g4dn", "name": "GPU"}, {"id": "0000-2", "slug": "aws-cpu", "name": "CPU"}]


def test_an_unknown_environment_fails_preview_listing_the_known_ones_and_lists_once_per_run():
    api = FakeApi("http://envs-a", OFFERED)
    preflight.check_environments(
        api, {"train": {"environment": "aws-g4dn"}, "predict-models": {"environment": "0000-2"}}
    )
    preflight.check_environments(api, {"train": {"environment": "aws-cpu"}})
    assert api.calls == 1  # cached for the rest of the program run
    with pytest.raises(pulumi.RunError) as caught:
        preflight.check_environments(api, {"train": {"environment": "aws-g4dm"}})
    text = str(caught.value)
    assert text.startswith("steps.train.environment: 'aws-g4dm' is not an environment of http://envs-a; known: ")
    assert "known: aws-cpu, aws-g4dn (`vh environments` lists them)" in text and "\n" not in text
    idle = FakeApi("http://envs-b", OFFERED)
    preflight.check_environments(idle, {"train": {"image": "x"}})
    assert idle.calls == 0  # no environment set: no request


def test_a_failed_environment_list_warns_but_a_refused_token_stops(monkeypatch):
    from providers.api.errors import ValohaiAuthError, ValohaiError

    warned: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *a, **k: warned.append(message))
    preflight.check_environments(FakeApi("http://envs-c", ValohaiError("HTTP 404")), {"train": {"environment": "x"}})
    assert warned and "could not list the environments at http://envs-c" in warned[0]
    with pytest.raises(pulumi.RunError, match="refused the token"):
        preflight.check_environments(FakeApi("http://envs-d", ValohaiAuthError("401")), {"t": {"environment": "x"}})


class FakeConfig:
    """`pulumi.Config` as `step_secrets` reads it."""

    name = "valohai-sweep"

    def __init__(self, values: dict):
        self.values = values

    def get(self, key: str):
        return None if key not in self.values else json.dumps(self.values[key])

    def get_object(self, key: str):
        return self.values.get(key)


VALUE = "value-that-must-stay-secret"
STEPS = {"train": {"secret_environment_variables": ["WANDB_API_KEY"]}}
ENCRYPTED = {"config": {"valohai-sweep:secrets": {"WANDB_API_KEY": {"secure": "v1:abc"}}}}


def test_step_secrets_are_read_per_step_and_never_shown():
    secrets = preflight.step_secrets(FakeConfig({"secrets": {"WANDB_API_KEY": VALUE}}), STEPS, ENCRYPTED)
    assert secrets.values == {"train": {"WANDB_API_KEY": VALUE}}
    assert VALUE not in repr(secrets) and "WANDB_API_KEY" in repr(secrets)
    assert preflight.step_secrets(FakeConfig({}), {}, None).values == {}


@pytest.mark.parametrize(
    ("values", "settings", "message"),
    [
        (
            {"secrets": {"WANDB_API_KEY": VALUE}},
            {"config": {"valohai-sweep:secrets": {"WANDB_API_KEY": VALUE}}},
            "holds WANDB_API_KEY in plain text",
        ),
        ({"secrets": {"WANDB_API_KEY": 7}}, ENCRYPTED, "secrets.WANDB_API_KEY must be a string, got a int"),
        ({"secrets": {}}, ENCRYPTED, "secrets has no value for WANDB_API_KEY (listed by steps.train)"),
    ],
)
def test_bad_step_secrets_stop_preview_without_showing_a_value(values, settings, message):
    with pytest.raises(pulumi.RunError) as caught:
        preflight.step_secrets(FakeConfig(values), STEPS, settings)
    assert message in str(caught.value) and VALUE not in str(caught.value) and "\n" not in str(caught.value)


def test_plain_secret_names_in_the_settings_file():
    assert preflight.plain_secret_names(ENCRYPTED) == []
    assert preflight.plain_secret_names({"config": {"valohai-sweep:secrets": {"secure": "v1:x"}}}) == []
    mixed = {"config": {"valohai-sweep:secrets": {"A": {"secure": "v1:x"}, "B": "plain"}}}
    assert preflight.plain_secret_names(mixed) == ["B"]
    assert preflight.plain_secret_names(None) == []


@pytest.fixture(autouse=True)
def own_event_loop():
    """Each test gets a fresh current event loop: pulumi Outputs bind to the current loop when made, and
    a loop another test in this process closed (they run in any order and mix) must not be reused."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    loop.close()
    asyncio.set_event_loop(None)


def _resolved(output: pulumi.Output) -> tuple[object, bool]:
    async def both():
        return await output.future(), await output.is_secret()

    return asyncio.get_event_loop().run_until_complete(both())


def test_a_payload_with_a_secret_becomes_a_pulumi_secret_and_others_stay_plain():
    secrets = preflight.StepSecrets({"train": {"WANDB_API_KEY": VALUE}})
    pipeline = {"nodes": [{"name": "train", "template": {"step": "train"}}]}
    value, secret = _resolved(secrets.added_to(pulumi.Output.from_input(pipeline)))
    assert secret and value["nodes"][0]["template"]["environment_variables"] == {
        "WANDB_API_KEY": {"value": VALUE, "secret": True}
    }
    assert pipeline == {"nodes": [{"name": "train", "template": {"step": "train"}}]}  # the input is not changed
    other = {"step": "predict-models", "project": "p"}
    assert _resolved(secrets.added_to(pulumi.Output.from_input(other))) == (other, False)
    assert secrets.for_step("predict-models") is None
    assert _resolved(secrets.for_step("train")) == ({"WANDB_API_KEY": VALUE}, True)
