"""No token in cassettes, error messages or reprs; no secret project variable in any API answer or log.

(The state, the CLI's output and the backend's log are scanned in tests/e2e/test_faults.py, which has a
real `pulumi up` to scan.)
"""

from __future__ import annotations

import pickle
import re
import traceback

import pytest
from support import ROOT

from local_valohai.testing import LocalValohai
from providers.api import credentials
from providers.api.client import RetryPolicy, ValohaiClient
from providers.api.errors import ValohaiAuthError, ValohaiError, ValohaiUnreachable

TOKEN_PATTERN = re.compile(r"Token [0-9a-f]{16,}")
CASSETTES = ROOT / "tests" / "cassettes"
FOUND: dict[str, int] = {}


def every_text(exc: BaseException) -> str:
    """Everything a user or a log could see of an exception: str, repr, args, and the formatted traceback
    with its whole cause/context chain."""
    parts = [str(exc), repr(exc), repr(exc.args), "".join(traceback.format_exception(exc))]
    seen = exc.__cause__ or exc.__context__
    while seen is not None:
        parts += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LocalValohai(tmp_path_factory.mktemp("secrets-valohai"), workers=1) as vh:
        yield vh


def test_cassettes_hold_no_token():
    files = [p for p in CASSETTES.rglob("*") if p.is_file()]
    assert files, "no cassettes found to scan"
    hits = {str(p.relative_to(ROOT)): TOKEN_PATTERN.findall(p.read_text(errors="replace")) for p in files}
    hits = {k: v for k, v in hits.items() if v}
    FOUND["cassettes"] = sum(len(v) for v in hits.values())
    print(f"\n[secrets] cassette files scanned: {len(files)}; token-shaped strings found: {FOUND['cassettes']}")
    assert hits == {}
    for path in files:  # and no Authorization header survived recording at all
        assert not re.search(r"(?im)^\s*authorization:", path.read_text(errors="replace")), path


def test_401_message_and_reprs_hold_no_token(server):
    wrong = "0123456789abcdef" * 2
    client = ValohaiClient(server.url, wrong, retry=RetryPolicy(total=1))
    with pytest.raises(ValohaiAuthError) as caught:
        client.me()
    text = every_text(caught.value) + repr(client) + str(client.__dict__.get("host"))
    assert "401" in str(caught.value) and "Invalid token." in str(caught.value)
    assert "check the API token" in str(caught.value)
    assert wrong not in text and not TOKEN_PATTERN.search(text)
    # the real token: a working client's repr, and an error it raises
    good = ValohaiClient(server.url, server.token, retry=RetryPolicy(total=1))
    with pytest.raises(ValohaiError) as not_found:
        good.get_pipeline("no-such-pipeline")
    text = repr(good) + every_text(not_found.value)
    assert server.token not in text and not TOKEN_PATTERN.search(text)
    assert repr(good) == f"ValohaiClient(host={server.url!r})"
    FOUND["messages"] = 0


def test_unreachable_and_bad_host_messages_hold_no_token():
    token = "fedcba9876543210" * 2
    client = ValohaiClient("http://127.0.0.1:1", token, retry=RetryPolicy(total=0, backoff_factor=0))
    with pytest.raises(ValohaiUnreachable) as caught:
        client.me()
    text = every_text(caught.value)
    assert "cannot reach the Valohai API at http://127.0.0.1:1" in str(caught.value)
    assert token not in text and not TOKEN_PATTERN.search(text)
    with pytest.raises(ValueError) as bad_host:
        ValohaiClient("ftp://example.invalid", token)
    assert token not in every_text(bad_host.value)


def test_exceptions_pickle_without_token(server):
    """Pulumi's provider host may serialise errors; what it would carry must not hold the token either."""
    client = ValohaiClient(server.url, server.token, retry=RetryPolicy(total=1))
    with pytest.raises(ValohaiError) as caught:
        client.get_execution("no-such-execution")
    assert server.token.encode() not in pickle.dumps(caught.value)


def test_provider_check_messages_hold_no_token(server):
    """What `pulumi preview` shows for a wrong token comes from `verify_access`."""
    wrong = "aaaabbbbccccdddd" * 2
    credentials.set_token(wrong)
    try:
        problem = credentials.verify_access(server.url)
    finally:
        credentials.set_token(None)
    assert problem and "Invalid token." in problem
    assert wrong not in problem and not TOKEN_PATTERN.search(problem)


SECRET_VALUE = "secret-env-value-5c1e9d"
SECRET_PROJECT = """- step:
    name: uses-secret
    image: python:3.11
    command: >-
      python -c "import hashlib, os, sys; v = os.environ.get('SCAN_SECRET', '').encode();
      sys.exit(hashlib.sha256(v).hexdigest() != 'db52146e7919d4089ce9db5d6e7b5f635a495e128a712343b75ef14ce44beb89')"
"""  # the command holds the value's hash only: it is shown by the API


