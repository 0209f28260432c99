"""Carriers and rate tables, quotes, label purchase and download, and the saga step
that follows a label: inventory issues the reserved stock.
"""

from __future__ import annotations

import copy
import re
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from inventory import handlers as inventory_handlers
from logistics_shared.bus.worker import Worker
from shipping.domain import labels as label_domain

from ..helpers.bus import wait_until
from ..helpers.shipping import (
    BULKY,
    CARRIER,
    DHL,
    DHL_EXPRESS,
    SECRET,
    SERVICE,
    deliver,
    emitted,
    make_ready,
    ready_shipment,
    setup_carriers,
    shipment_body,
)
from ..invariants import assert_inventory_invariants
from ..inventory.conftest import receive, seed


@pytest.fixture(params=["sqlite", "postgres"])
def ship(service_client, request):
    return service_client("shipping", request.param)


def outbox_types(client):
    with client.engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT event_type FROM outbox ORDER BY id"))]


# -- carriers and services ---------------------------------------------------------------
def test_carriers_and_services_are_created_listed_and_never_show_the_secret(ship):
    admin = ship.as_()
    bodies = []
    res = admin.post_json("/v1/carriers", CARRIER, status=201)
    bodies.append(res.body)
    assert res.json == {
        "code": "POSTNL",
        "name": "PostNL",
        "tracking_prefix": "POS",
        "services": [],
        "created_at": res.json["created_at"],
    }
    assert res.headers["Location"].endswith("/v1/carriers/POSTNL")
    res = admin.post_json("/v1/carriers/POSTNL/services", SERVICE, status=201)
    bodies.append(res.body)
    assert res.headers["Location"].endswith("/v1/carriers/POSTNL/services/standard")
    assert res.json["rate_table"]["zones"][1] == {
        "name": "ams",
        "countries": ["NL"],
        "postal_prefixes": ["10", "11"],
    }
    assert res.json["rate_table"]["weight_bands"][0]["prices"] == {"nl": 495, "ams": 395, "eu": 995}
    bodies.append(admin.post_json("/v1/carriers", DHL, status=201).body)
    bodies.append(admin.post_json("/v1/carriers/DHL/services", DHL_EXPRESS, status=201).body)

    listed = admin.get("/v1/carriers").json
    bodies.append(admin.get("/v1/carriers").body)
    assert [c["code"] for c in listed["items"]] == ["DHL", "POSTNL"]
    assert [s["code"] for s in listed["items"][1]["services"]] == ["standard"]
    assert listed["items"][0]["tracking_prefix"] == "JD"
    page = admin.get("/v1/carriers", {"limit": 1}).json
    rest = admin.get("/v1/carriers", {"limit": 1, "cursor": page["next_cursor"]}).json
    assert [page["items"][0]["code"], rest["items"][0]["code"]] == ["DHL", "POSTNL"]
    assert rest["next_cursor"] is None
    bodies.append(admin.get("/v1/carriers/POSTNL").body)
    bodies.append(admin.get("/v1/carriers/POSTNL/services/standard").body)

    # Conflicts and unknowns, and whoever else may read.
    again = admin.post_json("/v1/carriers", CARRIER, status=409)
    bodies.append(again.body)
    admin.post_json("/v1/carriers/POSTNL/services", SERVICE, status=409)
    admin.post_json("/v1/carriers/NOPE/services", SERVICE, status=404)
    admin.get("/v1/carriers/NOPE", status=404)
    admin.get("/v1/carriers/POSTNL/services/nope", status=404)
    bodies.append(admin.post_json("/v1/carriers", {**CARRIER, "code": "X", "extra": 1}, status=422).body)
    bodies.append(ship.as_("warehouse_staff", "AMS").get("/v1/carriers").body)
    bodies.append(ship.as_("support_agent").get("/v1/carriers/POSTNL").body)
    for body in bodies:
        assert SECRET.encode() not in body
        assert b"webhook_secret" not in body
    schemas = ship.as_().get("/openapi.json").json["components"]["schemas"]
    assert "webhook_secret" not in schemas["Carrier"]["properties"]
    assert schemas["CarrierCreate"]["properties"]["webhook_secret"]["writeOnly"] is True
    with ship.engine.connect() as conn:
        stored = conn.execute(
            text("SELECT webhook_secret, webhook_secret_encrypted FROM carriers WHERE code = 'POSTNL'")
        ).one()
    # Encrypted at rest (tests/shipping/test_carrier_secrets.py has the rest).
    assert stored.webhook_secret is None
    assert SECRET not in stored.webhook_secret_encrypted
    assert ship.registry["logistics.secretbox"].decrypt(stored.webhook_secret_encrypted) == SECRET


