"""One small Valohai API client, shared by the providers, the tests and the scripts.

Why one client: retries, error messages and token hygiene are decided once. Every call goes through
`ValohaiClient.request`, which
- retries 429/5xx and connection errors with exponential backoff, honouring `Retry-After` (urllib3 Retry);
- retries idempotent methods (GET, DELETE, …) also when a response is cut off mid-body;
- never retries a POST by itself: a POST whose answer was lost may have been applied, so the providers
  retry creates through `providers.idempotent`, which looks for the object by its content tag first;
- raises typed errors carrying the server's own message, never the token (`ValohaiTransient` for what
  may succeed if tried again: 5xx, 429, a dropped connection, a time-out).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Optional
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

log = logging.getLogger(__name__)

API_PREFIX = "/api/v0/"
RETRY_STATUSES = (429, 500, 502, 503, 504)
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
# Failures urllib3 cannot retry because they happen after the response started (a body cut short).
BROKEN_EXCHANGE = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)


class ValohaiError(Exception):
    """An API call failed; `status` is the HTTP status (0 when the server was not reached)."""

    def __init__(self, message: str, *, status: int = 0, method: str = "", path: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.path = path


class ValohaiAuthError(ValohaiError):
    """401/403: the token is missing, wrong, or lacks access."""


class ValohaiNotFound(ValohaiError):
    """404: the object does not exist (or was deleted outside this tool)."""


class ValohaiBadRequest(ValohaiError):
    """400: the server rejected the payload; the message holds its field errors."""


class ValohaiTransient(ValohaiError):
    """5xx, 429, a dropped connection or a time-out: the call may succeed if tried again (and a POST
    may already have been applied)."""


class ValohaiUnreachable(ValohaiTransient):
    """The host could not be reached at all, after retries."""


def format_error_body(body: Any) -> str:
    """Flatten Valohai/DRF error bodies (`detail`, `message`, `{field: [..]}`) into one line."""
    if isinstance(body, Mapping):
        for key in ("detail", "message", "error"):
            if isinstance(body.get(key), str):
                return body[key]
        parts = []
        for field, value in body.items():
            if isinstance(value, list):
                value = "; ".join(v.get("message", str(v)) if isinstance(v, Mapping) else str(v) for v in value)
            elif isinstance(value, Mapping):
                value = format_error_body(value)
            parts.append(f"{field}: {value}")
        return ", ".join(parts)
    if isinstance(body, list):
        return "; ".join(format_error_body(b) for b in body)
    return str(body)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before giving up; tests shrink it, scripts keep the default."""

    total: int = 6
    backoff_factor: float = 0.2
    backoff_max: float = 10.0
    timeout: float = 30.0

    def to_urllib3(self) -> Retry:
        return Retry(
            total=self.total,
            connect=self.total,
            read=self.total,
            status=self.total,
            backoff_factor=self.backoff_factor,
            backoff_max=self.backoff_max,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=IDEMPOTENT_METHODS,  # POSTs are retried by providers.idempotent
            respect_retry_after_header=True,
            raise_on_status=False,
        )


