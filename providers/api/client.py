"""One small Valohai API client, shared by the providers, the tests and the scripts: HTTP only.

Why one client: retries, error messages and token hygiene are decided once. Every call goes through
`ValohaiClient.request`, which
- retries 429/5xx and connection errors with exponential backoff, honouring `Retry-After` (urllib3 Retry);
- retries idempotent methods (GET, DELETE, …) also when a response is cut off mid-body;
- never retries a POST by itself: a POST whose answer was lost may have been applied, so the providers
  retry creates through `providers.resources.adoption`, which looks for the object by its content tag first;
- raises the typed errors of `providers.api.errors`, carrying the server's own message, never the token
  (`ValohaiTransient` for what may succeed if tried again: 5xx, 429, a dropped connection, a time-out);
- sends the token only to the configured host: an absolute URL the server hands back (a list's `next`
  link) that points at another scheme, host or port is refused, not followed;
- refuses a host URL that carries credentials (`https://user:password@host`) and never shows them: every
  message shows such a URL through `redact_url` (`https://***@host`).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from providers.api.errors import (
    TRANSIENT_STATUSES,
    ValohaiError,
    ValohaiNotFound,
    ValohaiTransient,
    ValohaiUnreachable,
    http_error,
)

PIPELINE_PAGE = 1000  # pipelines per list request (the local backend allows 10000; Valohai's cap unverified)
API_PREFIX = "/api/v0/"
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
# Failures urllib3 cannot retry because they happen after the response started (a body cut short).
BROKEN_EXCHANGE = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)
DEFAULT_PORTS = {"http": 80, "https": 443}
# Everything up to the last `@` after the scheme: the user info (`user:password@`), even when a careless
# password holds `@` or `/` unencoded. Showing too little of a URL is the safe side.
_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)?(?P<userinfo>.*@)", re.DOTALL)
SHOWN_PROJECTS = 20  # how many visible projects an unknown-project message lists
# A stack program resolves `valohai:project` from several places (preflight, reuse, estimates), each with its
# own client; within a process, a name resolved by a token stays resolved this long (one list, not three).
RESOLVED_SECONDS = 60.0
_resolved: dict[tuple[str, str, str], tuple[float, dict]] = {}  # (host, token digest, spec) -> (when, project)


def _token_digest(token: str) -> str:
    """What the memo keeps of a token: its hash, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def redact_url(url: str) -> str:
    """The URL with any credentials in it replaced by `***` (`http://user:pw@host` -> `http://***@host`),
    so that an error message can show which URL was meant without echoing a password."""
    return _USERINFO.sub(lambda m: (m.group("scheme") or "") + "***@", str(url).strip(), count=1)


def has_credentials(url: str) -> bool:
    """True when the URL carries a user name or password (`scheme://user:pw@host`)."""
    return redact_url(url) != str(url).strip()


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in: what "the same host" means."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port that is not a number
        port = None
    return scheme, (parts.hostname or "").lower(), port


def project_label(project: Mapping[str, Any]) -> str:
    """`owner/name` as valohai-cli shows a project when owners differ, or just the name."""
    owner = (project.get("owner") or {}).get("username") if isinstance(project.get("owner"), Mapping) else None
    return f"{owner}/{project.get('name')}" if owner else str(project.get("name"))


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before giving up; tests shrink it, scripts keep the default."""

    total: int = 6
    backoff_factor: float = 0.2
    backoff_max: float = 10.0
    timeout: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt + 1` of what urllib3 cannot retry itself."""
        return min(self.backoff_factor * 2**attempt, self.backoff_max)

    def to_urllib3(self) -> Retry:
        return Retry(
            total=self.total,
            connect=self.total,
            read=self.total,
            status=self.total,
            backoff_factor=self.backoff_factor,
            backoff_max=self.backoff_max,
            status_forcelist=TRANSIENT_STATUSES,
            allowed_methods=IDEMPOTENT_METHODS,  # POSTs are retried by providers.resources.adoption
            respect_retry_after_header=True,
            raise_on_status=False,
        )