def test_only_admins_manage_carriers(ship):
    for role, warehouses in (("support_agent", ()), ("warehouse_staff", ("AMS",)), ("service", ())):
        client = ship.as_(role, *warehouses)
        client.post_json("/v1/carriers", CARRIER, status=403)
        client.post_json("/v1/carriers/POSTNL/services", SERVICE, status=403)
    ship.as_().post_json("/v1/carriers", CARRIER, status=201)
    ship.as_("support_agent").post_json("/v1/carriers/POSTNL/services", SERVICE, status=403)
    ship.anonymous.get("/v1/carriers", status=401)
    assert ship.as_("support_agent").get("/v1/carriers/POSTNL").json["services"] == []


def _with(path, value):
    """A copy of SERVICE with ``value`` at the JSON path (a tuple of keys/indices)."""
    body = copy.deepcopy(SERVICE)
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


def test_bad_carrier_and_rate_table_input_is_422_and_changes_nothing(ship):
    admin = ship.as_()
    carrier_cases = [
        ({**CARRIER, "bogus": 1}, "/bogus"),
        ({**CARRIER, "webhook_secret": "short"}, "/webhook_secret"),
        ({**CARRIER, "webhook_secret": 1234567890123456789}, "/webhook_secret"),
        ({**CARRIER, "tracking_prefix": "p1"}, "/tracking_prefix"),
        ({**CARRIER, "code": "no spaces"}, "/code"),
        ({k: v for k, v in CARRIER.items() if k != "webhook_secret"}, "/webhook_secret"),
    ]
    for body, pointer in carrier_cases:
        res = admin.post_json("/v1/carriers", body, status=422)
        assert pointer in [e["pointer"] for e in res.json["errors"]], (pointer, res.json)
        assert SECRET not in res.text
    assert admin.get("/v1/carriers").json["items"] == []

    admin.post_json("/v1/carriers", CARRIER, status=201)
    rt = ("rate_table",)
    band0 = (*rt, "weight_bands", 0)
    zone0 = (*rt, "zones", 0)
    service_cases = [
        ({**SERVICE, "bogus": 1}, "/bogus"),
        (_with((*rt, "bogus"), 1), "/rate_table/bogus"),
        (_with((*zone0, "bogus"), 1), "/rate_table/zones/0/bogus"),
        (_with((*band0, "bogus"), 1), "/rate_table/weight_bands/0/bogus"),
        # Money: integer minor units only.
        (_with((*band0, "prices", "nl"), 4.95), "/rate_table/weight_bands/0/prices/nl"),
        (_with((*band0, "prices", "nl"), "495"), "/rate_table/weight_bands/0/prices/nl"),
        (_with((*band0, "prices", "nl"), True), "/rate_table/weight_bands/0/prices/nl"),
        (_with((*band0, "prices", "nl"), -1), "/rate_table/weight_bands/0/prices/nl"),
        (_with((*band0, "prices", "mars"), 100), "/rate_table/weight_bands/0/prices/mars"),
        (_with((*band0, "prices"), {}), "/rate_table/weight_bands/0/prices"),
        (_with((*band0, "max_g"), 2000.5), "/rate_table/weight_bands/0/max_g"),
        (_with((*rt, "weight_bands", 1, "max_g"), 2000), "/rate_table/weight_bands/1/max_g"),
        # Currency: ISO 4217, upper case.
        (_with((*rt, "currency"), "EURO"), "/rate_table/currency"),
        (_with((*rt, "currency"), "eur"), "/rate_table/currency"),
        (_with((*rt, "currency"), "ABC"), "/rate_table/currency"),
        # Countries: ISO 3166-1 alpha-2, upper case.
        (_with((*zone0, "countries"), ["XX"]), "/rate_table/zones/0/countries/0"),
        (_with((*zone0, "countries"), ["NL", "nl"]), "/rate_table/zones/0/countries/1"),
        (_with((*zone0, "countries"), []), "/rate_table/zones/0/countries"),
        (_with((*zone0, "postal_prefixes"), ["10!"]), "/rate_table/zones/0/postal_prefixes/0"),
        (_with((*rt, "zones", 1, "name"), "nl"), "/rate_table/zones/1/name"),
        (_with((*rt, "dim_divisor"), "5000"), "/rate_table/dim_divisor"),
        (_with((*rt, "dim_divisor"), 0), "/rate_table/dim_divisor"),
        (_with((*rt, "weight_bands"), []), "/rate_table/weight_bands"),
    ]
    for body, pointer in service_cases:
        res = admin.post_json("/v1/carriers/POSTNL/services", body, status=422)
        assert pointer in [e["pointer"] for e in res.json["errors"]], (pointer, res.json)
    assert admin.get("/v1/carriers/POSTNL").json["services"] == []
    admin.post_json("/v1/carriers/POSTNL/services", SERVICE, status=201)


