"""The read path clients poll: related rows in a fixed number of queries, small objects read on the loop."""

from __future__ import annotations

import asyncio
import threading

from local_valohai import db
from local_valohai.db import Store
from local_valohai.routers.common import INLINE_ROWS, small_read


def _two_node_pipeline(api, project) -> dict:
    nodes = [
        {"name": name, "type": "execution", "template": {"commit": project["commit"], "step": "echo"}}
        for name in ("first", "second")
    ]
    payload = {"project": project["id"], "title": "read-path", "nodes": nodes, "edges": []}
    return api.ok(api.post("pipelines/", json=payload), 201)


def _traced(store: Store) -> list[str]:
    statements: list[str] = []
    store.conn().set_trace_callback(statements.append)
    return statements


def test_related_rows_of_a_page_take_six_queries_whatever_its_size(api, project, server):
    created = [_two_node_pipeline(api, project) for _ in range(3)]
    done = [api.wait(p["url"]) for p in created]
    store = Store(server.data_dir / "local-valohai.sqlite3")
    rows = [db.pipelines.get(store, p["id"]) for p in done]
    statements = _traced(store)

    db.related.for_pipelines(store, rows[:1])
    one = len(statements)
    statements.clear()
    related = db.related.for_pipelines(store, rows)
    # nodes, their executions, projects, edges, commits, outputs: the pipelines' own project and counter
    # are not read again for their executions.
    assert one == len(statements) == 6, statements
    assert set(related.execution_related.pipeline_counters) == {p["id"] for p in done}

    for pipeline in done:
        for node in pipeline["nodes"]:
            assert node["execution"]["pipeline_counter"] == pipeline["counter"]
            assert node["execution"]["project"] == pipeline["project"]


def test_executions_of_a_pipeline_not_at_hand_still_get_its_counter(api, project, server):
    pipeline = api.wait(_two_node_pipeline(api, project)["url"])
    store = Store(server.data_dir / "local-valohai.sqlite3")
    execution = db.executions.get(store, pipeline["nodes"][0]["execution"]["id"])
    pipeline_row = db.pipelines.get(store, pipeline["id"])
    statements = _traced(store)

    queried = db.related.for_executions(store, [execution], outputs=False)
    assert queried.pipeline_counters == {pipeline["id"]: pipeline["counter"]}
    asked = len(statements)
    statements.clear()
    known = db.related.for_executions(store, [execution], outputs=False, known_pipelines=[pipeline_row])
    assert known.pipeline_counters == queried.pipeline_counters
    assert len(statements) == asked - 1  # the counter comes from the pipeline row at hand


def test_small_objects_are_read_on_the_event_loop_and_big_ones_in_the_thread_pool():
    async def threads() -> tuple[int, int, int]:
        loop_thread = threading.get_ident()
        small = await small_read(INLINE_ROWS, threading.get_ident)
        big = await small_read(INLINE_ROWS + 1, threading.get_ident)
        return loop_thread, small, big

    loop_thread, small, big = asyncio.run(threads())
    assert small == loop_thread
    assert big != loop_thread


def test_detail_reads_on_the_loop_answer_404_and_counter_addressing(api, project):
    missing = api.get("pipelines/00000000-0000-4000-8000-000000000000/")
    assert missing.status_code == 404 and missing.json() == {"detail": "Pipeline not found."}
    missing = api.get("executions/00000000-0000-4000-8000-000000000000/")
    assert missing.status_code == 404 and missing.json() == {"detail": "Execution not found."}
    pipeline = api.wait(_two_node_pipeline(api, project)["url"])
    assert api.ok(api.get(f"pipelines/{project['id']}:{pipeline['counter']}/"))["id"] == pipeline["id"]
    execution = pipeline["nodes"][1]["execution"]
    by_counter = api.ok(api.get(f"executions/{project['id']}:{execution['counter']}/", params={"exclude": "outputs"}))
    assert by_counter["id"] == execution["id"] and "outputs" not in by_counter
