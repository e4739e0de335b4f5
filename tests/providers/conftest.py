"""VCR (pytest-recording) setup for the recorded client and provider tests.

Two modes, chosen by pytest-recording's `--record-mode`:
- replay (the default, no `--record-mode` given): every test marked `vcr` plays its cassette from
  `tests/cassettes/<module>/<test>.yaml` with `--record-mode=none` and the network blocked; no server is
  started, and the wait loops run on a fake clock, so the folder runs in seconds.
- record (`make record-cassettes`, i.e. `--record-mode=rewrite`): a real local backend (`LocalValohai`)
  serves the tiny project in `vcr_project/`, and every request is recorded with the host rewritten to
  `CANONICAL_HOST`, the token and signed-URL signatures filtered out.

Requests match on method, scheme, host, port, path, query and body; bodies are compared as parsed JSON,
and multipart uploads by their parts' names, file names and content hashes (the boundary is random), so
a changed payload fails with a readable `CannotOverwriteExistingCassetteException`.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import vcr as vcrpy
from support import FakeClock

from providers.api import credentials, waiting

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CASSETTES = ROOT / "tests" / "cassettes"
VCR_PROJECT = HERE / "vcr_project"

# Every recorded URL uses this host, whatever port the recording server had; replay talks to it too.
CANONICAL_HOST = "http://local-valohai.vcr.test"
# The token replayed tests configure (never sent anywhere: replay has no network).
REPLAY_TOKEN = "replayed-cassette-no-real-token"
REDACTED = "REDACTED"
# A seed for LOCAL_VALOHAI_FAULT_RATE=0.5 whose draws are: readiness probe ok, 503, ok, 429, ok
# (found by replaying local_valohai.middleware.FaultInjection's random.Random(seed) draws).
FAULT_RATE, FAULT_SEED = "0.5", "407"
MAX_REAL_SLEEP = 0.005  # seconds: what a replayed test may really sleep at once

_live_hosts: list[str] = []  # hosts of the recording servers, rewritten to CANONICAL_HOST
_live_tokens: list[str] = []  # their tokens, scrubbed from anything recorded
SIGNATURE = re.compile(r"(signature=)[0-9a-fA-F]{16,}")
EXPIRES = re.compile(r"(expires=)\d+")


# --- record or replay ------------------------------------------------------------------------------


def is_recording(config: pytest.Config) -> bool:
    return (config.getoption("--record-mode") or "none") != "none"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without an explicit `--record-mode`: replay only (`none`) and block the network for this folder."""
    if config.getoption("--record-mode") is not None:
        return
    config.option.record_mode = "none"
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.block_network)


@pytest.fixture(scope="session")
def recording(pytestconfig: pytest.Config) -> bool:
    return is_recording(pytestconfig)


# --- what gets recorded ---------------------------------------------------------------------------


def _scrub_text(text: str) -> str:
    for host in _live_hosts:
        text = text.replace(host, CANONICAL_HOST)
    for token in _live_tokens:
        text = text.replace(token, REDACTED)
    text = SIGNATURE.sub(rf"\g<1>{REDACTED}", text)
    return EXPIRES.sub(r"\g<1>0", text)


def before_record_request(request: Any) -> Any:
    """Applied by vcrpy both when recording and before matching, so replay sees the same shape."""
    request.uri = _scrub_text(request.uri)
    if request.body and _live_tokens:
        try:
            text = request.body.decode("utf-8") if isinstance(request.body, bytes) else request.body
        except UnicodeDecodeError:
            return request  # binary uploads (the code package tarball) carry no token
        request.body = _scrub_text(text).encode("utf-8")
    return request