# -- rates -------------------------------------------------------------------------------
def quotes(client, shipment_id, role="admin", *warehouses, status=200):
    return client.as_(role, *warehouses).get(f"/v1/shipments/{shipment_id}/rates", status=status).json


def test_rates_cover_destinations_by_country_and_postal_prefix(ship):
    setup_carriers(ship)
    admin = ship.as_()
    nl = admin.post_json("/v1/shipments", shipment_body()).json["id"]
    assert quotes(ship, nl)["items"] == [
        {
            "carrier": "POSTNL",
            "service": "standard",
            "zone": "nl",
            "billable_weight_g": 1200,
            "price": {"amount_minor": 495, "currency": "EUR"},
        }
    ]
    # The most specific zone wins: Amsterdam's postal prefix over the whole country.
    ams = admin.post_json("/v1/shipments", shipment_body(postal_code="1011 ab")).json["id"]
    assert [(q["zone"], q["price"]["amount_minor"]) for q in quotes(ship, ams)["items"]] == [("ams", 395)]
    rtm = admin.post_json("/v1/shipments", shipment_body(postal_code="3011 AA")).json["id"]
    assert [q["zone"] for q in quotes(ship, rtm)["items"]] == ["nl"]
    # Germany: both carriers, cheapest first.
    de = admin.post_json("/v1/shipments", shipment_body(country="DE")).json["id"]
    assert [(q["carrier"], q["service"], q["price"]["amount_minor"]) for q in quotes(ship, de)["items"]] == [
        ("POSTNL", "standard", 995),
        ("DHL", "express", 1999),
    ]
    # Nobody serves the US.
    us = admin.post_json("/v1/shipments", shipment_body(country="US")).json["id"]
    assert quotes(ship, us)["items"] == []
    # Too heavy for the EU zone's bands (the last band prices only NL), and for DHL's.
    heavy = {"weight_g": 20_000, "length_mm": 100, "width_mm": 100, "height_mm": 100}
    de_heavy = admin.post_json("/v1/shipments", shipment_body(parcels=[heavy], country="DE")).json["id"]
    assert quotes(ship, de_heavy)["items"] == []
    nl_heavy = admin.post_json("/v1/shipments", shipment_body(parcels=[heavy, heavy])).json["id"]
    assert quotes(ship, nl_heavy)["items"] == []  # 40 kg: beyond the last band


