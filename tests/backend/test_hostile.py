"""Hostile and careless requests: each answers 4xx (never 5xx), names the problem, and creates nothing.

One table of requests (the red-team list in docs/security.md), sent to one real server on one keep-alive
session; after each, the same session must still work and no object may have appeared.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import tarfile
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import SAMPLE, Api, package_bytes

HUGE = "1" + "0" * 30  # 10**30: more than SQLite's 64-bit integers


def tarball(files: dict[str, bytes], *, compress: bool = True) -> bytes:
    """A package holding exactly `files` (name → bytes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if compress else "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def with_yaml(text: str | bytes) -> bytes:
    """The sample project with its valohai.yaml replaced."""
    files = {p.name: p.read_bytes() for p in SAMPLE.iterdir() if p.is_file()}
    files["valohai.yaml"] = text if isinstance(text, bytes) else text.encode()
    return tarball(files)


def alias_bomb(levels: int = 9) -> str:
    """A valohai.yaml of ~600 bytes whose aliases stand for 10**levels nodes."""
    lines = ["- step: {name: a, image: x, command: x}", "- bomb0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"- bomb{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def unpack_bomb() -> bytes:
    """~65 KB that unpacks to 64 MiB."""
    return package_bytes(extra={"zeros.bin": "\0" * (64 * 1024 * 1024)})


def many_members(count: int = 10_001) -> bytes:
    files = {f"f{i}.txt": b"" for i in range(count)}
    files["valohai.yaml"] = (SAMPLE / "valohai.yaml").read_bytes()
    return tarball(files)


def upload(data: Callable[[], bytes]) -> Callable[[dict], tuple[str, str, dict]]:
    """An upload of the package `data()` builds (built when the case runs, not when the table is read)."""
    return lambda ctx: ("POST", f"projects/{ctx['project']}/import-package/", {"files": {"data": ("d.tgz", data())}})


def run(**payload: Any) -> Callable[[dict], tuple[str, str, dict]]:
    def make(ctx: dict) -> tuple[str, str, dict]:
        body = {"project": ctx["project"], "commit": ctx["commit"], "step": "produce", **payload}
        return "POST", "executions/", {"json": body}

    return make


def raw_json(text: Callable[[dict], str | bytes], path: str = "executions/") -> Callable[[dict], tuple[str, str, dict]]:
    return lambda ctx: ("POST", path, {"data": text(ctx), "headers": {"Content-Type": "application/json"}})


def pipeline(mutate: Callable[[dict], None]) -> Callable[[dict], tuple[str, str, dict]]:
    def make(ctx: dict) -> tuple[str, str, dict]:
        body = {
            "project": ctx["project"],
            "title": "hostile",
            "nodes": [{"name": "a", "template": {"commit": ctx["commit"], "step": "produce"}}],
            "edges": [],
        }
        mutate(body)
        return "POST", "pipelines/", {"json": body}

    return make


def version(**payload: Any) -> Callable[[dict], tuple[str, str, dict]]:
    def make(ctx: dict) -> tuple[str, str, dict]:
        body = {"dataset": ctx["dataset"], "name": "v-new", "files": [], **payload}
        body = {k: (v(ctx) if callable(v) else v) for k, v in body.items()}
        return "POST", "dataset-versions/", {"json": body}

    return make


def get(path: str) -> Callable[[dict], tuple[str, str, dict]]:
    return lambda ctx: ("GET", path.format(**ctx), {})


def template(**changes: Any) -> Callable[[dict], None]:
    return lambda body: body["nodes"][0]["template"].update(changes)


# (id, request, expected status, text the answer must contain)
HOSTILE: list[tuple[str, Callable[[dict], tuple[str, str, dict]], int, str]] = [
    # Query parameters: ranges, Unicode digits, huge numbers.
    ("offset-10**30", get("executions/?offset=" + HUGE), 400, "offset"),
    ("offset-expression", get("executions/?offset=10**30"), 400, "offset"),
    ("limit-negative", get("executions/?limit=-1"), 400, "limit"),
    ("data-offset-huge", get("data/?offset=" + HUGE), 400, "offset"),
    ("counter-superscript", get("executions/?counter=%C2%B2"), 400, "counter"),
    ("counter-30-digits", get("executions/?counter=" + HUGE), 400, "counter"),
    ("pipeline-counter-superscript", get("pipelines/?counter=%C2%B2"), 400, "counter"),
    ("ident-counter-superscript", get("executions/{project}:%C2%B2/"), 404, "not found"),
    ("ident-counter-30-digits", get("executions/{project}:" + HUGE + "/"), 404, "not found"),
    ("pipeline-ident-30-digits", get("pipelines/{project}:" + HUGE + "/"), 404, "not found"),
    ("events-limit-superscript", get("executions/{project}:1/events/?limit=%C2%B2"), 400, "limit"),
    ("bool-garbage", get("commits/?adhoc=maybe"), 400, "adhoc"),
    # Execution bodies: wrong types, non-finite numbers, sizes.
    ("commit-number", run(commit=5), 400, "commit"),
    ("commit-list", run(commit=["~abc"]), 400, "commit"),
    ("step-number", run(step=5), 400, "step"),
    (
        "project-list",
        lambda ctx: ("POST", "executions/", {"json": {"project": ["x"], "step": "produce"}}),
        400,
        "project",
    ),
    ("inputs-unknown-number", run(step="consume", inputs={"in": 5}), 400, "inputs"),
    ("inputs-number", run(step="consume", inputs={"data": 5}), 400, "inputs"),
    ("inputs-list-of-objects", run(step="consume", inputs={"data": [{"x": 1}]}), 400, "inputs"),
    ("inputs-list", run(step="consume", inputs=["datum://x"]), 400, "inputs"),
    (
        "inputs-10001-uris",
        run(step="consume", inputs={"data": [f"datum://d{i}" for i in range(10_001)]}),
        400,
        "10000 URIs",
    ),
    (
        "time-limit-infinity",
        raw_json(lambda ctx: f'{{"project": "{ctx["project"]}", "step": "produce", "time_limit": Infinity}}'),
        400,
        "Infinity",
    ),
    ("time-limit-NaN", raw_json(lambda ctx: f'{{"project": "{ctx["project"]}", "time_limit": NaN}}'), 400, "NaN"),
    ("time-limit-1e308", run(time_limit=1e308), 400, "time_limit"),
    ("time-limit-list", run(time_limit=[1]), 400, "time_limit"),
    ("parameters-string", run(parameters="count=3"), 400, "parameters"),
    ("parameters-object-value", run(parameters={"count": {"x": 1}}), 400, "parameters"),
    ("parameter-huge-string", run(parameters={"harbor": "x" * 100_000}), 400, "parameters"),
    ("environment-list", run(environment_variables=[1]), 400, "environment_variables"),
    ("environment-object-value", run(environment_variables={"A": {"b": 1}}), 400, "environment_variables"),
    ("tags-string", run(tags="x"), 400, "tags"),
    ("tags-thousand", run(tags=["x"] * 1000), 400, "tags"),
    ("title-5MB", run(title="t" * (5 * 1024 * 1024)), 400, "title"),
    ("title-number", run(title=5), 400, "title"),
    ("runtime-config-string", run(runtime_config="x"), 400, "runtime_config"),
    ("command-object", run(command={"x": 1}), 400, "command"),
    ("json-nested-100000", raw_json(lambda ctx: "[" * 100_000 + "]" * 100_000), 400, "nested"),
    ("json-nested-object-100", raw_json(lambda ctx: '{"a":' * 100 + "1" + "}" * 100), 400, "nested"),
    ("json-not-utf8", raw_json(lambda ctx: b'{"step": "\xff"}'), 400, "JSON parse error"),
    ("body-over-8MB", raw_json(lambda ctx: json.dumps({"title": "x" * (9 * 1024 * 1024)})), 413, "limit"),
    # Pipelines: node templates and top-level fields.
    ("pipeline-template-parameters-string", pipeline(template(parameters="x")), 400, "parameters"),
    ("pipeline-template-env-string", pipeline(template(environment_variables="abc")), 400, "environment_variables"),
    ("pipeline-template-inputs-number", pipeline(template(inputs={"data": 5})), 400, "inputs"),
    ("pipeline-template-commit-list", pipeline(template(commit=["x"])), 400, "commit"),
    ("pipeline-template-title-long", pipeline(template(title="t" * 5000)), 400, "title"),
    ("pipeline-template-time-limit-huge", pipeline(template(time_limit=1e300)), 400, "time_limit"),
    ("pipeline-edges-string", pipeline(lambda b: b.update(edges="x")), 400, "edges"),
    ("pipeline-nodes-number", pipeline(lambda b: b.update(nodes=5)), 400, "nodes"),
    ("pipeline-title-list", pipeline(lambda b: b.update(title=["x"])), 400, "title"),
    ("pipeline-title-5MB", pipeline(lambda b: b.update(title="t" * (5 * 1024 * 1024))), 400, "title"),
    ("pipeline-parameters-string", pipeline(lambda b: b.update(parameters="x")), 400, "parameters"),
    (
        "pipeline-parameter-config-number",
        pipeline(lambda b: b.update(parameters={"p": {"config": 5, "expression": 1}})),
        400,
        "config must be an object",
    ),
    (
        "pipeline-parameter-targets-number",
        pipeline(lambda b: b.update(parameters={"p": {"config": {"targets": 5}, "expression": 1}})),
        400,
        "targets must be a list",
    ),
    # Projects.
    (
        "project-description-long",
        lambda ctx: ("POST", "projects/", {"json": {"name": "d", "description": "d" * 20_000}}),
        400,
        "description",
    ),
    (
        "project-description-30MB",
        lambda ctx: ("POST", "projects/", {"json": {"name": "d", "description": "d" * 30_000_000}}),
        413,
        "limit",
    ),
    ("project-name-number", lambda ctx: ("POST", "projects/", {"json": {"name": 5}}), 400, "name"),
    (
        "project-yaml-path-escape",
        lambda ctx: ("POST", "projects/", {"json": {"name": "y", "yaml_path": "../x"}}),
        400,
        "yaml_path",
    ),
    # Packages: bombs, limits, broken archives, names in valohai.yaml.
    ("package-alias-bomb", upload(lambda: with_yaml(alias_bomb())), 400, "expands to more than"),
    ("package-unpack-bomb", upload(lambda: unpack_bomb()), 413, "package_ratio"),
    ("package-10001-members", upload(lambda: many_members()), 413, "package_members"),
    (
        "package-yaml-over-1MB",
        upload(lambda: with_yaml("".join(f"# {random.Random(i).getrandbits(128):032x}\n" for i in range(40_000)))),
        413,
        "yaml_bytes",
    ),
    (
        "package-yaml-not-utf8",
        upload(lambda: with_yaml(b"- step: {name: \xff\xfe, image: x, command: x}\n")),
        400,
        "UTF-8",
    ),
    ("package-yaml-nested", upload(lambda: with_yaml("[" * 5000 + "]" * 5000)), 400, "valohai.yaml"),
    ("package-truncated-gzip", upload(lambda: package_bytes()[:-200]), 400, "not a readable tar"),
    ("package-compressed-over-limit", upload(lambda: b"\0" * (65 * 1024 * 1024)), 413, "package_bytes"),
    (
        "package-yaml-input-escapes",
        upload(
            lambda: with_yaml(
                "- step:\n    name: s\n    image: x\n    command: x\n    inputs:\n      - name: ../../../../outside/x\n"
            )
        ),
        400,
        "without '..'",
    ),
    (
        "package-yaml-input-absolute",
        upload(
            lambda: with_yaml("- step:\n    name: s\n    image: x\n    command: x\n    inputs:\n      - name: /abs/x\n")
        ),
        400,
        "without '..'",
    ),
    (
        "package-description-long",
        lambda ctx: (
            "POST",
            f"projects/{ctx['project']}/import-package/",
            {
                "files": {"data": ("d.tgz", with_yaml((SAMPLE / "valohai.yaml").read_text() + "\n"))},
                "data": {"description": "d" * 20_000},
            },
        ),
        400,
        "description",
    ),
    # Dataset versions: names, and `previous_version` from elsewhere or nowhere.
    ("version-name-dotdot", version(name=".."), 400, "name"),
    ("version-name-escape", version(name="../../x"), 400, "name"),
    ("version-name-number", version(name=5), 400, "name"),
    ("version-dataset-list", version(dataset=["x"]), 400, "dataset"),
    ("version-files-string", version(files="x"), 400, "files"),
    (
        "version-previous-other-project",
        version(previous_version=lambda ctx: ctx["other_version"]),
        400,
        "previous_version",
    ),
    (
        "version-previous-missing",
        version(previous_version="00000000-0000-4000-8000-000000000000"),
        400,
        "previous_version",
    ),
    ("version-previous-number", version(previous_version=5), 400, "previous_version"),
]


def snapshot(api: Api, project_id: str) -> dict[str, Any]:
    """Everything a request could have created, server-wide for projects and in the project for the rest."""
    datasets = api.ok(api.get("datasets/", params={"project": project_id, "limit": 1000}))["results"]
    return {
        "projects": api.ok(api.get("projects/", params={"limit": 1}))["count"],
        "executions": api.ok(api.get("executions/", params={"project": project_id, "limit": 1}))["count"],
        "pipelines": api.ok(api.get("pipelines/", params={"project": project_id, "limit": 1}))["count"],
        "commits": len(api.ok(api.get(f"projects/{project_id}/commits/"))),
        "versions": sorted(v["id"] for d in datasets for v in d["versions"]),
    }


@pytest.fixture(scope="module")
def ctx(api: Api, project: dict) -> dict[str, Any]:
    """The project (with a dataset version from a real run) and a version that belongs to another project."""
    done = api.wait(api.run(project["id"], project["commit"], "produce", parameters={"harbor": "hostile"})["url"])
    assert done["status"] == "complete", done
    other = api.create_project("hostile-other")
    other_commit = api.import_package(other["id"])["identifier"]
    assert (
        api.wait(api.run(other["id"], other_commit, "produce", parameters={"harbor": "secret"})["url"])["status"]
        == "complete"
    )
    datasets = api.ok(api.get("datasets/", params={"project": project["id"], "name": "hostile_train"}))["results"]
    others = api.ok(api.get("datasets/", params={"project": other["id"], "name": "secret_train"}))["results"]
    return {
        "project": project["id"],
        "commit": project["commit"],
        "dataset": datasets[0]["id"],
        "other_version": others[0]["latest_version"]["id"],
    }


@pytest.mark.parametrize(("make", "status", "text"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_hostile_request_is_refused_and_creates_nothing(api, ctx, make, status, text):
    before = snapshot(api, ctx["project"])
    method, path, kwargs = make(ctx)
    response = api.session.request(method, api.url(path), timeout=60, **kwargs)
    assert response.status_code == status, f"{response.status_code}: {response.text[:500]}"
    assert text in response.text, response.text[:500]
    assert len(response.content) < 10_000
    assert api.get("users/me/").status_code == 200  # the same keep-alive session still works
    assert snapshot(api, ctx["project"]) == before


def test_previous_version_of_the_same_project_is_copied(api, ctx):
    """The positive case of the `previous_version` check: a version of the same project is accepted."""
    dataset = api.ok(api.get(f"datasets/{ctx['dataset']}/"))
    previous = dataset["latest_version"]["id"]
    created = api.ok(
        api.post(
            "dataset-versions/",
            json={"dataset": ctx["dataset"], "name": "v2", "files": [], "previous_version": previous},
        ),
        201,
    )
    old = api.ok(api.get(f"dataset-versions/{previous}/"))
    assert [f["datum"]["id"] for f in created["files"]] == [f["datum"]["id"] for f in old["files"]]


def test_sidecar_with_escaping_dataset_version_is_ignored_with_a_warning(api, ctx):
    script = (
        "import json, os; o = os.environ['VH_OUTPUTS_DIR']; open(o + '/f.txt', 'w').write('x'); "
        "json.dump({'valohai.dataset-versions': ['dataset://good/../../x', 'dataset://../x/v1']}, "
        "open(o + '/f.txt.metadata.json', 'w'))"
    )
    done = api.wait(api.run(ctx["project"], ctx["commit"], "produce", command=f'python -c "{script}"')["url"])
    assert done["status"] == "complete", done
    names = [
        d["name"] for d in api.ok(api.get("datasets/", params={"project": ctx["project"], "limit": 1000}))["results"]
    ]
    assert "good" not in names and ".." not in names
    events = api.ok(api.get(done["url"] + "events/", params={"limit": 0}))["events"]
    warnings = [e["message"] for e in events if "ignored dataset version" in e["message"]]
    assert len(warnings) == 2 and "without '..'" in warnings[0]


def test_unexpected_error_is_a_500_with_request_id_and_keeps_the_connection(tmp_path):
    """The catch-all, on the real app served by uvicorn, with one extra route that fails on purpose."""
    import http.client

    import uvicorn

    from local_valohai.app import create_app
    from local_valohai.settings import Settings
    from local_valohai.testing import free_port

    app = create_app(Settings.load(tmp_path, token="t", workers=1))

    @app.get("/api/v0/explode/")
    def explode() -> None:
        raise RuntimeError("deliberate failure")

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/api/v0/explode/", headers={"Authorization": "Token t"})
        response = conn.getresponse()
        body = response.read().decode()
        assert response.status == 500
        request_id = response.getheader("x-request-id")
        assert request_id and request_id in body and "deliberate" not in body
        sock = conn.sock
        assert sock is not None  # the server did not ask to close the connection
        conn.request("GET", "/api/v0/users/me/", headers={"Authorization": "Token t"})
        again = conn.getresponse()
        again.read()
        assert again.status == 200 and conn.sock is sock  # answered on the same connection
        conn.close()
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def test_alias_bomb_upload_does_not_block_the_server(api, project):
    """While bombs are parsed (an alias bomb, deeply nested YAML), `users/me/` keeps answering within 1 s."""
    bombs = [with_yaml(alias_bomb(12)), with_yaml("[" * 100_000 + "]" * 100_000)]
    answers: list[Any] = []

    def send() -> None:
        session = api.server.session()
        for data in bombs:
            files = {"data": ("d.tgz", data)}
            answers.append(session.post(api.url(f"projects/{project['id']}/import-package/"), files=files, timeout=120))

    worker = threading.Thread(target=send)
    worker.start()
    latencies = []
    while worker.is_alive() or not latencies:
        began = time.monotonic()
        assert api.get("users/me/").status_code == 200
        latencies.append(time.monotonic() - began)
        time.sleep(0.05)
    worker.join()
    assert max(latencies) < 1.0, latencies
    assert [a.status_code for a in answers] == [400, 400], [a.text[:300] for a in answers]
    assert all(len(a.content) < 10_000 for a in answers)


def test_data_directory_and_files_are_owner_only(api, server, project):
    assert server.data_dir.stat().st_mode & 0o777 == 0o700
    private = [server.data_dir / name for name in ("secret", "local-valohai.sqlite3", "server.log")]
    private += list((server.data_dir / "commits").glob("*.tgz")) + list((server.data_dir / "store").rglob("*"))
    assert len(private) > 5
    for path in private:
        expected = 0o700 if path.is_dir() else 0o600
        assert path.stat().st_mode & 0o777 == expected, (path, oct(path.stat().st_mode))


def test_gzip_bomb_body_is_not_a_tar(api, project):
    """A gzip stream that is not a tar at all (one huge member of zeros) is refused quickly, not inflated."""
    data = gzip.compress(b"\0" * (32 * 1024 * 1024))
    before = snapshot(api, project["id"])
    began = time.monotonic()
    response = api.post(f"projects/{project['id']}/import-package/", files={"data": ("d.tgz", data)})
    assert response.status_code in (400, 413), response.text
    assert time.monotonic() - began < 10
    assert snapshot(api, project["id"]) == before


def test_ordinary_yaml_anchors_still_work(api, project):
    """The alias cap refuses bombs, not anchors: two steps sharing a parameter list import and run."""
    text = (
        "- step:\n    name: a\n    image: python:3.11\n    command: echo {parameters}\n    parameters: &params\n"
        "      - name: x\n        type: integer\n        default: 1\n"
        "- step:\n    name: b\n    image: python:3.11\n    command: echo {parameters}\n    parameters: *params\n"
    )
    commit = api.import_package(project["id"], with_yaml(text))["identifier"]
    done = api.wait(api.run(project["id"], commit, "b", parameters={"x": 7})["url"])
    assert done["status"] == "complete" and done["parameters"] == {"x": 7}


WRONG = [5, -1, 1.5, True, None, "", "x" * 300, [], [1], {}, {"a": 1}, "../x", "²", HUGE, [{"a": [1]}]]


def test_wrong_values_in_every_field_never_answer_5xx(api, ctx):
    """Every body field and query parameter of the routes that take them, sent each odd value: no 5xx.

    Some odd values are valid (an empty title, an unknown template key), so this checks only that no
    answer is a server error; the table above checks the refusals one by one. Runs in its own project.
    """
    project = api.create_project("fuzz-target")["id"]
    commit = api.import_package(project)["identifier"]
    node = {"name": "a", "template": {"commit": commit, "step": "echo"}}
    edge = {
        "source_node": "a",
        "source_type": "output",
        "source_key": "*",
        "target_node": "b",
        "target_type": "input",
        "target_key": "data",
    }
    two = [
        {"name": "a", "template": {"commit": commit, "step": "produce"}},
        {"name": "b", "template": {"commit": commit, "step": "consume"}},
    ]
    bodies: list[tuple[str, Callable[[Any], dict]]] = []
    for field in (
        "project",
        "commit",
        "step",
        "parameters",
        "inputs",
        "environment_variables",
        "tags",
        "runtime_config",
        "time_limit",
        "title",
        "image",
        "command",
    ):
        bodies.append(("executions/", lambda w, f=field: {"project": project, "commit": commit, "step": "echo", f: w}))
        bodies.append(
            (
                "pipelines/",
                lambda w, f=field: {
                    "project": project,
                    "nodes": [{"name": "a", "template": {"commit": commit, "step": "echo", f: w}}],
                },
            )
        )
    for field in ("nodes", "edges", "parameters", "title", "tags", "project"):
        bodies.append(("pipelines/", lambda w, f=field: {"project": project, "nodes": [node], "edges": [], f: w}))
    for field in ("name", "type", "on-error", "edge-merge-mode", "template"):
        bodies.append(("pipelines/", lambda w, f=field: {"project": project, "nodes": [{**node, f: w}]}))
    for field in edge:
        bodies.append(("pipelines/", lambda w, f=field: {"project": project, "nodes": two, "edges": [{**edge, f: w}]}))
    bodies.append(
        (
            "pipelines/",
            lambda w: {
                "project": project,
                "nodes": two,
                "edges": [edge],
                "parameters": {"p": {"config": w, "expression": w}},
            },
        )
    )
    bodies.append(
        (
            "pipelines/",
            lambda w: {
                "project": project,
                "nodes": two,
                "edges": [edge],
                "parameters": {"p": {"config": {"targets": w}}},
            },
        )
    )
    for field in ("name", "description", "yaml_path"):
        bodies.append(("projects/", lambda w, f=field: {"name": "fuzz", f: w}))
    for field in ("dataset", "name", "files", "previous_version"):
        bodies.append(("dataset-versions/", lambda w, f=field: {"dataset": ctx["dataset"], "name": "fuzz", f: w}))
    failures = []
    for path, body in bodies:
        for value in WRONG:
            response = api.post(path, json=body(value))
            if response.status_code >= 500:
                failures.append((path, body(value), response.status_code))
    queries = (
        "offset",
        "limit",
        "counter",
        "status",
        "ordering",
        "deleted",
        "project",
        "pipeline",
        "include",
        "exclude",
        "tag",
        "adhoc",
    )
    for path in (
        "executions/",
        "pipelines/",
        "projects/",
        "data/",
        "datasets/",
        "commits/",
        f"executions/{project}:1/events/",
    ):
        for query in queries:
            for value in ("²", "-1", HUGE, "a,b", "-x", "\x00", "1.5"):
                response = api.get(path, params={query: value})
                if response.status_code >= 500:
                    failures.append((path, query, value, response.status_code))
    assert failures == []
    for pipeline in api.ok(api.get("pipelines/", params={"project": project, "limit": 1000}))["results"]:
        api.post(f"pipelines/{pipeline['id']}/stop/")  # leave no fuzz work queued for other tests
    for execution in api.ok(api.get("executions/", params={"project": project, "status": "incomplete", "limit": 1000}))[
        "results"
    ]:
        api.post(f"executions/{execution['id']}/stop/")


def test_a_thousand_cell_prediction_input_is_accepted(api, ctx):
    """The positive side of the URI cap: a 1,000-cell sweep's prediction takes two files per cell in one input."""
    datum = api.ok(api.get("data/", params={"project": ctx["project"]}))["results"][0]["id"]  # the ctx run's output
    method, path, kwargs = run(step="consume", inputs={"data": [f"datum://{datum}"] * 2_000})(ctx)
    response = api.session.request(method, api.url(path), timeout=60, **kwargs)
    assert response.status_code == 201, response.text[:300]
    api.post(f"executions/{response.json()['id']}/stop/")
