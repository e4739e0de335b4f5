"""One settings object, read from flags and environment, so every decision about config lives here."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path


def _read_or_create_secret_file(path: Path, nbytes: int) -> str:
    """Generate a secret once and keep it (mode 600) so restarts keep tokens and signed URLs valid."""
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_hex(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def private_dir(path: Path) -> None:
    """The data directory holds the token, the signing secret, the database and every output: owner only."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


@dataclass(frozen=True)
class Limits:
    """Caps on what a client may send; every one answers a 4xx naming the limit when exceeded.

    Defaults are generous for real projects (a code package of a few MB, a valohai.yaml of a few KB)
    and small enough that one request cannot fill the disk, the memory or the event loop.
    """

    request_body_bytes: int = 8 * 1024 * 1024  # JSON/form bodies of every route but the package upload
    package_bytes: int = 64 * 1024 * 1024  # the compressed package (`vh exec run --adhoc` tarball)
    # Sum of the members' sizes once unpacked: valohai-cli warns from 150 MiB uncompressed (valohai-cli 0.37,
    # valohai_cli/packager.py UNCOMPRESSED_PACKAGE_SIZE_SOFT_THRESHOLD); every execution unpacks it again.
    package_unpacked_bytes: int = 150 * 1024 * 1024
    package_ratio: int = 100  # unpacked/compressed above 1 MiB: code packs ~5:1, a zip bomb ~1000:1
    package_members: int = 10_000  # files, directories and links in one package
    yaml_bytes: int = 1024 * 1024  # valohai.yaml
    yaml_nodes: int = 100_000  # YAML nodes after parsing (aliases are refused outright)
    json_depth: int = 64  # nesting of a JSON request body
    name: int = 200  # project, dataset and dataset version names
    title: int = 1024  # execution and pipeline titles
    description: int = 10_000  # project and commit descriptions
    tag: int = 256  # one tag
    tags: int = 100  # tags on one object
    text_value: int = 64 * 1024  # one parameter or environment variable value, one input URI
    entries: int = 1000  # keys of one object (parameters, inputs, environment variables)
    # URIs of one input: a 1,000-cell sweep (providers/sweep/config.py, MAX_CELLS) feeds its prediction two per
    # cell (model and metrics); Valohai's own cap is unverified.
    input_uris: int = 10_000


@dataclass
class Settings:
    """Everything the server needs to know; built by the CLI, or by tests directly."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    token: str = ""
    secret: str = ""
    signed_url_ttl: int = 3600
    fault_rate: float = 0.0
    fault_seed: int = 0
    fault_after_commit: bool = False
    # Answer `DELETE pipelines/{id}/` with 405, as an API that offers no pipeline deletion would
    # (LOCAL_VALOHAI_REFUSE_PIPELINE_DELETE=1): for testing that destroy still ends.
    refuse_pipeline_delete: bool = False
    limits: Limits = field(default_factory=Limits)
    # Where things live under data_dir; derived, not settable.
    db_path: Path = field(init=False)
    store_dir: Path = field(init=False)
    commits_dir: Path = field(init=False)
    executions_dir: Path = field(init=False)

    @classmethod
    def load(
        cls,
        data_dir: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        workers: int | None = None,
        token: str | None = None,
    ) -> Settings:
        """Resolve the token (flag, env, then `data_dir/token`) and the signing secret; read fault env."""
        data = Path(data_dir).resolve()
        data.mkdir(parents=True, exist_ok=True)
        private_dir(data)
        resolved_token = (
            token or os.environ.get("LOCAL_VALOHAI_TOKEN") or _read_or_create_secret_file(data / "token", 20)
        )
        return cls(
            data_dir=data,
            host=host,
            port=port,
            workers=workers or os.cpu_count() or 1,
            token=resolved_token,
            secret=_read_or_create_secret_file(data / "secret", 32),
            signed_url_ttl=int(os.environ.get("LOCAL_VALOHAI_SIGNED_URL_TTL", "3600")),
            fault_rate=float(os.environ.get("LOCAL_VALOHAI_FAULT_RATE", "0") or 0),
            fault_seed=int(os.environ.get("LOCAL_VALOHAI_FAULT_SEED", "0") or 0),
            fault_after_commit=os.environ.get("LOCAL_VALOHAI_FAULT_AFTER_COMMIT", "") in ("1", "true", "yes"),
            refuse_pipeline_delete=os.environ.get("LOCAL_VALOHAI_REFUSE_PIPELINE_DELETE", "") in ("1", "true", "yes"),
        )

    def __post_init__(self) -> None:
        self.db_path = self.data_dir / "local-valohai.sqlite3"
        self.store_dir = self.data_dir / "store"  # content-addressed blobs (outputs), keyed by sha256
        self.commits_dir = self.data_dir / "commits"
        self.executions_dir = self.data_dir / "executions"