def test_dimensional_weight_wins_over_actual_weight(ship):
    setup_carriers(ship)
    admin = ship.as_()
    bulky = admin.post_json("/v1/shipments", shipment_body(parcels=[BULKY], country="DE")).json["id"]
    found = {(q["carrier"], q["service"]): q for q in quotes(ship, bulky)["items"]}
    # 400x300x200 mm = 24,000 cm³: 4800 g at 5000 cm³/kg, 6000 g at 4000 cm³/kg (1200 g actual).
    assert found[("POSTNL", "standard")]["billable_weight_g"] == 4800
    assert found[("POSTNL", "standard")]["price"] == {"amount_minor": 1595, "currency": "EUR"}
    assert ("DHL", "express") not in found  # 6000 g > its 5000 g band
    # Per parcel, then summed: a heavy small parcel counts its actual weight.
    dense = {"weight_g": 3000, "length_mm": 100, "width_mm": 100, "height_mm": 100}  # dimensional 200 g
    two = admin.post_json("/v1/shipments", shipment_body(parcels=[BULKY, dense])).json["id"]
    (quote,) = quotes(ship, two)["items"]
    assert quote["billable_weight_g"] == 4800 + 3000
    # A dimensional weight that is not a whole number of grams rounds up.
    odd = {"weight_g": 1, "length_mm": 101, "width_mm": 101, "height_mm": 101}  # 1,030,301 mm³
    one = admin.post_json("/v1/shipments", shipment_body(parcels=[odd])).json["id"]
    assert quotes(ship, one)["items"][0]["billable_weight_g"] == 207  # ceil(206.06)


def test_rates_need_parcels_and_respect_warehouse_scope(ship):
    setup_carriers(ship)
    admin = ship.as_()
    bare = admin.post_json("/v1/shipments", shipment_body(parcels=())).json["id"]
    res = quotes(ship, bare, status=409)
    assert "parcels" in res["detail"]
    rtm = admin.post_json("/v1/shipments", shipment_body(warehouse="RTM")).json["id"]
    quotes(ship, rtm, "warehouse_staff", "AMS", status=404)
    assert quotes(ship, rtm, "warehouse_staff", "RTM")["items"]
    assert quotes(ship, rtm, "support_agent")["items"]
    quotes(ship, str(uuid.uuid4()), status=404)
    quotes(ship, "not-a-uuid", status=404)
    ship.as_().get(f"/v1/shipments/{rtm}/rates", {"x": 1}, status=422)


