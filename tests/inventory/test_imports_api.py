"""``POST /v1/imports``: CSV uploads applied by inventory's worker, on PostgreSQL.

Uploads take real commits (the worker's chunks are transactions of their own, with
temporary staging tables dropped at commit), so every test here has a fresh database.
The worker is called as its periodic task calls it (``imports.process_pending``), or
run as the real :class:`Worker` in a thread.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from webob import Request as WebobRequest

from inventory import importer
from inventory.domain import bulk, import_worker, imports
from logistics_shared.cli import main
from logistics_shared.db import make_engine
from logistics_shared.identity import Role

from ..conftest import JWT_SECRET, Client, make_settings
from ..helpers.imports import assert_same_outputs, outputs
from ..invariants import assert_inventory_invariants
from .conftest import ADDRESS

pytestmark = [pytest.mark.fresh_app, pytest.mark.postgres]

ITEM_HEADER = "sku,name,unit_weight_g,length_mm,width_mm,height_mm,reorder_point"
LEASE = timedelta(seconds=60)


@pytest.fixture
def api(service_client: Callable[..., Client]) -> Client:
    client = service_client("inventory", "postgres", import_chunk_size=50)
    admin = client.as_()
    for code in ("AMS", "RTM"):
        admin.post_json("/v1/warehouses", {"code": code, "name": f"Warehouse {code}", "address": ADDRESS})
    return client


def run_worker(client: Client, chunk_size: int = 50) -> int:
    settings = client.settings
    return import_worker.process_pending(
        client.registry["dbsession_factory"], imports.spool_dir(settings), lease=LEASE, chunk_size=chunk_size
    )


def upload(
    app: Any, kind: str, content: str, *, multipart: bool = False, status: int = 202, **query: str
) -> Any:
    params = "&".join(f"{k}={v}" for k, v in {"kind": kind, **query}.items())
    if multipart:
        return app.post(
            f"/v1/imports?{params}", upload_files=[("file", "counts.csv", content.encode())], status=status
        )
    return app.post(f"/v1/imports?{params}", content.encode(), content_type="text/csv", status=status)


def items_csv(n: int, *extra: str, start: int = 0) -> str:
    rows = [f"SKU-{i:04d},Item {i},{100 + i},10,20,30,2" for i in range(start, start + n)]
    return "\n".join([ITEM_HEADER, *rows, *extra]) + "\n"


def parse_csv(body: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body)))


def scalar(client: Client, sql: str, **params: Any) -> Any:
    with client.engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


# --- the whole path ---------------------------------------------------------------------------
def test_items_as_text_csv_then_counts_as_multipart_applied_by_the_worker(api: Client) -> None:
    admin = api.as_()
    content = items_csv(
        120,
        "SKU-0003,Again,1,1,1,1,1",  # the repeated SKU: line 122, a bad row, not an overwrite
        "BAD SKU,Broken,x,10,10,10,",  # two bad cells: one error per column
    )
    res = upload(admin, "items", content)
    body = res.json
    assert res.headers["Location"] == f"/v1/imports/{body['id']}"
    assert (body["status"], body["kind"], body["rows_total"], body["rows_done"]) == (
        "queued",
        "items",
        122,
        0,
    )
    assert body["created_by"] == "admin:test-admin" and body["warehouse"] is None

    assert run_worker(api) == 1
    done = admin.get(res.headers["Location"]).json
    assert (done["status"], done["rows_done"], done["rows_failed"]) == ("succeeded", 122, 2)
    assert done["summary"] == {"created": 120, "updated": 0, "unchanged": 0}
    assert done["started_at"] and done["finished_at"] and done["error"] is None
    assert scalar(api, "SELECT name FROM items WHERE sku = 'SKU-0003'") == "Item 3"  # not overwritten

    errors = admin.get(f"/v1/imports/{body['id']}/errors").json
    assert errors["next_cursor"] is None
    assert errors["items"][0] == {
        "line": 122,
        "column": "sku",
        "value": "SKU-0003",
        "reason": "SKU 'SKU-0003' is already on line 5; a file may name each SKU once.",
    }
    assert [(e["line"], e["column"], e["value"]) for e in errors["items"][1:]] == [
        (123, "sku", "BAD SKU"),
        (123, "unit_weight_g", "x"),
    ]
    report = admin.get(f"/v1/imports/{body['id']}/errors", headers={"Accept": "text/csv"})
    assert report.content_type == "text/csv"
    rows = parse_csv(report.text)
    assert list(rows[0]) == ["line", "column", "value", "reason"]
    assert [(r["line"], r["column"], r["value"]) for r in rows] == [
        (str(e["line"]), e["column"], e["value"]) for e in errors["items"]
    ]

    counts = "warehouse,sku,counted,reason,note\n" + "".join(
        f"AMS,SKU-{i:04d},{i + 1},count,\n" for i in range(60)
    )
    res = upload(admin, "stock", counts, multipart=True)
    assert res.json["filename"] == "counts.csv"
    run_worker(api)
    done = admin.get(res.headers["Location"]).json
    assert (done["status"], done["rows_done"], done["summary"]) == (
        "succeeded",
        60,
        {"adjusted": 60, "unchanged": 0},
    )
    assert scalar(api, "SELECT count(*) FROM movements WHERE kind = 'adjustment'") == 60
    assert_inventory_invariants(api.engine)
    # Nothing left in the spool once an import is finished.
    assert list(imports.spool_dir(api.settings).glob("*")) == []


def test_the_api_path_leaves_the_ledger_and_events_the_cli_leaves(
    api: Client, database_factory: Callable[..., str], specs: dict[str, Any], tmp_path: Path
) -> None:
    items = items_csv(30, "SKU-0001,Again,1,1,1,1,1")
    counts = "warehouse,sku,counted,reason,note\n" + "".join(
        f"{w},SKU-{i:04d},{i * 2 + 1},count,n{i}\n" for w in ("AMS", "RTM") for i in range(0, 30, 3)
    )
    admin = api.as_()
    upload(admin, "items", items)
    run_worker(api)
    upload(admin, "stock", counts)
    run_worker(api)

    # The same files through `logistics inventory import` on a database of its own.
    url = database_factory(specs["inventory"], "postgres")
    engine = make_engine(make_settings("inventory", url, tmp_path))
    try:
        with engine.begin() as conn:
            for code in ("AMS", "RTM"):
                conn.execute(
                    text(
                        "INSERT INTO warehouses (code, name, address, created_at) "
                        "VALUES (:code, :name, :address, now())"
                    ),
                    {"code": code, "name": f"Warehouse {code}", "address": '{"x": 1}'},
                )
        env = {"LOGISTICS_INVENTORY_DATABASE_URL": url, "LOGISTICS_JWT_SECRET": JWT_SECRET}
        for kind, content in (("items", items), ("stock", counts)):
            path = tmp_path / f"{kind}.csv"
            path.write_text(content)
            result = CliRunner(env=env).invoke(
                main, ["inventory", "import", kind, str(path), "--chunk-size", "50", "--actor", "test-admin"]
            )
            # 1 for the items: the repeated SKU is a bad row; every count applies.
            assert result.exit_code == (1 if kind == "items" else 0), result.output
        cli, ours = outputs(engine), outputs(api.engine)
    finally:
        engine.dispose()
    # Ledger rows and events alike; only the actor differs (import:<user> vs the token's subject).
    for name in ("movements",):
        cli[name] = [row[:-1] for row in cli[name]]
        ours[name] = [row[:-1] for row in ours[name]]
    ours["events"] = [e for e in ours["events"] if e[0].startswith("stock.")]
    cli["events"] = [e for e in cli["events"] if e[0].startswith("stock.")]
    assert ours["events"], "the counts emitted no events"
    assert_same_outputs(cli, ours)
    assert_inventory_invariants(api.engine)


def test_the_worker_process_applies_uploads_in_the_background(service_client: Callable[..., Client]) -> None:
    from logistics_shared.bus.worker import Worker

    client = service_client("inventory", "postgres", import_poll_seconds="0.1")
    admin = client.as_()
    location = upload(admin, "items", items_csv(40)).headers["Location"]
    worker = Worker(
        client.registry["logistics.service"], client.settings, client.registry, relay=False, consumers=0
    )
    worker.start()
    try:
        from ..embedded import eventually

        eventually(lambda: admin.get(location).json["status"] == "succeeded", 30, "the import to succeed")
    finally:
        worker.shutdown()
    assert admin.get(location).json["rows_done"] == 40


def test_two_workers_share_the_queue_each_import_applied_once(api: Client) -> None:
    admin = api.as_()
    locations = [upload(admin, "items", items_csv(500, start=500 * n)).headers["Location"] for n in range(4)]
    errors: list[BaseException] = []
    taken: list[int] = []

    def work() -> None:
        try:
            taken.append(run_worker(api, chunk_size=100))
        except BaseException as exc:  # a failure in a thread must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors and not any(t.is_alive() for t in threads)
    assert sum(taken) == 4  # SKIP LOCKED: no import claimed by both
    for location in locations:
        done = admin.get(location).json
        assert (done["status"], done["rows_done"], done["summary"]["created"]) == ("succeeded", 500, 500)
    assert scalar(api, "SELECT count(*) FROM items") == 2000
    assert scalar(api, "SELECT max(attempts) FROM imports") == 1


def test_a_claim_skips_the_import_another_worker_is_claiming(api: Client) -> None:
    admin = api.as_()
    first, second = (upload(admin, "items", items_csv(1, start=n)).json["id"] for n in range(2))
    factory = api.registry["dbsession_factory"]
    with factory() as other_worker, other_worker.begin():
        # Another worker's claim, in the middle of its transaction: it holds the oldest.
        assert import_worker._claim(other_worker, LEASE).id == first
        claimed = import_worker.claim_next(factory, LEASE)
        assert claimed is not None and claimed.id == second
        assert import_worker.claim_next(factory, LEASE) is None
        other_worker.rollback()


# --- progress, a worker that dies -----------------------------------------------------------
def test_progress_commits_with_each_chunk_and_a_dead_worker_is_resumed_after_the_lease(
    api: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = api.as_()
    location = upload(admin, "items", items_csv(200)).headers["Location"]
    real = bulk.upsert_items
    calls = []

    def dies_in_the_third_chunk(session: Any, actor: Any, rows: Any) -> Any:
        calls.append(len(rows))
        if len(calls) == 3:
            raise SystemExit("the worker was killed")
        return real(session, actor, rows)

    monkeypatch.setitem(
        importer.KINDS, "items", dataclasses.replace(importer.ITEMS, apply_chunk=dies_in_the_third_chunk)
    )
    with pytest.raises(SystemExit):
        run_worker(api)
    halfway = admin.get(location).json
    assert (halfway["status"], halfway["rows_done"], halfway["summary"]["created"]) == ("running", 100, 100)
    # Within the lease nobody takes it over.
    assert run_worker(api) == 0
    with api.engine.begin() as conn:
        conn.execute(text("UPDATE imports SET heartbeat_at = heartbeat_at - interval '1 hour'"))
    monkeypatch.setitem(importer.KINDS, "items", importer.ITEMS)
    assert run_worker(api) == 1
    done = admin.get(location).json
    # Resumed after line 101: nothing applied twice (no "unchanged"), nothing skipped.
    assert (done["status"], done["rows_done"], done["summary"]) == (
        "succeeded",
        200,
        {"created": 200, "updated": 0, "unchanged": 0},
    )
    assert scalar(api, "SELECT count(*) FROM items") == 200


def test_an_import_whose_worker_keeps_dying_is_marked_failed(api: Client) -> None:
    admin = api.as_()
    res = upload(admin, "items", items_csv(5))
    location = res.headers["Location"]
    spooled = imports.spool_path(imports.spool_dir(api.settings), res.json["id"])
    assert spooled.exists()
    with api.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE imports SET status = 'running', attempts = :n, "
                "heartbeat_at = now() - interval '1 hour', resume_line = 3"
            ),
            {"n": import_worker.MAX_ATTEMPTS},
        )
    run_worker(api)
    failed = admin.get(location).json
    assert failed["status"] == "failed"
    assert failed["error"] == (
        "The worker stopped 3 times while applying this import; "
        "rows up to line 3 were applied, the rest were not."
    )
    # Nothing will read its file again: it does not stay on the shared spool volume.
    assert not spooled.exists()


def test_a_file_the_worker_cannot_find_fails_the_import_saying_so(api: Client) -> None:
    admin = api.as_()
    res = upload(admin, "items", items_csv(3))
    # A worker that does not share the web process's spool directory.
    imports.spool_path(imports.spool_dir(api.settings), res.json["id"]).unlink()
    run_worker(api)
    failed = admin.get(res.headers["Location"]).json
    assert (failed["status"], failed["rows_done"]) == ("failed", 0)
    assert failed["error"].startswith("The file cannot be imported: cannot read it: No such file")


# --- who may import, and what they see -------------------------------------------------------
COUNTS_AMS_RTM = "warehouse,sku,counted\nAMS,SKU-0000,5\nRTM,SKU-0001,5\nZZZ,SKU-0002,5\n"


def test_access(api: Client) -> None:
    admin = api.as_()
    upload(admin, "items", items_csv(3))
    run_worker(api)
    ams = api.as_(Role.WAREHOUSE_STAFF, "AMS")
    rtm = api.as_(Role.WAREHOUSE_STAFF, "RTM")
    both = api.as_(Role.WAREHOUSE_STAFF, "AMS", "RTM")
    agent = api.as_(Role.SUPPORT_AGENT)
    service = api.as_(Role.SERVICE)

    # Items: admins only.
    assert upload(ams, "items", items_csv(1), status=403).json["detail"] == "Only admins import items."
    for caller in (agent, service):
        upload(caller, "stock", COUNTS_AMS_RTM, status=403)
        caller.get("/v1/imports", status=403)
    # Staff with several warehouses name one; a warehouse not theirs is as unknown as none.
    missing = upload(both, "stock", COUNTS_AMS_RTM, status=422).json["errors"]
    assert missing == [
        {"pointer": "/warehouse", "detail": "Name the warehouse this count is for (one of yours)."}
    ]
    foreign = upload(ams, "stock", COUNTS_AMS_RTM, status=422, warehouse="RTM").json["errors"]
    unknown = upload(ams, "stock", COUNTS_AMS_RTM, status=422, warehouse="ZZZ").json["errors"]
    assert (
        foreign[0]["detail"] == "Unknown warehouse 'RTM'."
        and unknown[0]["detail"] == "Unknown warehouse 'ZZZ'."
    )

    res = upload(ams, "stock", COUNTS_AMS_RTM)
    assert res.json["warehouse"] == "AMS"
    mine = res.headers["Location"]
    run_worker(api)
    reasons = {e["line"]: e["reason"] for e in ams.get(f"{mine}/errors").json["items"]}
    # A row for a warehouse not the uploader's reads exactly like one for no warehouse at all.
    assert reasons == {3: "Unknown warehouse 'RTM'.", 4: "Unknown warehouse 'ZZZ'."}
    assert scalar(api, "SELECT count(*) FROM movements") == 1

    # Staff see their warehouses' imports only: another's is a 404, and not in their list.
    for path in (mine, f"{mine}/errors"):
        rtm.get(path, status=404)
        rtm.get(path, headers={"Accept": "text/csv"}, status=404)
        assert ams.get(path).status_code == 200 and admin.get(path).status_code == 200
    assert [i["id"] for i in rtm.get("/v1/imports").json["items"]] == []
    assert [i["id"] for i in ams.get("/v1/imports").json["items"]] == [mine.rsplit("/", 1)[1]]
    assert len(admin.get("/v1/imports").json["items"]) == 2
    # An admin's import limited to a warehouse refuses the other warehouses' rows too.
    scoped = upload(admin, "stock", COUNTS_AMS_RTM, warehouse="RTM").headers["Location"]
    run_worker(api)
    assert admin.get(scoped).json["summary"]["adjusted"] == 1
    assert [e["line"] for e in admin.get(f"{scoped}/errors").json["items"]] == [2, 4]
    assert_inventory_invariants(api.engine)


def test_an_idempotency_key_replays_the_upload_of_the_same_file(api: Client) -> None:
    admin = api.as_()
    key = {"Idempotency-Key": "upload-1"}
    content = items_csv(4)
    first = admin.post("/v1/imports?kind=items", content.encode(), content_type="text/csv", headers=key)
    # The same file again, even as a form (another boundary): the first answer, no second import.
    again = admin.post(
        "/v1/imports?kind=items", headers=key, upload_files=[("file", "items.csv", content.encode())]
    )
    assert (again.status_code, again.json, again.headers["Location"]) == (
        202,
        first.json,
        first.headers["Location"],
    )
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(admin.get("/v1/imports").json["items"]) == 1
    assert len(list(imports.spool_dir(api.settings).glob("*"))) == 1
    other = admin.post(
        "/v1/imports?kind=items", items_csv(5).encode(), content_type="text/csv", headers=key, status=422
    )
    assert other.json["errors"][0]["pointer"] == "/Idempotency-Key"
    assert len(list(imports.spool_dir(api.settings).glob("*"))) == 1


def test_the_list_pages_newest_first(api: Client) -> None:
    admin = api.as_()
    ids = [upload(admin, "items", items_csv(1, start=i)).json["id"] for i in range(5)]
    first = admin.get("/v1/imports?limit=2").json
    second = admin.get(f"/v1/imports?limit=2&cursor={first['next_cursor']}").json
    third = admin.get(f"/v1/imports?limit=2&cursor={second['next_cursor']}").json
    seen = [i["id"] for page in (first, second, third) for i in page["items"]]
    assert seen == ids[::-1] and third["next_cursor"] is None
    assert admin.get("/v1/imports?status=succeeded").json["items"] == []


# --- bad input ----------------------------------------------------------------------------------
BAD_UPLOADS = [
    # (what, query, content type, body, status, pointer or detail)
    ("json body", "kind=items", "application/json", b'{"sku": 1}', 415, None),
    ("no content type", "kind=items", "", b"x", 415, None),
    ("missing kind", "", "text/csv", items_csv(1).encode(), 422, "/kind"),
    ("unknown kind", "kind=orders", "text/csv", items_csv(1).encode(), 422, "/kind"),
    ("warehouse on items", "kind=items&warehouse=AMS", "text/csv", items_csv(1).encode(), 422, "/warehouse"),
    ("unknown parameter", "kind=items&mode=fast", "text/csv", items_csv(1).encode(), 422, "/mode"),
    ("empty file", "kind=items", "text/csv", b"", 422, "/file"),
    ("not CSV text", "kind=items", "text/csv", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", 422, "/file"),
    ("bad header", "kind=items", "text/csv", b"sku,title\nA,B\n", 422, "/file"),
    # PostgreSQL text cannot hold NUL: the chunk's statements failed and the import wedged.
    (
        "a NUL in a cell",
        "kind=items",
        "text/csv",
        b"sku,name,unit_weight_g,length_mm,width_mm,height_mm,reorder_point\nBAD\x00SKU,Broken,1,1,1,1,1\n",
        422,
        "/file",
    ),
    ("latin-1 charset", "kind=items", "text/csv; charset=latin-1", items_csv(1).encode(), 415, None),
]


@pytest.mark.parametrize(
    ("what", "query", "content_type", "body", "status", "pointer"),
    BAD_UPLOADS,
    ids=[b[0] for b in BAD_UPLOADS],
)
def test_bad_uploads_are_problems_and_queue_nothing(
    api: Client, what: str, query: str, content_type: str, body: bytes, status: int, pointer: str | None
) -> None:
    admin = api.as_()
    res = admin.post(f"/v1/imports?{query}", body, content_type=content_type, status=status)
    assert res.content_type == "application/problem+json"
    if pointer is not None:
        assert pointer in [e["pointer"] for e in res.json["errors"]], res.json
    assert admin.get("/v1/imports").json["items"] == []
    assert list(imports.spool_dir(api.settings).glob("*")) == []


def test_bad_forms(api: Client) -> None:
    admin = api.as_()
    no_file = admin.post(
        "/v1/imports?kind=items", {"other": "x"}, content_type="multipart/form-data", status=422
    ).json
    assert [e["pointer"] for e in no_file["errors"]] == ["/other"]
    empty_form = admin.post(
        "/v1/imports?kind=items",
        b"--b--\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=b"},
        status=422,
    ).json
    assert [e["pointer"] for e in empty_form["errors"]] == ["/file"]
    assert admin.get("/v1/imports").json["items"] == []
    # A part without a filename (curl -F 'file=<counts.csv') is the file all the same.
    res = admin.post(
        "/v1/imports?kind=items",
        (
            '--b\r\nContent-Disposition: form-data; name="file"\r\n\r\n' + items_csv(2) + "\r\n--b--\r\n"
        ).encode(),
        headers={"Content-Type": "multipart/form-data; boundary=b"},
        status=202,
    )
    assert (res.json["rows_total"], res.json["filename"]) == (2, None)


def test_an_upload_over_the_limit_is_a_413(service_client: Callable[..., Client]) -> None:
    client = service_client("inventory", "postgres", import_max_bytes=1000)
    admin = client.as_()
    over = items_csv(40)
    assert len(over) > 1000
    res = upload(admin, "items", over, status=413)
    assert res.json["detail"] == "The upload may be at most 1000 bytes."
    upload(admin, "items", over, multipart=True, status=413)
    # Without Content-Length (chunked), the count is kept while reading.
    request = WebobRequest.blank("/v1/imports?kind=items", method="POST")
    request.headers["Authorization"] = f"Bearer {client.token()}"
    request.content_type = "text/csv"
    request.body_file = io.BytesIO(over.encode())
    request.environ.pop("CONTENT_LENGTH", None)
    request.headers["Transfer-Encoding"] = "chunked"
    request.is_body_readable = True
    assert request.get_response(client.wsgi).status_code == 413
    upload(admin, "items", items_csv(3))  # under the limit
    assert len(admin.get("/v1/imports").json["items"]) == 1
    assert [p.name.endswith(".csv") for p in imports.spool_dir(client.settings).glob("*")] == [True]