def before_record_response(response: dict) -> dict:
    body = response.get("body", {}).get("string")
    if body:
        is_bytes = isinstance(body, bytes)
        try:
            text = body.decode("utf-8") if is_bytes else body
        except UnicodeDecodeError:
            return response
        scrubbed = _scrub_text(text)
        if scrubbed != text:
            response["body"]["string"] = scrubbed.encode("utf-8") if is_bytes else scrubbed
            for name in list(response.get("headers", {})):
                if name.lower() == "content-length":
                    response["headers"][name] = [str(len(scrubbed.encode("utf-8")))]
    return response


def _body_bytes(request: Any) -> bytes:
    body = request.body
    if body is None:
        return b""
    return body if isinstance(body, bytes) else str(body).encode("utf-8")


def _content_type(request: Any) -> str:
    for name, value in request.headers.items():
        if name.lower() == "content-type":
            return value[0] if isinstance(value, list) else value
    return ""


def multipart_parts(request: Any) -> dict[str, dict[str, str]] | None:
    """name -> {filename, sha256, size} of a multipart body (the random boundary left out), else None."""
    ctype = _content_type(request)
    match = re.search(r"boundary=([^;]+)", ctype)
    if not ctype.startswith("multipart/form-data") or not match:
        return None
    boundary = b"--" + match.group(1).strip().strip('"').encode()
    parts: dict[str, dict[str, str]] = {}
    for chunk in _body_bytes(request).split(boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, content = chunk.lstrip(b"\r\n").partition(b"\r\n\r\n")
        content = content[:-2] if content.endswith(b"\r\n") else content
        disposition = head.decode("utf-8", "replace")
        name = re.search(r'name="([^"]*)"', disposition)
        filename = re.search(r'filename="([^"]*)"', disposition)
        parts[name.group(1) if name else "?"] = {
            "filename": filename.group(1) if filename else "",
            "sha256": hashlib.sha256(content).hexdigest(),
            "size": str(len(content)),
        }
    return parts


def _json(request: Any) -> Any:
    raw = _body_bytes(request)
    if not raw:
        return None
    return json.loads(raw)


def _differences(old: Any, new: Any, path: str = "body") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            if key not in new:
                out.append(f"{path}.{key}: recorded {old[key]!r}, now missing")
            elif key not in old:
                out.append(f"{path}.{key}: not recorded, now {new[key]!r}")
            else:
                out += _differences(old[key], new[key], f"{path}.{key}")
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new, strict=True)) for d in _differences(a, b, f"{path}[{i}]")]
    return [] if old == new else [f"{path}: recorded {old!r}, now {new!r}"]


def body_matcher(now: Any, recorded: Any) -> None:
    """vcrpy matcher (raise AssertionError to fail): JSON compared parsed, multipart by stable parts."""
    now_parts, recorded_parts = multipart_parts(now), multipart_parts(recorded)
    if now_parts is not None or recorded_parts is not None:
        diffs = _differences(recorded_parts, now_parts, "multipart")
        assert not diffs, "multipart body differs: " + "; ".join(diffs)
        return
    try:
        now_json, recorded_json = _json(now), _json(recorded)
    except ValueError:
        assert _body_bytes(now) == _body_bytes(recorded), "raw (non-JSON) body differs"
        return
    diffs = _differences(recorded_json, now_json)
    assert not diffs, "JSON body differs: " + "; ".join(diffs[:10])


def pytest_recording_configure(config: pytest.Config, vcr: vcrpy.VCR) -> None:
    vcr.register_matcher("body_json", body_matcher)


VCR_CONFIG: dict[str, Any] = {
    "match_on": ("method", "scheme", "host", "port", "path", "query", "body_json"),
    "filter_headers": ["authorization", "cookie"],
    "filter_query_parameters": ["token", "signature", "expires"],
    "before_record_request": before_record_request,
    "before_record_response": before_record_response,
    "decode_compressed_response": True,
    "allow_playback_repeats": False,  # repeated GETs of one pipeline replay in order: polling advances
}


@pytest.fixture(scope="session")
def vcr_config() -> dict[str, Any]:
    return dict(VCR_CONFIG)