# -- labels ------------------------------------------------------------------------------
def test_a_label_is_bought_only_when_ready(ship):
    setup_carriers(ship)
    admin = ship.as_()
    staff = ship.as_("warehouse_staff", "AMS")
    choice = {"carrier": "POSTNL", "service": "standard"}
    shipment = admin.post_json("/v1/shipments", shipment_body(postal_code="1011AB")).json
    url = f"/v1/shipments/{shipment['id']}/label"
    res = staff.post_json(url, choice, status=409)
    assert res.json["current_status"] == "awaiting_stock"
    assert "awaiting_stock" in res.json["detail"]
    staff.get(url, status=404)  # nothing bought yet
    reservation_id = make_ready(ship, shipment["id"])

    # Bad choices are 422 on the field, and the shipment stays ready.
    cases = [
        ({"carrier": "UPS", "service": "standard"}, "/carrier"),
        ({"carrier": "POSTNL", "service": "overnight"}, "/service"),
        ({"carrier": "DHL", "service": "express"}, "/service"),  # does not serve NL
        ({"carrier": "POSTNL", "service": "standard", "format": "png"}, "/format"),
        ({"carrier": "POSTNL", "service": "standard", "extra": True}, "/extra"),
        ({"carrier": "POSTNL"}, "/service"),
    ]
    for body, pointer in cases:
        res = staff.post_json(url, body, status=422)
        assert [e["pointer"] for e in res.json["errors"]] == [pointer], res.json
    not_served = staff.post_json(url, {"carrier": "DHL", "service": "express"}, status=422)
    assert "does not serve NL" in not_served.json["errors"][0]["detail"]
    ship.as_("support_agent").post_json(url, choice, status=403)
    ship.as_("warehouse_staff", "RTM").post_json(url, choice, status=404)
    assert admin.get(f"/v1/shipments/{shipment['id']}").json["status"] == "ready"
    assert outbox_types(ship) == ["shipment.requested", "shipment.ready"]

    res = staff.post_json(url, choice, status=201)
    bought = res.json
    assert res.headers["Location"].endswith(url)
    assert bought["status"] == "label_purchased"
    assert (bought["carrier"], bought["service"]) == ("POSTNL", "standard")
    assert label_domain.tracking_number_valid(bought["tracking_number"])
    assert bought["tracking_number"].startswith("POS")
    assert bought["label"]["price"] == {"amount_minor": 395, "currency": "EUR"}
    assert bought["label"]["zone"] == "ams"
    assert bought["label"]["format"] == "pdf"
    assert bought["label"]["created_by"] == "warehouse_staff:test-warehouse_staff"
    assert bought["history"][-1]["to_status"] == "label_purchased"
    assert bought["tracking_number"] in bought["history"][-1]["detail"]
    assert "document" not in bought["label"]

    (event,) = emitted(ship, "shipment.label_purchased")
    assert event["data"]["tracking_number"] == bought["tracking_number"]
    assert str(event["data"]["reservation_id"]) == reservation_id
    assert event["data"]["status"] == "label_purchased"

    again = staff.post_json(url, choice, status=409)
    assert again.json["current_status"] == "label_purchased"
    assert len(emitted(ship, "shipment.label_purchased")) == 1
    # The shipment read back by GET carries the label too.
    assert admin.get(f"/v1/shipments/{shipment['id']}").json["status"] == "label_purchased"

    pdf = staff.get(url, status=200)
    assert pdf.content_type == "application/pdf"
    assert pdf.body.startswith(b"%PDF")
    assert (
        pdf.headers["Content-Disposition"] == f'attachment; filename="label-{bought["tracking_number"]}.pdf"'
    )
    assert bought["tracking_number"].encode() in pdf.body
    ship.as_("support_agent").get(url, status=200)
    ship.as_("warehouse_staff", "RTM").get(url, status=404)


def test_a_label_without_parcels_is_409_and_zpl_labels_download_as_text(ship):
    setup_carriers(ship)
    staff = ship.as_("warehouse_staff", "AMS")
    bare = ready_shipment(ship, parcels=())
    res = staff.post_json(
        f"/v1/shipments/{bare}/label", {"carrier": "POSTNL", "service": "standard"}, status=409
    )
    assert "parcels" in res.json["detail"]

    # Names outside Latin-1 and ZPL's own control characters are rendered safely.
    sid = ready_shipment(ship, name="Łukasz ^Ωmega~_", city="Kraków", country="DE")
    body = {"carrier": "DHL", "service": "express", "format": "zpl"}
    bought = staff.post_json(f"/v1/shipments/{sid}/label", body, status=201).json
    assert bought["tracking_number"].startswith("JD")
    assert bought["label"]["price"] == {"amount_minor": 1999, "currency": "EUR"}
    zpl = staff.get(f"/v1/shipments/{sid}/label", status=200)
    assert zpl.content_type == "text/plain"
    assert zpl.charset == "utf-8"
    assert zpl.headers["Content-Disposition"].startswith("attachment;")
    assert zpl.headers["Content-Disposition"].endswith('.zpl"')
    text_ = zpl.body.decode()
    assert text_.startswith("^XA") and text_.rstrip().endswith("^XZ")
    assert f"^FD{bought['tracking_number']}^FS" in text_
    assert "Łukasz _5EΩmega_7E_5F" in text_  # ^FH escapes, UTF-8 under ^CI28

    pdf_one = ready_shipment(ship, reference="ORDER-2", name="Łukasz Ωmega", city="Kraków")
    res = staff.post_json(f"/v1/shipments/{pdf_one}/label", {"carrier": "POSTNL", "service": "standard"})
    assert staff.get(f"/v1/shipments/{pdf_one}/label").body.startswith(b"%PDF")
    assert res.json["tracking_number"].encode() in staff.get(f"/v1/shipments/{pdf_one}/label").body


