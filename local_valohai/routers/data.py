"""Datums (output files), their signed downloads, datasets and dataset versions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse

from .. import db
from ..db import Row, now_iso
from ..errors import ApiError, bad_request
from ..serializers import dataset_dict, dataset_version_dict, datum_dict
from ..services.outputs import blob_path
from ..signing import signed_path, verify
from ..validation import dataset_part, shorten, text
from .common import API_PREFIX, Payload, backend, base_url, bool_param, found, ordering, paginate

router = APIRouter(prefix=API_PREFIX)

DATUM_ORDERING = ("ctime", "name", "size")


def _datum(request: Request, datum_id: str) -> Row:
    return found(db.datums.get(backend(request).store, datum_id), "Datum")


def _datums(request: Request, rows: list[Row]) -> list[dict[str, Any]]:
    """Datums with their output execution's counter, looked up once for the whole list."""
    ids = [row["output_execution_id"] for row in rows if row["output_execution_id"]]
    counters = db.executions.counters(backend(request).store, ids)
    base = base_url(request)
    return [datum_dict(row, base, counters.get(row["output_execution_id"])) for row in rows]


@router.get("/data/")
def list_data(request: Request) -> JSONResponse:
    q = request.query_params
    query = db.datums.list_query()
    for key, column in (
        ("project", "project_id"),
        ("output_execution", "output_execution_id"),
        ("name", "name"),
        ("sha256", "sha256"),
    ):
        query.equals(column, q.get(key))
    if q.get("tag"):
        query.tagged(q["tag"])
    query.equals("deleted", 1 if bool_param(request, "deleted") else 0)
    order = ordering(request, DATUM_ORDERING, "name" if q.get("output_execution") else "-ctime")
    return JSONResponse(paginate(request, query, order, lambda rows: _datums(request, rows)))


@router.get("/data/{datum_id}/")
def get_datum(datum_id: str, request: Request) -> dict:
    return _datums(request, [_datum(request, datum_id)])[0]


@router.get("/data/{datum_id}/download/")
def download(datum_id: str, request: Request) -> dict:
    """Like Valohai: a short-lived URL that needs no token (the CLI fetches it with a plain session)."""
    row = _datum(request, datum_id)
    if row["purged"]:
        raise ApiError(410, {"detail": "This datum has been purged."})
    settings = backend(request).settings
    return {"url": base_url(request) + signed_path(settings.secret, row["id"], settings.signed_url_ttl)}


@router.get("/data/{datum_id}/signed-download/")
def signed_download(datum_id: str, request: Request) -> FileResponse:
    """The only unauthenticated route: the HMAC binds it to this datum and an expiry time."""
    b = backend(request)
    problem = verify(
        b.settings.secret, datum_id, request.query_params.get("expires"), request.query_params.get("signature")
    )
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
        db.datums.purge(tx, datum_id)
        shared = db.datums.blob_shared(tx, row["sha256"], datum_id)
    if not shared:
        blob_path(b.settings.store_dir, row["sha256"]).unlink(missing_ok=True)
    return {"id": datum_id, "purged": True}


@router.get("/datasets/")
def list_datasets(request: Request) -> dict:
    q = request.query_params
    query = db.datasets.list_query().equals("project_id", q.get("project")).equals("name", q.get("name"))
    store, base = backend(request).store, base_url(request)

    def serialize(rows: list[Row]) -> list[dict[str, Any]]:
        versions = db.datasets.versions_of(store, [row["id"] for row in rows])
        return [dataset_dict(row, versions.get(row["id"], []), base) for row in rows]

    return paginate(request, query, [("ctime", True)], serialize)


@router.get("/datasets/{dataset_id}/")
def get_dataset(dataset_id: str, request: Request) -> dict:
    store = backend(request).store
    row = found(db.datasets.get(store, dataset_id), "Dataset")
    return dataset_dict(row, db.datasets.versions_of(store, [row["id"]]).get(row["id"], []), base_url(request))


def _version_dict(request: Request, version_id: str) -> dict[str, Any]:
    store = backend(request).store
    row = found(db.datasets.get_version(store, version_id), "Dataset version")
    dataset = db.datasets.get(store, row["dataset_id"])
    assert dataset is not None
    return dataset_version_dict(row, dataset, db.datasets.files(store, version_id), base_url(request))


@router.get("/dataset-versions/{version_id}/")
def get_dataset_version(version_id: str, request: Request) -> dict:
    return _version_dict(request, version_id)


def _listed_datums(store: db.Db, files: Any, project_id: str) -> list[str]:
    """The datum ids of a `files` payload, each checked to exist in the dataset's project."""
    if not isinstance(files, list):
        raise bad_request("files", 'Expected a list of {"datum": id}')
    datum_ids: list[str] = []
    for f in files:
        datum_id = f.get("datum") if isinstance(f, dict) else None
        datum = db.datums.get(store, datum_id) if isinstance(datum_id, str) else None
        if datum is None or datum["project_id"] != project_id:
            raise bad_request("files", f"Datum {datum_id!r} not found in the dataset's project.")
        datum_ids.append(datum["id"])
    return datum_ids


@router.post("/dataset-versions/", status_code=201)
def create_dataset_version(request: Request, data: Payload) -> JSONResponse:
    """`{"dataset": id, "name": v, "files": [{"datum": id}], "previous_version"?: id}`, as Valohai takes it.

    `previous_version` must be an existing version of a dataset in the same project: its files are copied
    into the new version, so a version of another project would leak that project's files.
    """
    b = backend(request)
    store, limits = b.store, b.settings.limits
    dataset_id = text(data.get("dataset"), "dataset", limits.name)
    dataset = db.datasets.get(store, dataset_id) if dataset_id else None
    if dataset is None:
        raise bad_request("dataset", f"Dataset {shorten(dataset_id)!r} not found.")
    name = dataset_part(data.get("name"), "version name", "name", limits.name)
    files = data.get("files") or []
    if isinstance(files, list) and len(files) > limits.package_members:
        raise bad_request("files", f"At most {limits.package_members} files per request")
    datum_ids = _listed_datums(store, files, dataset["project_id"])
    previous_id = text(data.get("previous_version"), "previous_version", limits.name)
    with store.write() as tx:
        if db.datasets.version_named(tx, dataset["id"], name) is not None:
            raise bad_request("name", f"Version {name!r} already exists in dataset {dataset['name']!r}.")
        if previous_id:
            previous = db.datasets.get_version(tx, previous_id)
            previous_dataset = db.datasets.get(tx, previous["dataset_id"]) if previous else None
            if previous_dataset is None or previous_dataset["project_id"] != dataset["project_id"]:
                raise bad_request(
                    "previous_version", f"Dataset version {shorten(previous_id)!r} not found in the dataset's project."
                )
            datum_ids = [d["id"] for d in db.datasets.files(tx, previous_id)] + datum_ids
        version_id = db.datasets.create_version(tx, dataset["id"], name, datum_ids, now_iso())
    return JSONResponse(_version_dict(request, version_id), status_code=201)
