"""The platform endpoints and error handling every service shares."""

from __future__ import annotations

import json
import logging
import time

import pytest
from webtest import TestApp

from ..conftest import make_settings


@pytest.fixture
def inv(service_client):
    return service_client("inventory")


@pytest.mark.parametrize("service", ["inventory", "shipping", "support"])
def test_ops_endpoints_are_public(service_client, service):
    app = service_client(service).anonymous
    assert app.get("/healthz").json == {"status": "ok", "service": service}
    assert app.get("/readyz").json["database"] == "ok"
    assert "logistics_http_requests_total" in app.get("/metrics").text
    spec = app.get("/openapi.json").json
    assert spec["openapi"].startswith("3.")
    page = app.get("/docs")
    assert "swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    assert app.get("/docs/static/swagger/swagger-ui-bundle.js").content_length > 100_000


def test_openapi_documents_every_inventory_operation_with_its_schemas(inv):
    spec = inv.anonymous.get("/openapi.json").json
    ops = {(path, method) for path, item in spec["paths"].items() for method in item}
    assert ("/v1/reservations", "post") in ops
    assert ("/v1/items/{sku}", "patch") in ops
    assert ("/v1/warehouses/{code}", "patch") in ops
    assert len(ops) == 24
    # The CSV upload: the file as the body or a form's part, the kind in the query.
    upload = spec["paths"]["/v1/imports"]["post"]
    assert set(upload["requestBody"]["content"]) == {"text/csv", "multipart/form-data"}
    assert {"202", "413", "415", "422"} <= set(upload["responses"])
    assert [p["name"] for p in upload["parameters"] if p["in"] == "query"] == ["kind", "warehouse"]
    # Lists people open in a spreadsheet answer CSV too.
    for path in ("/v1/stock", "/v1/movements", "/v1/imports/{id}/errors"):
        assert set(spec["paths"][path]["get"]["responses"]["200"]["content"]) == {
            "application/json",
            "text/csv",
        }
    post = spec["paths"]["/v1/reservations"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("ReservationCreate")
    assert {"409", "422", "401", "403", "415", "413", "400"} <= set(post["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in post["parameters"])
    line = spec["components"]["schemas"]["ReservationLineIn"]
    assert line["properties"]["quantity"]["maximum"] == 1_000_000_000
    assert line["additionalProperties"] is False


def test_wrong_method_is_405_with_allow(inv):
    res = inv.as_().delete("/v1/items", status=405)
    assert res.headers["Allow"] == "GET, POST"
    assert res.content_type == "application/problem+json"
    res = inv.as_().put_json("/v1/reservations/abc/release", {}, status=405)
    assert res.headers["Allow"] == "POST"


def test_unknown_path_is_a_problem_404(inv):
    res = inv.as_().get("/v2/nothing", status=404)
    assert res.json["instance"] == "/v2/nothing"
    assert res.content_type == "application/problem+json"


def test_request_id_is_echoed_or_made_and_in_every_log_line(inv, caplog):
    res = inv.as_().get("/v1/items", headers={"X-Request-ID": "abc-123"})
    assert res.headers["X-Request-ID"] == "abc-123"
    generated = inv.as_().get("/v1/items").headers["X-Request-ID"]
    assert len(generated) == 32
    # A hostile id is replaced, not reflected.
    assert inv.as_().get("/v1/items", headers={"X-Request-ID": "a\x01b" * 100}).headers["X-Request-ID"] != "a"


def test_log_lines_are_json_and_carry_the_request_id(service_client, capsys):
    from logistics_shared.logs import configure_logging

    client = service_client("inventory", access_log="true")
    configure_logging("INFO", "json")
    try:
        client.as_().get("/v1/items", headers={"X-Request-ID": "trace-me"})
        # A log line from deeper in the request, not the access log.
        client.as_().get("/v1/warehouses/NOPE", status=404)
        logging.getLogger("inventory.test").info("outside any request")
    finally:
        logging.getLogger().handlers = [
            h for h in logging.getLogger().handlers if not getattr(h, "_logistics", False)
        ]
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "logistics.access"]
    assert any(line["request_id"] == "trace-me" and line["status"] == 200 for line in access)
    assert next(line for line in lines if line["msg"] == "outside any request")["request_id"] is None


@pytest.mark.fresh_app
def test_metrics_count_requests_by_route_and_status(inv):
    inv.as_().get("/v1/items")
    inv.anonymous.get("/v1/items", status=401)
    text = inv.anonymous.get("/metrics").text
    assert (
        'logistics_http_requests_total{method="GET",route="/v1/items",service="inventory",status="200"} 1.0'
        in text
    )
    assert 'route="/v1/items",service="inventory",status="401"' in text
    assert "logistics_http_request_duration_seconds_bucket" in text


def test_database_down_gives_fast_503_and_readyz_503(tmp_path, specs):
    # A port nothing listens on: connection refused, not a hang.
    settings = make_settings(
        "inventory",
        "postgresql://postgres@127.0.0.1:9/none",
        tmp_path,
        jwt_secret="x" * 40,
        db_connect_timeout=2,
    )
    client = TestApp(specs["inventory"].configure(settings).make_wsgi_app())
    from logistics_shared.identity import Role
    from logistics_shared.security import load_keyring, mint_token

    token = mint_token(load_keyring(settings), role=Role.ADMIN, subject="a")
    started = time.monotonic()
    res = client.get("/v1/items", headers={"Authorization": f"Bearer {token}"}, status=503)
    assert time.monotonic() - started < 5
    assert res.headers["Retry-After"]
    assert res.content_type == "application/problem+json"
    assert "Traceback" not in res.text
    assert client.get("/readyz", status=503).json["database"] == "unreachable"
    assert client.get("/healthz").json["status"] == "ok"


def test_unexpected_errors_are_a_problem_without_traceback(specs, tmp_path):
    settings = make_settings("inventory", f"sqlite:///{tmp_path}/x.sqlite3", tmp_path)
    config = specs["inventory"].configure(settings)

    def boom(request):
        raise RuntimeError("secret internals")

    from pyramid.security import NO_PERMISSION_REQUIRED

    config.add_route("boom2", "/boom2")
    config.add_view(boom, route_name="boom2", permission=NO_PERMISSION_REQUIRED)
    res = TestApp(config.make_wsgi_app()).get("/boom2", status=500)
    assert res.content_type == "application/problem+json"
    assert "secret internals" not in res.text