def test_buying_a_label_is_idempotent_with_a_key(ship):
    setup_carriers(ship)
    sid = ready_shipment(ship)
    staff = ship.as_("warehouse_staff", "AMS")
    headers = {"Idempotency-Key": "buy-1"}
    choice = {"carrier": "POSTNL", "service": "standard"}
    first = staff.post_json(f"/v1/shipments/{sid}/label", choice, headers=headers, status=201)
    second = staff.post_json(f"/v1/shipments/{sid}/label", choice, headers=headers, status=201)
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json["tracking_number"] == first.json["tracking_number"]
    assert len(emitted(ship, "shipment.label_purchased")) == 1


@pytest.mark.fresh_app
def test_concurrent_purchases_of_one_label_give_one_success(ship):
    setup_carriers(ship)
    sid = ready_shipment(ship)
    staff = ship.as_("warehouse_staff", "AMS")

    def buy(_):
        res = staff.post_json(
            f"/v1/shipments/{sid}/label", {"carrier": "POSTNL", "service": "standard"}, expect_errors=True
        )
        return res.status_int

    with ThreadPoolExecutor(6) as pool:
        statuses = sorted(pool.map(buy, range(6)))
    assert statuses == [201] + [409] * 5
    assert len(emitted(ship, "shipment.label_purchased")) == 1
    with ship.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM labels")).scalar() == 1


# -- tracking numbers --------------------------------------------------------------------
def test_tracking_number_check_digit():
    assert label_domain.luhn_check_digit("7992739871") == "3"  # the textbook example
    assert label_domain.luhn_check_digit("0000000000") == "0"
    assert label_domain.tracking_number_valid("AB79927398713")
    assert not label_domain.tracking_number_valid("AB79927398710")
    for _ in range(200):
        number = label_domain.new_tracking_number("ZZ")
        assert re.fullmatch(r"ZZ\d{11}", number)
        assert label_domain.tracking_number_valid(number)
        digits = number[2:]
        # Every single-digit error is caught.
        for i, digit in enumerate(digits):
            for other in "0123456789":
                if other != digit:
                    assert not label_domain.tracking_number_valid("ZZ" + digits[:i] + other + digits[i + 1 :])
        # And every adjacent transposition except 09 <-> 90 (Luhn's one blind spot).
        for i in range(len(digits) - 1):
            a, b = digits[i], digits[i + 1]
            if a != b and {a, b} != {"0", "9"}:
                swapped = digits[:i] + b + a + digits[i + 2 :]
                assert not label_domain.tracking_number_valid("ZZ" + swapped)
    for bad in ("zz79927398713", "Z79927398713", "ABCDE79927398713", "AB7992739871", "AB799273987133"):
        assert not label_domain.tracking_number_valid(bad)


