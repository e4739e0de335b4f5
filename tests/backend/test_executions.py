"""Single executions: failure detail, stop, time limit, events, outputs and their signed downloads."""

from __future__ import annotations

import os
import time
import uuid

import requests

from local_valohai import signing


def test_failing_step_ends_error_with_stderr_in_events(api, project):
    run = api.run(project["id"], project["commit"], "fail")
    done = api.wait(run["url"])
    assert done["status"] == "error"
    assert "exit code 3" in done["status_detail"] and "boom - bad things happened" in done["status_detail"]
    events = api.ok(api.get(run["url"] + "events/", params={"limit": 0}))["events"]
    assert any(e["stream"] == "stderr" and "boom" in e["message"] for e in events)
    assert all("T" in e["time"] for e in events)


def test_stop_kills_the_process_group(api, project):
    run = api.run(project["id"], project["commit"], "sleep")
    api.wait(run["url"], lambda e: e["status"] == "started")
    began = time.monotonic()
    api.ok(api.post(run["urls"]["stop"]))
    done = api.wait(run["url"], timeout=10)
    assert done["status"] == "stopped"
    assert time.monotonic() - began < 5


def test_time_limit_is_enforced(api, project):
    run = api.run(project["id"], project["commit"], "sleep", time_limit=1)
    done = api.wait(run["url"], timeout=15)
    assert done["status"] == "error"
    assert "time limit" in done["status_detail"]


def test_output_lines_metadata_and_a_background_process_left_behind(api, project):
    """CRLF and UTF-8 lines, a JSON line (metadata), a last stderr line without newline; a background
    process of the step's group holds the pipes open after the step exits and is killed with its group."""
    command = (
        r"""printf 'one\r\n\173"loss": 0.5\175\n\303\251t\303\251\n'; printf 'last words' >&2; sleep 30 & exit 0"""
    )
    began = time.monotonic()
    run = api.run(project["id"], project["commit"], "noop", command=command)
    done = api.wait(run["url"], timeout=20)
    assert done["status"] == "complete", done["status_detail"]
    assert time.monotonic() - began < 10  # not the background sleep's 30 s
    events = api.ok(api.get(run["url"] + "events/", params={"limit": 0}))["events"]
    lines = [(e["stream"], e["message"]) for e in events if e["stream"] != "status"]
    assert lines == [("stdout", "one"), ("stdout", '{"loss": 0.5}'), ("stdout", "été"), ("stderr", "last words")]
    metadata = api.ok(api.get(run["url"] + "metadata/"))
    assert metadata["cumulative"] == {"loss": 0.5}


def test_parameter_values_cannot_inject_shell(api, project):
    marker = f"/tmp/pwned-{uuid.uuid4().hex}"
    run = api.run(project["id"], project["commit"], "echo", parameters={"msg": f"x; touch {marker}"})
    done = api.wait(run["url"])
    assert done["status"] == "complete"
    assert not os.path.exists(marker)
    events = api.ok(api.get(run["url"] + "events/", params={"limit": 0}))["events"]
    assert any(e["message"] == f"--msg=x; touch {marker}" for e in events)


def test_lists_filters_counters_and_events_tail(api, project):
    run = api.run(project["id"], project["commit"], "produce", parameters={"harbor": "delta", "count": 3})
    done = api.wait(run["url"])
    assert done["status"] == "complete"
    by_counter = api.ok(
        api.get(f"executions/{project['id']}:{done['counter']}/", params={"exclude": "metadata,events"})
    )
    assert by_counter["id"] == done["id"] and by_counter["url"].endswith("/")
    page = api.ok(api.get("executions/", params={"project": project["id"], "counter": done["counter"]}))
    assert [e["id"] for e in page["results"]] == [done["id"]]
    assert set(page) == {"count", "next", "previous", "results"}
    complete = api.ok(
        api.get(
            "executions/",
            params={"project": project["id"], "status": ["complete", "error"], "ordering": "-counter", "limit": 1},
        )
    )
    assert complete["results"][0]["status"] in ("complete", "error") and complete["next"]
    incomplete = api.ok(api.get("executions/", params={"project": project["id"], "status": "incomplete"}))
    assert all(e["status"] in ("created", "queued", "started", "stopping") for e in incomplete["results"])
    tail = api.ok(api.get(run["url"] + "events/", params={"limit": 2}))
    assert (
        len(tail["events"]) == 2
        and tail["truncated"]
        and tail["events"][-1]["message"].startswith("Execution complete")
    )


def test_outputs_and_signed_downloads(api, server, project):
    run = api.run(project["id"], project["commit"], "produce", parameters={"harbor": "epsilon"})
    api.wait(run["url"])
    outputs = api.ok(api.get(run["url"] + "outputs/", params={"include": "download_url"}))
    by_name = {o["name"]: o for o in outputs}
    assert set(by_name) == {"data-epsilon.txt", "extra/notes.md"}
    body = requests.get(by_name["data-epsilon.txt"]["download_url"], timeout=5)  # no token
    assert body.status_code == 200 and body.text == "row 0\nrow 1\n"
    listed = api.ok(api.get("data/", params={"output_execution": run["id"], "limit": 5000}))
    assert {d["name"] for d in listed["results"]} == set(by_name)
    datum_id = by_name["data-epsilon.txt"]["id"]
    assert api.ok(api.get(f"data/{datum_id}"))["id"] == datum_id  # valohai-utils omits the slash
    url = api.ok(api.get(f"data/{datum_id}/download/"))["url"]
    assert requests.get(url, timeout=5).text == "row 0\nrow 1\n"

    other = by_name["extra/notes.md"]["id"]
    query = url.split("?", 1)[1]
    swapped = f"{server.api}/data/{other}/signed-download/?{query}"
    assert requests.get(swapped, timeout=5).status_code == 403  # bound to one datum
    secret = (server.data_dir / "secret").read_text().strip()
    past = int(time.time()) - 10
    expired = f"{server.api}/data/{datum_id}/signed-download/?expires={past}&signature={signing.signature(secret, datum_id, past)}"
    response = requests.get(expired, timeout=5)
    assert response.status_code == 403 and "expired" in response.json()["detail"]
    assert requests.get(f"{server.api}/data/{datum_id}/signed-download/", timeout=5).status_code == 403
