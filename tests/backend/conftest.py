"""Fixtures for the local backend tests: one real server per module, a sample project and packages."""

from __future__ import annotations

import gzip
import io
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from local_valohai.testing import LocalValohai
from providers.api.statuses import TERMINAL

SAMPLE = Path(__file__).parent / "sample_project"


def package_bytes(directory: Path = SAMPLE, extra: dict[str, str] | None = None) -> bytes:
    """A gzipped tarball of `directory` (plus `extra` files), like `vh exec run --adhoc` uploads."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                info = tar.gettarinfo(str(path), arcname=path.relative_to(directory).as_posix())
                info.mtime = 0
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
        for name, text in (extra or {}).items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Api:
    """A thin requests wrapper bound to one server; `api.get("executions/")` etc."""

    def __init__(self, server: LocalValohai) -> None:
        self.server = server
        self.session = server.session()

    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.server.api}/{path.lstrip('/')}"

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.session.get(self.url(path), timeout=10, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.session.post(self.url(path), timeout=10, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.session.delete(self.url(path), timeout=10, **kw)

    def ok(self, response: requests.Response, status: int = 200) -> Any:
        assert response.status_code == status, f"{response.status_code}: {response.text}"
        return response.json() if response.content else None

    def create_project(self, name: str) -> dict:
        return self.ok(self.post("projects/", data={"name": name, "description": "test"}), 201)

    def import_package(self, project_id: str, data: bytes | None = None) -> dict:
        files = {"data": ("data.tgz", data or package_bytes(), "application/gzip")}
        return self.ok(
            self.post(f"projects/{project_id}/import-package/", files=files, data={"description": "test"}), 201
        )

    def run(self, project_id: str, commit: str, step: str, **payload: Any) -> dict:
        body = {"project": project_id, "commit": commit, "step": step, **payload}
        return self.ok(self.post("executions/", json=body), 201)

    def wait(
        self, path: str, predicate: Callable[[dict], bool] = lambda o: o["status"] in TERMINAL, timeout: float = 30
    ) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            obj = self.ok(self.get(path))
            if predicate(obj):
                return obj
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting on {path}: {obj.get('status')}")
            time.sleep(0.1)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalValohai]:
    with LocalValohai(tmp_path_factory.mktemp("lv"), workers=2) as srv:
        yield srv


@pytest.fixture(scope="session")
def api(server: LocalValohai) -> Api:
    return Api(server)


@pytest.fixture(scope="module")
def project(api: Api, request: pytest.FixtureRequest) -> dict:
    proj = api.create_project(f"proj-{request.module.__name__.rsplit('.', 1)[-1]}")
    proj["commit"] = api.import_package(proj["id"])["identifier"]
    return proj