def test_tracking_numbers_are_unique_and_a_collision_draws_again(ship, monkeypatch):
    setup_carriers(ship)
    staff = ship.as_("warehouse_staff", "AMS")
    choice = {"carrier": "POSTNL", "service": "standard"}
    first, second, third = (ready_shipment(ship, reference=f"O-{i}") for i in range(3))
    draws = iter(["0000000001", "0000000001", "0000000001", "0000000002"])
    monkeypatch.setattr(label_domain, "_random_digits", lambda: next(draws))
    one = staff.post_json(f"/v1/shipments/{first}/label", choice, status=201).json["tracking_number"]
    two = staff.post_json(f"/v1/shipments/{second}/label", choice, status=201).json["tracking_number"]
    assert one == "POS00000000018"
    assert two == "POS00000000026"
    assert label_domain.tracking_number_valid(one) and label_domain.tracking_number_valid(two)

    # Only collisions, however often it draws: a clean 409, and nothing changed.
    monkeypatch.setattr(label_domain, "_random_digits", lambda: "0000000001")
    res = staff.post_json(f"/v1/shipments/{third}/label", choice, status=409)
    assert "tracking number" in res.json["detail"]
    assert ship.as_().get(f"/v1/shipments/{third}").json["status"] == "ready"
    assert len(emitted(ship, "shipment.label_purchased")) == 2
    # And the database itself refuses a duplicate.
    with ship.engine.connect() as conn:
        count = conn.execute(text("SELECT COUNT(DISTINCT tracking_number), COUNT(*) FROM labels")).one()
    assert tuple(count) == (2, 2)
    with pytest.raises(IntegrityError), ship.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE labels SET tracking_number = :t WHERE shipment_id = :s",
            ),
            {"t": one, "s": second},
        )


def test_default_tracking_prefix_and_unknown_label_download(ship):
    admin = ship.as_()
    assert admin.post_json("/v1/carriers", {**CARRIER, "code": "x-1"}).json["tracking_prefix"] == "LG"
    assert admin.post_json("/v1/carriers", {**CARRIER, "code": "gls_de"}).json["tracking_prefix"] == "GLS"
    admin.get(f"/v1/shipments/{uuid.uuid4()}/label", status=404)
    admin.get("/v1/shipments/not-a-uuid/label", status=404)
    admin.post_json("/v1/shipments/not-a-uuid/label", {"carrier": "X", "service": "Y"}, status=404)


# -- the saga: inventory issues the stock --------------------------------------------------
def _sku1(inv):
    return inv.as_().get("/v1/stock", {"sku": "SKU-1", "warehouse": "AMS"}).json["items"][0]


def test_inventory_consumes_the_reservation_once_whatever_the_delivery_order(service_client):
    """Deterministic, without a broker: envelopes are carried between the services by hand."""
    inv = service_client("inventory")
    ship = service_client("shipping")
    seed(inv)
    receive(inv, "AMS", "SKU-1", 5)
    setup_carriers(ship)
    shipment = ship.as_().post_json("/v1/shipments", shipment_body()).json
    (requested,) = emitted(ship, "shipment.requested")
    deliver(inv, "inventory", inventory_handlers.shipment_requested, requested)
    (reserved,) = emitted(inv, "stock.reserved")
    from shipping import handlers as shipping_handlers

    deliver(ship, "shipping", shipping_handlers.stock_reserved, reserved)
    ship.as_().post_json(
        f"/v1/shipments/{shipment['id']}/label", {"carrier": "POSTNL", "service": "standard"}, status=201
    )
    (purchased,) = emitted(ship, "shipment.label_purchased")
    deliver(inv, "inventory", inventory_handlers.shipment_label_purchased, purchased)
    assert _sku1(inv) | {} == {
        "sku": "SKU-1",
        "warehouse": "AMS",
        "on_hand": 3,
        "reserved": 0,
        "available": 3,
    }
    # A redelivery (or a copy arriving late) finds nothing active and changes nothing.
    deliver(inv, "inventory", inventory_handlers.shipment_label_purchased, purchased)
    assert _sku1(inv)["on_hand"] == 3
    issues = inv.as_().get("/v1/movements", {"kind": "issue"}).json["items"]
    assert [(m["sku"], m["quantity"], m["reference"]) for m in issues] == [("SKU-1", -2, shipment["id"])]
    assert len(emitted(inv, "stock.issued")) == 1
    reservations = inv.as_().get("/v1/reservations", {"reference": shipment["id"]}).json["items"]
    assert [r["status"] for r in reservations] == ["consumed"]
    assert_inventory_invariants(inv.engine)


