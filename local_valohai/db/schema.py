"""The database schema: one table per API object, plus events and metadata streamed from steps."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, description TEXT NOT NULL DEFAULT '',
    ctime TEXT NOT NULL, mtime TEXT NOT NULL, yaml_path TEXT NOT NULL DEFAULT 'valohai.yaml',
    environment_variables TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS commits (
    project_id TEXT NOT NULL, identifier TEXT NOT NULL, ref TEXT NOT NULL, adhoc INTEGER NOT NULL,
    description TEXT NOT NULL DEFAULT '', yaml_path TEXT NOT NULL, config_yaml TEXT NOT NULL,
    tarball TEXT NOT NULL, ctime TEXT NOT NULL, PRIMARY KEY (project_id, identifier)
);
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY, project_id TEXT NOT NULL, counter INTEGER NOT NULL, status TEXT NOT NULL,
    step TEXT NOT NULL, title TEXT, commit_identifier TEXT NOT NULL, ctime TEXT NOT NULL,
    mtime TEXT NOT NULL, start_time TEXT, end_time TEXT, parameters TEXT NOT NULL,
    inputs TEXT NOT NULL, input_files TEXT NOT NULL, environment_variables TEXT NOT NULL,
    tags TEXT NOT NULL, runtime_config TEXT NOT NULL, time_limit INTEGER, image TEXT,
    command TEXT NOT NULL, status_detail TEXT, cumulative_metadata TEXT,
    pipeline_id TEXT, pipeline_node_id TEXT, deleted INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER, stop_requested INTEGER NOT NULL DEFAULT 0, pid INTEGER,
    UNIQUE (project_id, counter)
);
CREATE INDEX IF NOT EXISTS executions_status ON executions (status);
CREATE INDEX IF NOT EXISTS executions_pipeline ON executions (pipeline_id);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, execution_id TEXT NOT NULL, time TEXT NOT NULL,
    stream TEXT NOT NULL, message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_execution ON events (execution_id, seq);
CREATE TABLE IF NOT EXISTS metadata (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, execution_id TEXT NOT NULL, time TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS metadata_execution ON metadata (execution_id, seq);
CREATE TABLE IF NOT EXISTS datums (
    id TEXT PRIMARY KEY, project_id TEXT NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL,
    sha256 TEXT NOT NULL, md5 TEXT NOT NULL, sha1 TEXT NOT NULL, ctime TEXT NOT NULL,
    output_execution_id TEXT, metadata TEXT NOT NULL DEFAULT '[]', tags TEXT NOT NULL DEFAULT '[]',
    purged INTEGER NOT NULL DEFAULT 0, deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS datums_project ON datums (project_id, ctime);
CREATE INDEX IF NOT EXISTS datums_execution ON datums (output_execution_id);
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY, project_id TEXT NOT NULL, name TEXT NOT NULL, ctime TEXT NOT NULL,
    UNIQUE (project_id, name)
);
CREATE TABLE IF NOT EXISTS dataset_versions (
    id TEXT PRIMARY KEY, dataset_id TEXT NOT NULL, name TEXT NOT NULL, ctime TEXT NOT NULL,
    seq INTEGER NOT NULL, output_execution_id TEXT, UNIQUE (dataset_id, name)
);
CREATE TABLE IF NOT EXISTS dataset_version_files (
    version_id TEXT NOT NULL, datum_id TEXT NOT NULL, position INTEGER NOT NULL,
    PRIMARY KEY (version_id, datum_id)
);
CREATE TABLE IF NOT EXISTS pipelines (
    id TEXT PRIMARY KEY, project_id TEXT NOT NULL, counter INTEGER NOT NULL, title TEXT NOT NULL,
    status TEXT NOT NULL, tags TEXT NOT NULL, parameters TEXT NOT NULL, ctime TEXT NOT NULL,
    mtime TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, log TEXT NOT NULL DEFAULT '[]',
    reuse_executions INTEGER NOT NULL DEFAULT 0, UNIQUE (project_id, counter)
);
CREATE INDEX IF NOT EXISTS pipelines_status ON pipelines (status);
CREATE TABLE IF NOT EXISTS nodes (
    id TEXT PRIMARY KEY, pipeline_id TEXT NOT NULL, position INTEGER NOT NULL, name TEXT NOT NULL,
    type TEXT NOT NULL, status TEXT NOT NULL, on_error TEXT NOT NULL, edge_merge_mode TEXT NOT NULL,
    template TEXT NOT NULL, execution_id TEXT, log TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS nodes_pipeline ON nodes (pipeline_id, position);
CREATE TABLE IF NOT EXISTS edges (
    id TEXT PRIMARY KEY, pipeline_id TEXT NOT NULL, position INTEGER NOT NULL,
    source_node TEXT NOT NULL, source_type TEXT NOT NULL, source_key TEXT NOT NULL,
    target_node TEXT NOT NULL, target_type TEXT NOT NULL, target_key TEXT NOT NULL,
    configuration TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS edges_pipeline ON edges (pipeline_id, position);
"""

# Columns added after a table was first created: (table, column, declaration). `Store` adds the missing
# ones when it opens an older database, so a data directory survives upgrades.
ADDED_COLUMNS = (
    ("executions", "pid", "INTEGER"),
    ("executions", "environment", "TEXT"),
    ("executions", "priority", "INTEGER"),
    ("executions", "secret_environment", "TEXT"),
    ("pipelines", "reuse_executions", "INTEGER NOT NULL DEFAULT 0"),
)