class ValohaiClient:
    """Methods are named after API actions; each returns the decoded JSON."""

    def __init__(
        self, host: str, token: str, *, retry: RetryPolicy = RetryPolicy(), session: requests.Session | None = None
    ) -> None:
        if has_credentials(host):
            raise ValueError(
                f"valohai host must not hold credentials, got {redact_url(host)!r}: give the host alone "
                f"(e.g. https://app.valohai.com) and the token as the secret valohai:token or VALOHAI_API_TOKEN"
            )
        parsed = urlsplit(host)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(
                f"valohai host must be an http(s) URL such as https://app.valohai.com, got {redact_url(host)!r}"
            )
        self.host = f"{parsed.scheme}://{parsed.netloc}"
        self._token = token
        self.retry = retry
        self.session = session or requests.Session()
        adapter = HTTPAdapter(max_retries=retry.to_urllib3(), pool_maxsize=16)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.request_count = 0
        self._download_session: requests.Session | None = None

    def __repr__(self) -> str:  # never show the token
        return f"ValohaiClient(host={self.host!r})"

    # --- plumbing -------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """The full URL of an API path (`users/me/`, `/api/v0/users/me/`) or of an absolute URL the server
        returned; an absolute URL on another host is refused, so the token never leaves `self.host`."""
        parts = urlsplit(path)
        if parts.scheme or parts.netloc:
            url = urljoin(self.host + "/", path)
            if origin(url) != origin(self.host):
                raise ValohaiError(
                    f"refusing to follow {redact_url(url)}: the API at {self.host} pointed to another host, and "
                    f"the token is sent only to valohai:host (check that valohai:host is the server's public URL)",
                    path=parts.path,
                )
            return url
        if path.startswith(API_PREFIX):
            return self.host + path
        return urljoin(self.host + API_PREFIX, path.lstrip("/"))

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        files: Any = None,
        data: Any = None,
    ) -> Any:
        url = self.url(path)
        shown = urlsplit(url).path
        headers = {"Authorization": f"Token {self._token}", "Accept": "application/json"}
        attempts = 1 + (self.retry.total if method in IDEMPOTENT_METHODS else 0)
        for attempt in range(attempts):
            self.request_count += 1
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    files=files,
                    data=data,
                    headers=headers,
                    timeout=self.retry.timeout,
                )
                return self._decode(response, method, shown)
            except BROKEN_EXCHANGE as exc:
                if attempt + 1 < attempts:
                    time.sleep(self.retry.delay(attempt))
                    continue
                raise self._transport_error(exc, method, shown) from None
            except (
                requests.exceptions.RetryError,
                requests.exceptions.ConnectionError,
                requests.exceptions.Timeout,
            ) as exc:
                raise self._transport_error(exc, method, shown) from None
        raise AssertionError("unreachable")

    def _transport_error(self, exc: requests.exceptions.RequestException, method: str, shown: str) -> ValohaiError:
        """The typed error for a request that got no usable answer; `Unreachable` only when nothing was sent."""
        if isinstance(exc, BROKEN_EXCHANGE):
            message, kind = f"{method} {shown}: the connection to {self.host} broke off mid-answer", ValohaiTransient
        elif isinstance(exc, requests.exceptions.RetryError):
            message = f"{method} {shown}: still failing after {self.retry.total} retries ({exc.__class__.__name__})"
            kind = ValohaiTransient
        elif isinstance(exc, requests.exceptions.ConnectTimeout):
            message = f"{method} {shown} could not connect to {self.host} within {self.retry.timeout:.0f}s"
            kind = ValohaiUnreachable
        elif isinstance(exc, requests.exceptions.ConnectionError) and never_connected(exc):
            message = (
                f"cannot reach the Valohai API at {self.host} ({method} {shown}); check valohai:host and "
                f"that the server is running"
            )
            kind = ValohaiUnreachable
        elif isinstance(exc, requests.exceptions.ConnectionError):
            message, kind = f"{method} {shown}: the connection to {self.host} was dropped", ValohaiTransient
        else:
            message = f"{method} {shown} timed out after {self.retry.timeout:.0f}s at {self.host}"
            kind = ValohaiTransient
        return kind(message, method=method, path=shown)

    @staticmethod
    def _decode(response: requests.Response, method: str, shown: str) -> Any:
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = response.text[:300]
        if response.status_code < 400:
            return body
        raise http_error(response.status_code, body or response.reason, method=method, path=shown)

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
        """A project by id, name or `owner/name`, matched without regard to case as `vh project link <spec>`
        does (valohai-cli, valohai_cli/commands/project/link.py: `filter_projects` compares the lower-cased
        id and name, and when several projects match it asks the user to pick one, showing `owner/name`
        when the owners differ). There is no one to ask here, so several matches are an error that lists the
        `owner/name` candidates; an exact-case match wins over case-insensitive ones. `owner/name` is this
        tool's addition, to pick one of them.
        """
        remembered = _resolved.get((self.host, _token_digest(self._token), name_or_id.strip()))
        if remembered and time.monotonic() - remembered[0] < RESOLVED_SECONDS:
            return dict(remembered[1])
        project = self._resolve_project(name_or_id)
        _resolved[(self.host, _token_digest(self._token), name_or_id.strip())] = (time.monotonic(), dict(project))
        return project

    def _resolve_project(self, name_or_id: str) -> dict:
        projects = self.list_projects()
        spec = name_or_id.strip()
        wanted = spec.lower()
        matches = [p for p in projects if str(p.get("id", "")).lower() == wanted]
        if not matches:
            matches = [p for p in projects if wanted in (str(p.get("name", "")).lower(), project_label(p).lower())]
        if len(matches) > 1:
            exact = [p for p in matches if spec in (p.get("id"), p.get("name"), project_label(p))]
            matches = exact if len(exact) == 1 else matches
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise ValohaiError(
                f"valohai:project {spec!r} is ambiguous: {len(matches)} projects visible with this token match it "
                f"({', '.join(sorted(project_label(p) for p in matches))}); set valohai:project to one of these "
                f"owner/name forms or to the project's id",
                path="projects/",
            )
        raise ValohaiNotFound(
            f"no Valohai project named or with id {spec!r} is visible with this token "
            f"(visible: {visible_projects(projects)}); create it or fix valohai:project",
            status=404,
            path="projects/",
        )

    # --- commits -------------------------------------------------------------------------------------

    def find_commit(self, project_id: str, identifier: str) -> dict | None:
        try:
            return self.get(f"commits/{identifier}/", project=project_id)
        except ValohaiNotFound:
            return None

    def import_package(
        self, project_id: str, tarball: bytes, *, description: str = "", yaml_path: str = "valohai.yaml"
    ) -> dict:
        files = {"data": ("data.tgz", tarball, "application/gzip")}
        return self.request(
            "POST",
            f"projects/{project_id}/import-package/",
            files=files,
            data={"description": description, "yaml_path": yaml_path},
        )

    # --- executions ----------------------------------------------------------------------------------

    def create_execution(self, payload: Mapping[str, Any]) -> dict:
        return self.post("executions/", dict(payload))

    def get_execution(self, execution_id: str, *, exclude: str = "") -> dict:
        return self.get(f"executions/{execution_id}/", **({"exclude": exclude} if exclude else {}))

    def list_executions(self, project_id: str, **filters: Any) -> list[dict]:
        return list(self.paginate("executions/", project=project_id, **filters))

    def stop_execution(self, execution_id: str) -> dict:
        return self.post(f"executions/{execution_id}/stop/")

    def execution_outputs(self, execution_id: str) -> list[dict]:
        return list(self.paginate("data/", output_execution=execution_id))

    # --- pipelines -----------------------------------------------------------------------------------

    def create_pipeline(self, payload: Mapping[str, Any]) -> dict:
        return self.post("pipelines/", dict(payload))

    def get_pipeline(self, pipeline_id: str) -> dict:
        return self.get(f"pipelines/{pipeline_id}/")

    def list_pipelines(self, project_id: str, **filters: Any) -> list[dict]:
        return list(
            self.paginate("pipelines/", page_size=PIPELINE_PAGE, project=project_id, ordering="-counter", **filters)
        )

    def stop_pipeline(self, pipeline_id: str) -> dict:
        return self.post(f"pipelines/{pipeline_id}/stop/")

    def delete_pipeline(self, pipeline_id: str) -> None:
        self.request("DELETE", f"pipelines/{pipeline_id}/")

    def set_pipeline_tags(self, pipeline_id: str, tags: list[str]) -> dict:
        """PATCH the pipeline's tags (unverified on Valohai: no valohai-cli command changes a pipeline)."""
        return self.request("PATCH", f"pipelines/{pipeline_id}/", json_body={"tags": tags})

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
            except (
                requests.exceptions.ConnectionError,
                requests.exceptions.Timeout,
                *BROKEN_EXCHANGE,
                requests.exceptions.RetryError,
            ) as exc:
                problem = f"download of datum {datum_id} failed ({exc.__class__.__name__})"
            time.sleep(self.retry.delay(attempt))
        raise ValohaiTransient(problem, path=f"data/{datum_id}/download/")


def visible_projects(projects: list[dict], limit: int = SHOWN_PROJECTS) -> str:
    """The projects a token can see, as one short line: `alice/a, bob/b, ... and 3 more`, or `none`."""
    labels = sorted(project_label(p) for p in projects)
    if not labels:
        return "none"
    more = f" and {len(labels) - limit} more" if len(labels) > limit else ""
    return ", ".join(labels[:limit]) + more


def never_connected(exc: requests.exceptions.ConnectionError) -> bool:
    """True when no connection was ever made (refused, no route, DNS): nothing can have been applied."""
    text = repr(exc)
    return any(marker in text for marker in ("NewConnectionError", "Connection refused", "NameResolutionError"))