def _package(files: dict[str, str]) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_secret_project_variable_in_no_answer_log_or_cassette(server):
    """A secret project variable reaches the step (it exits 0 only with the value) and nothing else: not
    the project, the execution, lists, events, the backend's log, nor any cassette."""
    import time

    session = server.session()
    api = server.api
    project = session.post(f"{api}/projects/", json={"name": "secrets-scan"}, timeout=10).json()
    files = {"data": ("p.tgz", _package({"valohai.yaml": SECRET_PROJECT}), "application/gzip")}
    commit = session.post(f"{api}/projects/{project['id']}/import-package/", files=files, timeout=10).json()
    body = {"name": "SCAN_SECRET", "value": SECRET_VALUE, "secret": True}
    created = session.post(f"{api}/projects/{project['id']}/environment_variable/", json=body, timeout=10)
    run = {"project": project["id"], "commit": commit["identifier"], "step": "uses-secret"}
    execution = session.post(f"{api}/executions/", json=run, timeout=10).json()
    deadline = time.monotonic() + 60
    while (done := session.get(f"{api}/executions/{execution['id']}/", timeout=10).json())["status"] not in (
        "complete",
        "error",
    ):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert done["status"] == "complete", "the step did not get the secret variable"
    answers = [
        created.text,
        session.get(f"{api}/projects/{project['id']}/", timeout=10).text,
        session.get(f"{api}/projects/", timeout=10).text,
        session.get(f"{api}/executions/", params={"project": project["id"]}, timeout=10).text,
        session.get(f"{api}/executions/{execution['id']}/events/", params={"limit": 0}, timeout=10).text,
        session.get(f"{api}/executions/{execution['id']}/status-events/", timeout=10).text,
    ]
    seen = "\n".join([*answers, server.log_path.read_text(errors="replace")])
    assert SECRET_VALUE not in seen
    cassettes = [p for p in CASSETTES.rglob("*") if p.is_file()]
    assert not [p for p in cassettes if SECRET_VALUE in p.read_text(errors="replace")]
    FOUND["secret variables"] = 0


def _wait(session, url: str, deadline_seconds: float = 60) -> dict:
    import time

    deadline = time.monotonic() + deadline_seconds
    while (done := session.get(url, timeout=10).json())["status"] not in ("complete", "error", "stopped"):
        assert time.monotonic() < deadline, done["status"]
        time.sleep(0.2)
    return done


def test_a_payloads_own_secret_variable_reaches_the_step_and_no_answer_or_log(server):
    """The per-step secrets of stack config (providers/sweep/step_settings.py `add_secrets`) arrive as
    `{"value", "secret": true}` in an execution payload or a node template: the step gets the value, no
    answer (execution, lists, pipeline, events) nor the backend's log holds it."""
    session = server.session()
    api = server.api
    project = session.post(f"{api}/projects/", json={"name": "payload-secrets-scan"}, timeout=10).json()
    files = {"data": ("p.tgz", _package({"valohai.yaml": SECRET_PROJECT}), "application/gzip")}
    commit = session.post(f"{api}/projects/{project['id']}/import-package/", files=files, timeout=10).json()
    env = {"SCAN_SECRET": {"value": SECRET_VALUE, "secret": True}, "SHOWN": {"value": "plain", "secret": False}}
    run = {"project": project["id"], "commit": commit["identifier"], "step": "uses-secret"}
    created = session.post(f"{api}/executions/", json={**run, "environment_variables": env}, timeout=10)
    assert created.status_code == 201, created.text
    execution = _wait(session, f"{api}/executions/{created.json()['id']}/")
    assert execution["status"] == "complete", "the step did not get the payload's secret"
    assert (
        execution["environment_variables"]["SHOWN"] == "plain"
        and "SCAN_SECRET" not in execution["environment_variables"]
    )
    template = {**run, "environment_variables": env}
    template.pop("project")
    pipeline = {
        "project": project["id"],
        "title": "p",
        "nodes": [{"name": "n", "type": "execution", "template": template}],
        "edges": [],
    }
    made = session.post(f"{api}/pipelines/", json=pipeline, timeout=10)
    assert made.status_code == 201, made.text
    finished = _wait(session, f"{api}/pipelines/{made.json()['id']}/")
    assert finished["status"] == "complete", "the node's step did not get the template's secret"
    bad = session.post(
        f"{api}/executions/", json={**run, "environment_variables": {"X": {"value": "v", "hidden": 1}}}, timeout=10
    )
    assert bad.status_code == 400 and "expected a value or {value, secret}" in bad.text
    node_execution = finished["nodes"][0]["execution"]["id"]
    answers = [
        created.text,
        made.text,
        session.get(f"{api}/executions/{execution['id']}/", timeout=10).text,
        session.get(f"{api}/executions/{node_execution}/", timeout=10).text,
        session.get(f"{api}/executions/", params={"project": project["id"]}, timeout=10).text,
        session.get(f"{api}/pipelines/{finished['id']}/", timeout=10).text,
        session.get(f"{api}/pipelines/", params={"project": project["id"]}, timeout=10).text,
        session.get(f"{api}/executions/{execution['id']}/events/", params={"limit": 0}, timeout=10).text,
        session.get(f"{api}/executions/{node_execution}/events/", params={"limit": 0}, timeout=10).text,
    ]
    assert SECRET_VALUE not in "\n".join([*answers, server.log_path.read_text(errors="replace")])
    FOUND["payload secrets"] = 0


def test_zz_secrets_summary():
    print(
        f"\n[secrets] tokens found: cassettes={FOUND.get('cassettes', 'n/a')} messages/reprs={FOUND.get('messages', 'n/a')}"
        f" secret variable values in answers/logs/cassettes={FOUND.get('secret variables', 'n/a')}"
        f" payload secrets in answers/logs={FOUND.get('payload secrets', 'n/a')}"
    )
