"""What keeps the backend cheap under load: the read cache, the runner's shared unpacking, savepoints."""

from __future__ import annotations

from local_valohai.db import Store
from local_valohai.read_cache import ReadCache


def test_a_cached_body_lives_until_the_next_committed_write(tmp_path):
    store = Store(tmp_path / "db.sqlite3")
    cache = ReadCache(store, size=2)
    generation = cache.generation()
    cache.put(("pipeline", "a"), generation, b"old")
    assert cache.get(("pipeline", "a")) == b"old"

    with store.write() as tx:
        tx.execute("INSERT INTO projects (id, name, description, ctime, mtime) VALUES ('p', 'p', '', '', '')")
    assert cache.get(("pipeline", "a")) is None

    # A body built while a write committed carries the generation read before: it is never served.
    before = cache.generation()
    with store.write() as tx:
        tx.execute("UPDATE projects SET description='x' WHERE id='p'")
    cache.put(("pipeline", "b"), before, b"built during a write")
    assert cache.get(("pipeline", "b")) is None

    now = cache.generation()
    for name in ("c", "d", "e"):
        cache.put(("pipeline", name), now, name.encode())
    assert len(cache.entries) == 2 and cache.get(("pipeline", "e")) == b"e"


def test_a_failed_savepoint_undoes_only_its_part_and_its_callbacks(tmp_path):
    store = Store(tmp_path / "db.sqlite3")
    ran: list[str] = []
    with store.write() as tx:
        tx.execute("INSERT INTO projects (id, name, description, ctime, mtime) VALUES ('kept', 'k', '', '', '')")
        tx.after_commit(lambda: ran.append("kept"))
        try:
            with tx.savepoint():
                tx.execute(
                    "INSERT INTO projects (id, name, description, ctime, mtime) VALUES ('gone', 'g', '', '', '')"
                )
                tx.after_commit(lambda: ran.append("gone"))
                raise RuntimeError("the scheduler failed")
        except RuntimeError:
            pass
    assert [row["id"] for row in store.all("SELECT id FROM projects")] == ["kept"]
    assert ran == ["kept"]


def test_a_finished_pipeline_read_again_shows_a_change_made_since(api, project):
    nodes = [{"name": "only", "type": "execution", "template": {"commit": project["commit"], "step": "echo"}}]
    created = api.ok(api.post("pipelines/", json={"project": project["id"], "title": "c", "nodes": nodes}), 201)
    done = api.wait(created["url"])
    again = api.ok(api.get(created["url"]))
    assert again == done and done["status"] == "complete"
    by_counter = api.ok(api.get(f"pipelines/{project['id']}:{done['counter']}/"))
    assert by_counter == done

    patched = api.ok(api.session.patch(created["url"], json={"tags": ["after"]}, timeout=10))
    assert patched["tags"] == ["after"]
    assert api.ok(api.get(created["url"]))["tags"] == ["after"]
    assert api.ok(api.get(f"pipelines/{project['id']}:{done['counter']}/"))["tags"] == ["after"]


def test_a_list_of_finished_pipelines_listed_again_shows_a_change_made_since(api, project):
    """A page of finished pipelines is answered from the read cache until the next write."""
    nodes = [{"name": "only", "type": "execution", "template": {"commit": project["commit"], "step": "echo"}}]
    created = api.ok(api.post("pipelines/", json={"project": project["id"], "title": "l", "nodes": nodes}), 201)
    api.wait(created["url"])
    query = {"project": project["id"], "ordering": "-counter", "limit": 1000, "exclude": "outputs"}
    first = api.get("pipelines/", params=query)
    assert api.ok(api.get("pipelines/", params=query)) == api.ok(first)
    listed = {p["id"]: p for p in api.ok(first)["results"]}
    assert listed[created["id"]]["status"] == "complete"

    api.ok(api.session.patch(created["url"], json={"tags": ["listed-after"]}, timeout=10))
    again = {p["id"]: p for p in api.ok(api.get("pipelines/", params=query))["results"]}
    assert again[created["id"]]["tags"] == ["listed-after"]
    other_query = api.ok(api.get("pipelines/", params={**query, "limit": 1}))
    assert other_query["results"][0]["id"] == created["id"] and other_query["count"] == len(again)


def test_the_read_cache_keeps_to_its_byte_budget(tmp_path):
    cache = ReadCache(Store(tmp_path / "db.sqlite3"), size=10, max_bytes=10)
    now = cache.generation()
    cache.put(("a",), now, b"1234")
    cache.put(("b",), now, b"5678")
    cache.put(("c",), now, b"90ab")  # 12 bytes would not fit: the oldest goes
    assert cache.get(("a",)) is None and cache.get(("b",)) == b"5678" and cache.get(("c",)) == b"90ab"
    assert cache.bytes == 8
    cache.put(("b",), now, b"xy")  # replacing an entry frees its bytes first
    assert cache.bytes == 6 and cache.get(("b",)) == b"xy"
    cache.put(("huge",), now, b"x" * 11)  # bigger than the whole budget: not kept, nothing dropped
    assert cache.get(("huge",)) is None and cache.bytes == 6


def test_each_execution_gets_its_own_copy_of_the_commit(api, project):
    """The commit is unpacked once and copied: a step changing its repository leaves the next one alone."""
    command = "test ! -e valohai.yaml.changed && touch valohai.yaml.changed && echo tampered >> valohai.yaml"
    for _ in range(2):
        run = api.run(project["id"], project["commit"], "echo", command=command)
        finished = api.wait(f"executions/{run['id']}/")
        assert finished["status"] == "complete", finished["status_detail"]
