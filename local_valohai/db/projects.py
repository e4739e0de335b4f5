"""Projects and their commits (ad-hoc packages, identified by `~` + sha256)."""

from __future__ import annotations

from collections.abc import Iterable

from .listing import ListQuery
from .store import Db, Row, dumps


def insert(db: Db, project_id: str, name: str, description: str, yaml_path: str, now: str) -> None:
    db.execute(
        "INSERT INTO projects (id, name, description, ctime, mtime, yaml_path, environment_variables)"
        " VALUES (?,?,?,?,?,?,?)",
        (project_id, name, description, now, now, yaml_path, dumps({})),
    )


def get(db: Db, project_id: str) -> Row | None:
    return db.one("SELECT * FROM projects WHERE id=?", (project_id,))


def get_many(db: Db, project_ids: Iterable[str]) -> dict[str, Row]:
    return {row["id"]: row for row in db.all_in("SELECT * FROM projects WHERE id IN ({marks})", project_ids)}


def by_id_or_name(db: Db, key: str) -> Row | None:
    return db.one("SELECT * FROM projects WHERE id=? OR name=?", (key, key))


def name_taken(db: Db, name: str) -> bool:
    return db.one("SELECT 1 FROM projects WHERE name=?", (name,)) is not None


def list_query() -> ListQuery:
    return ListQuery("projects")


def insert_commit(
    db: Db,
    project_id: str,
    identifier: str,
    description: str,
    yaml_path: str,
    config_yaml: str,
    tarball: str,
    now: str,
) -> None:
    """Record an ad-hoc commit (its ref is its identifier); importing the same package twice is a no-op."""
    db.execute(
        "INSERT OR IGNORE INTO commits (project_id, identifier, ref, adhoc, description, yaml_path,"
        " config_yaml, tarball, ctime) VALUES (?,?,?,?,?,?,?,?,?)",
        (project_id, identifier, identifier, 1, description, yaml_path, config_yaml, tarball, now),
    )


def commit(db: Db, project_id: str, identifier: str) -> Row | None:
    return db.one("SELECT * FROM commits WHERE project_id=? AND identifier=?", (project_id, identifier))


def commits_of(db: Db, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Row]:
    """(project id, identifier) → commit, for a whole page of executions at once."""
    wanted = set(keys)
    rows = db.all_in("SELECT * FROM commits WHERE identifier IN ({marks})", sorted({i for _, i in wanted}))
    return {key: row for row in rows if (key := (row["project_id"], row["identifier"])) in wanted}


def newest_commit(db: Db, project_id: str) -> Row | None:
    return db.one("SELECT * FROM commits WHERE project_id=? ORDER BY ctime DESC LIMIT 1", (project_id,))


def commits_with_prefix(db: Db, project_id: str, prefix: str) -> list[Row]:
    return db.all(
        "SELECT * FROM commits WHERE project_id=? AND substr(identifier,1,?)=?", (project_id, len(prefix), prefix)
    )


def newest_commit_named(db: Db, identifier: str) -> Row | None:
    """A commit by identifier in any project (the newest, should two projects hold the same package)."""
    return db.one("SELECT * FROM commits WHERE identifier=? ORDER BY ctime DESC", (identifier,))


def project_commits(db: Db, project_id: str) -> list[Row]:
    return db.all("SELECT * FROM commits WHERE project_id=? ORDER BY ctime DESC", (project_id,))


def commit_list_query() -> ListQuery:
    return ListQuery("commits")


def set_environment_variables(db: Db, project_id: str, variables: dict, now: str) -> None:
    db.execute("UPDATE projects SET environment_variables=?, mtime=? WHERE id=?", (dumps(variables), now, project_id))