@pytest.fixture(scope="module")
def vcr_cassette_dir(request: pytest.FixtureRequest) -> str:
    return str(CASSETTES / Path(str(request.node.path)).stem)


@pytest.fixture
def replay_cassette() -> Any:
    """Open a recorded cassette by hand, configured like the tests' and in `none` mode (replay only)."""

    def open_cassette(path: Path) -> Any:
        instance = vcrpy.VCR(record_mode="none")
        instance.register_matcher("body_json", body_matcher)
        return instance.use_cassette(str(path), **VCR_CONFIG)

    return open_cassette


@pytest.fixture
def cassette_secrets() -> dict[str, Any]:
    """What the secrets scan looks for: the recording servers' tokens (known only while recording)."""
    return {"tokens": list(_live_tokens), "cassettes": CASSETTES}


@pytest.fixture(scope="session")
def vcr_project() -> Path:
    return VCR_PROJECT


# --- the backend (recording only) and the provider environment -------------------------------------------


@pytest.fixture(scope="session")
def live_backend(recording: bool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The real local backend while recording (session scope: started before any cassette opens)."""
    if not recording:
        yield None
        return
    from local_valohai.testing import LocalValohai

    server = LocalValohai(tmp_path_factory.mktemp("vcr-backend"), workers=2, env={"LOCAL_VALOHAI_FAULT_RATE": "0"})
    _live_hosts.append(server.url)
    _live_tokens.append(server.token)
    with server:
        yield server


@pytest.fixture(scope="session")
def faulty_backend(recording: bool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A second recording server with seeded fault injection (503 and 429 on known requests)."""
    if not recording:
        yield None
        return
    from local_valohai.testing import LocalValohai

    server = LocalValohai(
        tmp_path_factory.mktemp("vcr-faulty"),
        workers=1,
        env={"LOCAL_VALOHAI_FAULT_RATE": FAULT_RATE, "LOCAL_VALOHAI_FAULT_SEED": FAULT_SEED},
    )
    _live_hosts.append(server.url)
    _live_tokens.append(server.token)
    with server:
        yield server


@pytest.fixture
def faulty_target(faulty_backend: Any) -> tuple[str, str, bool]:
    """(host, token, live) of the fault-injecting server, or of the cassette when replaying."""
    if faulty_backend:
        return faulty_backend.url, faulty_backend.token, True
    return CANONICAL_HOST, REPLAY_TOKEN, False


@pytest.fixture
def vh_host(live_backend: Any) -> str:
    return live_backend.url if live_backend else CANONICAL_HOST


@pytest.fixture
def vh_token(live_backend: Any) -> str:
    return live_backend.token if live_backend else REPLAY_TOKEN


class CountingClock(waiting.RealClock):
    """Recording's clock: real time, real sleeps (the server really works), counted the same way."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        super().sleep(seconds)


@pytest.fixture
def wait_clock(recording: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    clock = CountingClock() if recording else FakeClock()
    monkeypatch.setattr(waiting, "clock", clock)
    return clock


@pytest.fixture
def real_sleeps(recording: bool, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """Every real `time.sleep` during the test; replayed tests must not really sleep."""
    seen: list[float] = []
    original = time.sleep

    def sleep(seconds: float) -> None:
        started = time.monotonic()
        original(seconds)
        seen.append(time.monotonic() - started)

    monkeypatch.setattr(time, "sleep", sleep)
    yield seen
    if not recording:
        assert max(seen, default=0.0) <= MAX_REAL_SLEEP, f"a replayed test really slept {max(seen):.3f}s"


@pytest.fixture
def cassette_env(vh_host: str, vh_token: str, wait_clock: Any, real_sleeps: list[float]) -> Iterator[None]:
    """What every cassette test needs: the provider token set, fresh clients, the right clock."""
    credentials.set_token(vh_token)
    yield
    credentials.set_token(None)