class ValohaiClient:
    """Methods are named after API actions; each returns the decoded JSON."""

    def __init__(self, host: str, token: str, *, retry: RetryPolicy = RetryPolicy(),
                 session: Optional[requests.Session] = None) -> None:
        parsed = urlsplit(host)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"valohai host must be an http(s) URL such as https://app.valohai.com, got {host!r}")
        self.host = f"{parsed.scheme}://{parsed.netloc}"
        self._token = token
        self.retry = retry
        self.session = session or requests.Session()
        adapter = HTTPAdapter(max_retries=retry.to_urllib3(), pool_maxsize=16)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.request_count = 0
        self._download_session: Optional[requests.Session] = None

    def __repr__(self) -> str:  # never show the token
        return f"ValohaiClient(host={self.host!r})"

    # --- plumbing -------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        if path.startswith("http://") or path.startswith("https://"):
            return path
        return urljoin(self.host + API_PREFIX, path.lstrip("/"))

    def request(self, method: str, path: str, *, params: Optional[Mapping[str, Any]] = None,
                json_body: Any = None, files: Any = None, data: Any = None) -> Any:
        url = self.url(path)
        shown = urlsplit(url).path
        headers = {"Authorization": f"Token {self._token}", "Accept": "application/json"}
        attempts = 1 + (self.retry.total if method in IDEMPOTENT_METHODS else 0)
        for attempt in range(attempts):
            self.request_count += 1
            try:
                response = self.session.request(method, url, params=params, json=json_body, files=files, data=data,
                                                headers=headers, timeout=self.retry.timeout)
                return self._decode(response, method, shown)
            except BROKEN_EXCHANGE:
                if attempt + 1 < attempts:
                    time.sleep(min(self.retry.backoff_factor * 2 ** attempt, self.retry.backoff_max))
                    continue
                raise ValohaiTransient(f"{method} {shown}: the connection to {self.host} broke off mid-answer",
                                       method=method, path=shown) from None
            except requests.exceptions.RetryError as exc:
                raise ValohaiTransient(f"{method} {shown}: still failing after {self.retry.total} retries "
                                       f"({exc.__class__.__name__})", method=method, path=shown) from None
            except requests.exceptions.ConnectTimeout:
                raise ValohaiUnreachable(f"{method} {shown} could not connect to {self.host} within "
                                         f"{self.retry.timeout:.0f}s", method=method, path=shown) from None
            except requests.exceptions.ConnectionError as exc:
                if _never_connected(exc):
                    raise ValohaiUnreachable(
                        f"cannot reach the Valohai API at {self.host} ({method} {shown}); check valohai:host and "
                        f"that the server is running", method=method, path=shown) from None
                raise ValohaiTransient(f"{method} {shown}: the connection to {self.host} was dropped",
                                       method=method, path=shown) from None
            except requests.exceptions.Timeout:
                raise ValohaiTransient(f"{method} {shown} timed out after {self.retry.timeout:.0f}s at {self.host}",
                                       method=method, path=shown) from None
        raise AssertionError("unreachable")

    @staticmethod
    def _decode(response: requests.Response, method: str, shown: str) -> Any:
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = response.text[:300]
        if response.status_code < 400:
            return body
        message = f"{method} {shown} -> {response.status_code}: {format_error_body(body) if body else response.reason}"
        kind = {401: ValohaiAuthError, 403: ValohaiAuthError, 404: ValohaiNotFound, 400: ValohaiBadRequest}.get(
            response.status_code, ValohaiTransient if response.status_code in RETRY_STATUSES else ValohaiError)
        if kind is ValohaiAuthError:
            message += " (check the API token: stack config valohai:token or VALOHAI_API_TOKEN)"
        raise kind(message, status=response.status_code, method=method, path=shown)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json_body=body)

    def paginate(self, path: str, *, page_size: int = 500, **params: Any) -> Iterator[dict]:
        """Follow `next` links of Valohai's `{count, next, previous, results}` lists."""
        page = self.get(path, limit=page_size, **params)
        while True:
            if isinstance(page, list):  # a few endpoints return plain lists
                yield from page
                return
            yield from page.get("results", [])
            nxt = page.get("next")
            if not nxt:
                return
            page = self.request("GET", nxt)

    # --- users and projects -------------------------------------------------------------------------

    def me(self) -> dict:
        return self.get("users/me/")

    def get_project(self, project_id: str) -> dict:
        return self.get(f"projects/{project_id}/")

    def list_projects(self) -> list[dict]:
        return list(self.paginate("projects/"))

    def create_project(self, name: str, description: str = "") -> dict:
        return self.post("projects/", {"name": name, "description": description})

    def resolve_project(self, name_or_id: str) -> dict:
        """Accept a project id, a name, or `owner/name`, as `vh project link` does."""
        for project in self.list_projects():
            owner = (project.get("owner") or {}).get("username", "")
            if name_or_id in (project["id"], project["name"], f"{owner}/{project['name']}"):
                return project
        raise ValohaiNotFound(f"no Valohai project named or with id {name_or_id!r} is visible with this token; "
                              f"create it or fix valohai:project", status=404, path="projects/")

    # --- commits -------------------------------------------------------------------------------------

    def find_commit(self, project_id: str, identifier: str) -> Optional[dict]:
        try:
            return self.get(f"commits/{identifier}/", project=project_id)
        except ValohaiNotFound:
            return None

    def import_package(self, project_id: str, tarball: bytes, *, description: str = "",
                       yaml_path: str = "valohai.yaml") -> dict:
        files = {"data": ("data.tgz", tarball, "application/gzip")}
        return self.request("POST", f"projects/{project_id}/import-package/", files=files,
                            data={"description": description, "yaml_path": yaml_path})

    # --- executions ----------------------------------------------------------------------------------

    def create_execution(self, payload: Mapping[str, Any]) -> dict:
        return self.post("executions/", dict(payload))

    def get_execution(self, execution_id: str, *, exclude: str = "") -> dict:
        return self.get(f"executions/{execution_id}/", **({"exclude": exclude} if exclude else {}))

    def list_executions(self, project_id: str, **filters: Any) -> list[dict]:
        return list(self.paginate("executions/", project=project_id, **filters))

    def stop_execution(self, execution_id: str) -> dict:
        return self.post(f"executions/{execution_id}/stop/")

    def delete_execution(self, execution_id: str) -> None:
        self.request("DELETE", f"executions/{execution_id}/")

    def execution_events(self, execution_id: str, limit: int = 100) -> dict:
        return self.get(f"executions/{execution_id}/events/", limit=limit)

    def execution_outputs(self, execution_id: str) -> list[dict]:
        return list(self.paginate("data/", output_execution=execution_id))

    # --- pipelines -----------------------------------------------------------------------------------

    def create_pipeline(self, payload: Mapping[str, Any]) -> dict:
        return self.post("pipelines/", dict(payload))

    def get_pipeline(self, pipeline_id: str) -> dict:
        return self.get(f"pipelines/{pipeline_id}/")

    def list_pipelines(self, project_id: str, **filters: Any) -> list[dict]:
        return list(self.paginate("pipelines/", project=project_id, ordering="-counter", **filters))

    def stop_pipeline(self, pipeline_id: str) -> dict:
        return self.post(f"pipelines/{pipeline_id}/stop/")

    def delete_pipeline(self, pipeline_id: str) -> None:
        self.request("DELETE", f"pipelines/{pipeline_id}/")

    # --- data ----------------------------------------------------------------------------------------

    def download_url(self, datum_id: str) -> str:
        return self.get(f"data/{datum_id}/download/")["url"]

    def download(self, datum_id: str) -> bytes:
        """Fetch a datum's bytes through its signed URL: a session of its own, so the token is never sent
        to wherever the URL points, with the same retries as the API (the URL may be fetched again)."""
        if self._download_session is None:
            self._download_session = requests.Session()
            adapter = HTTPAdapter(max_retries=self.retry.to_urllib3())
            self._download_session.mount("http://", adapter)
            self._download_session.mount("https://", adapter)
        for attempt in range(1 + self.retry.total):
            url = self.download_url(datum_id)  # a fresh signature each time: an old one may have expired
            try:
                response = self._download_session.get(url, timeout=self.retry.timeout)
                if response.status_code < 400:
                    return response.content
                problem = f"download of datum {datum_id} -> {response.status_code}"
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout, *BROKEN_EXCHANGE,
                    requests.exceptions.RetryError) as exc:
                problem = f"download of datum {datum_id} failed ({exc.__class__.__name__})"
            time.sleep(min(self.retry.backoff_factor * 2 ** attempt, self.retry.backoff_max))
        raise ValohaiTransient(problem, path=f"data/{datum_id}/download/")


def dumps_stable(value: Any) -> str:
    """Canonical JSON: the basis of every content hash in the project."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _never_connected(exc: requests.exceptions.ConnectionError) -> bool:
    """True when no connection was ever made (refused, no route, DNS): nothing can have been applied."""
    text = repr(exc)
    return any(marker in text for marker in ("NewConnectionError", "Connection refused", "NameResolutionError"))
