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
        )

    def __post_init__(self) -> None:
        self.db_path = self.data_dir / "local-valohai.sqlite3"
        self.store_dir = self.data_dir / "store"  # content-addressed blobs (outputs), keyed by sha256
        self.commits_dir = self.data_dir / "commits"
        self.executions_dir = self.data_dir / "executions"