def test_a_label_event_for_a_released_reservation_changes_nothing(service_client):
    inv = service_client("inventory")
    seed(inv)
    receive(inv, "AMS", "SKU-1", 5)
    reference = str(uuid.uuid4())
    inv.as_().post_json(
        "/v1/reservations",
        {"warehouse": "AMS", "reference": reference, "lines": [{"sku": "SKU-1", "quantity": 2}]},
        status=201,
    )
    (held,) = inv.as_().get("/v1/reservations", {"reference": reference}).json["items"]
    inv.as_().post(f"/v1/reservations/{held['id']}/release", status=200)
    envelope = {
        "id": str(uuid.uuid4()),
        "type": "shipment.label_purchased",
        "data": {"shipment_id": uuid.UUID(reference)},
    }
    deliver(inv, "inventory", inventory_handlers.shipment_label_purchased, envelope)
    assert _sku1(inv)["on_hand"] == 5
    assert inv.as_().get("/v1/movements", {"kind": "issue"}).json["items"] == []
    assert_inventory_invariants(inv.engine)


FAST = {"bus_retry_delays": "0.2,0.4", "bus_max_attempts": 3, "bus_confirm_timeout": 3, "db_pool_size": 30}


@pytest.mark.postgres
def test_buying_the_label_makes_inventory_issue_the_stock_end_to_end(
    service_client, specs, rabbit, namespace
):
    inv = service_client("inventory", "postgres", broker_url=rabbit, bus_namespace=namespace, **FAST)
    ship = service_client("shipping", "postgres", broker_url=rabbit, bus_namespace=namespace, **FAST)
    seed(inv)
    setup_carriers(ship)
    workers = [
        Worker(specs["inventory"], inv.settings, inv.registry, periodic=False),
        Worker(specs["shipping"], ship.settings, ship.registry),
    ]
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            wait_until(lambda w=worker: w.readiness()["status"] == "ready", what="workers ready")
        receive(inv, "AMS", "SKU-1", 5)
        staff = ship.as_("warehouse_staff", "AMS")
        shipment = staff.post_json("/v1/shipments", shipment_body(), status=201).json
        url = f"/v1/shipments/{shipment['id']}"
        wait_until(lambda: staff.get(url).json["status"] == "ready", what="ready")
        assert _sku1(inv)["reserved"] == 2
        bought = staff.post_json(
            f"{url}/label", {"carrier": "POSTNL", "service": "standard"}, status=201
        ).json
        assert label_domain.tracking_number_valid(bought["tracking_number"])
        wait_until(lambda: _sku1(inv)["on_hand"] == 3, what="stock issued")
        assert _sku1(inv) | {} == {
            "sku": "SKU-1",
            "warehouse": "AMS",
            "on_hand": 3,
            "reserved": 0,
            "available": 3,
        }
        issues = inv.as_().get("/v1/movements", {"kind": "issue"}).json["items"]
        assert [(m["quantity"], m["reference"]) for m in issues] == [(-2, shipment["id"])]
        reservation = inv.as_().get(f"/v1/reservations/{bought['reservation_id']}").json
        assert reservation["status"] == "consumed"
        assert_inventory_invariants(inv.engine)
        # The shipment stays label_purchased until tracking moves it: on to delivered.
        assert staff.get(url).json["status"] == "label_purchased"
        for status in ("in_transit", "out_for_delivery", "delivered"):
            staff.post_json(f"{url}/tracking", {"status": status}, status=201)
        assert staff.get(url).json["status"] == "delivered"
        assert_inventory_invariants(inv.engine)
    finally:
        for worker in workers:
            worker.shutdown()
