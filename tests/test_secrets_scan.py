"""No token in cassettes, error messages or reprs.

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


def test_zz_secrets_summary():
    print(
        f"\n[secrets] tokens found: cassettes={FOUND.get('cassettes', 'n/a')} messages/reprs={FOUND.get('messages', 'n/a')}"
    )
