"""Datums (output files), their signed downloads, datasets and dataset versions."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse

from ..errors import ApiError, bad_request, not_found
from ..serializers import dataset_dict, dataset_version_dict, datum_dict
from ..services.outputs import blob_path
from ..signing import signed_path, verify
from ..store import new_id, now_iso
from .common import backend, base_url, bool_param, ordering, paginate, read_payload

router = APIRouter()

DATUM_ORDERING = {"ctime": "ctime", "name": "name", "size": "size"}


def _datum(request: Request, datum_id: str):
    row = backend(request).store.one("SELECT * FROM datums WHERE id=?", (datum_id,))
    if row is None:
        raise not_found("Datum")
    return row


def _counter(request: Request, execution_id: str | None) -> int | None:
    if not execution_id:
        return None
    row = backend(request).store.one("SELECT counter FROM executions WHERE id=?", (execution_id,))
    return row["counter"] if row else None


@router.get("/data/")
async def list_data(request: Request) -> JSONResponse:
    q = request.query_params
    where, params = [], []
    for key, column in (("project", "project_id"), ("output_execution", "output_execution_id"), ("name", "name"),
                        ("sha256", "sha256")):
        if q.get(key):
            where.append(f"{column}=?")
            params.append(q[key])
    if q.get("tag"):
        where.append("EXISTS (SELECT 1 FROM json_each(datums.tags) WHERE json_each.value=?)")
        params.append(q["tag"])
    where.append("deleted=?")
    params.append(1 if bool_param(request, "deleted") else 0)
    order = ordering(request, DATUM_ORDERING, "name" if q.get("output_execution") else "-ctime")
    base = base_url(request)
    counters: dict[str, int | None] = {}

    def serialize(row):
        eid = row["output_execution_id"]
        if eid not in counters:
            counters[eid] = _counter(request, eid)
        return datum_dict(row, base, counters[eid])

    return JSONResponse(paginate(request, f"FROM datums WHERE {' AND '.join(where)}", params, order, serialize))


@router.get("/data/{datum_id}/")
async def get_datum(datum_id: str, request: Request) -> dict:
    row = _datum(request, datum_id)
    return datum_dict(row, base_url(request), _counter(request, row["output_execution_id"]))


@router.get("/data/{datum_id}/download/")
async def download(datum_id: str, request: Request) -> dict:
    """Like Valohai: a short-lived URL that needs no token (the CLI fetches it with a plain session)."""
    row = _datum(request, datum_id)
    if row["purged"]:
        raise ApiError(410, {"detail": "This datum has been purged."})
    settings = backend(request).settings
    return {"url": base_url(request) + signed_path(settings.secret, row["id"], settings.signed_url_ttl)}


@router.get("/data/{datum_id}/signed-download/")
async def signed_download(datum_id: str, request: Request) -> FileResponse:
    """The only unauthenticated route: the HMAC binds it to this datum and an expiry time."""
    b = backend(request)
    problem = verify(b.settings.secret, datum_id, request.query_params.get("expires"),
                     request.query_params.get("signature"))
    if problem:
        raise ApiError(403, {"detail": problem})
    row = _datum(request, datum_id)
    path = blob_path(b.settings.store_dir, row["sha256"])
    if row["purged"] or not path.exists():
        raise ApiError(410, {"detail": "This datum has been purged."})
    filename = row["name"].rsplit("/", 1)[-1]
    return FileResponse(path, filename=filename, media_type="application/octet-stream")


@router.post("/data/{datum_id}/purge/")
def purge(datum_id: str, request: Request) -> dict:
    b = backend(request)
    row = _datum(request, datum_id)
    with b.store.write() as tx:
        tx.execute("UPDATE datums SET purged=1 WHERE id=?", (datum_id,))
        others = tx.execute("SELECT 1 FROM datums WHERE sha256=? AND purged=0 AND id<>?", (row["sha256"], datum_id)).fetchone()
    if others is None:
        blob_path(b.settings.store_dir, row["sha256"]).unlink(missing_ok=True)
    return {"id": datum_id, "purged": True}


@router.get("/datasets/")
async def list_datasets(request: Request) -> dict:
    q = request.query_params
    where, params = ["1=1"], []
    for key, column in (("project", "project_id"), ("name", "name")):
        if q.get(key):
            where.append(f"{column}=?")
            params.append(q[key])
    b = backend(request)
    base = base_url(request)
    return paginate(request, f"FROM datasets WHERE {' AND '.join(where)}", params, "ctime DESC",
                    lambda r: dataset_dict(b.store, r, base))


@router.get("/datasets/{dataset_id}/")
async def get_dataset(dataset_id: str, request: Request) -> dict:
    b = backend(request)
    row = b.store.one("SELECT * FROM datasets WHERE id=?", (dataset_id,))
    if row is None:
        raise not_found("Dataset")
    return dataset_dict(b.store, row, base_url(request))


@router.get("/dataset-versions/{version_id}/")
async def get_dataset_version(version_id: str, request: Request) -> dict:
    b = backend(request)
    row = b.store.one("SELECT * FROM dataset_versions WHERE id=?", (version_id,))
    if row is None:
        raise not_found("Dataset version")
    dataset = b.store.one("SELECT * FROM datasets WHERE id=?", (row["dataset_id"],))
    return dataset_version_dict(b.store, row, dataset, base_url(request))


@router.post("/dataset-versions/", status_code=201)
async def create_dataset_version(request: Request) -> JSONResponse:
    """`{"dataset": id, "name": v, "files": [{"datum": id}], "previous_version"?: id}` (dataset-update-example)."""
    data = await read_payload(request)
    b = backend(request)
    dataset = b.store.one("SELECT * FROM datasets WHERE id=?", (str(data.get("dataset") or ""),))
    if dataset is None:
        raise bad_request("dataset", f"Dataset {data.get('dataset')!r} not found.")
    name = data.get("name")
    if not isinstance(name, str) or not name or "/" in name:
        raise bad_request("name", "A version name without '/' is required.")
    files = data.get("files") or []
    if not isinstance(files, list):
        raise bad_request("files", "Expected a list of {\"datum\": id}")
    datum_ids = []
    for f in files:
        datum_id = f.get("datum") if isinstance(f, dict) else None
        if not isinstance(datum_id, str) or b.store.one(
            "SELECT 1 FROM datums WHERE id=? AND project_id=?", (datum_id, dataset["project_id"])
        ) is None:
            raise bad_request("files", f"Datum {datum_id!r} not found in the dataset's project.")
        datum_ids.append(datum_id)
    version_id = new_id()
    with b.store.write() as tx:
        if tx.execute("SELECT 1 FROM dataset_versions WHERE dataset_id=? AND name=?", (dataset["id"], name)).fetchone():
            raise bad_request("name", f"Version {name!r} already exists in dataset {dataset['name']!r}.")
        if data.get("previous_version"):
            prev = [r["datum_id"] for r in tx.execute(
                "SELECT datum_id FROM dataset_version_files WHERE version_id=? ORDER BY position",
                (data["previous_version"],)).fetchall()]
            datum_ids = prev + datum_ids
        seq = tx.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM dataset_versions").fetchone()[0]
        tx.execute("INSERT INTO dataset_versions (id, dataset_id, name, ctime, seq) VALUES (?,?,?,?,?)",
                   (version_id, dataset["id"], name, now_iso(), seq))
        for position, datum_id in enumerate(dict.fromkeys(datum_ids)):
            tx.execute("INSERT INTO dataset_version_files (version_id, datum_id, position) VALUES (?,?,?)",
                       (version_id, datum_id, position))
    row = b.store.one("SELECT * FROM dataset_versions WHERE id=?", (version_id,))
    return JSONResponse(dataset_version_dict(b.store, row, dataset, base_url(request)), status_code=201)
