"""Shipping's demo data, created through its own HTTP API (``logistics demo``).

A carrier with two services and their rate tables, and five shipments that the real
saga takes to different states: ready, on hold (a shortage), delivered, an exception
(support opens a ticket for it) and cancelled. The warehouses and SKUs are the ones
inventory's demo creates (named here, not imported: a service never imports another).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from logistics_shared.demo import DemoContext, DemoError

SERVICE = "shipping"
CARRIER = "DEMOPOST"

RATE_ZONES = [
    {"name": "ams", "countries": ["NL"], "postal_prefixes": ["10", "11"]},
    {"name": "nl", "countries": ["NL"]},
    {"name": "eu", "countries": ["BE", "LU", "DE"]},
]
SERVICES = (
    {
        "code": "standard",
        "name": "Standard (2-3 days)",
        "rate_table": {
            "currency": "EUR",
            "dim_divisor": 5000,
            "zones": RATE_ZONES,
            "weight_bands": [
                {"max_g": 2000, "prices": {"ams": 395, "nl": 495, "eu": 995}},
                {"max_g": 10000, "prices": {"ams": 695, "nl": 795, "eu": 1595}},
                {"max_g": 30000, "prices": {"ams": 1195, "nl": 1295}},
            ],
        },
    },
    {
        "code": "express",
        "name": "Express (next day)",
        "rate_table": {
            "currency": "EUR",
            "dim_divisor": 4000,
            "zones": RATE_ZONES[:2],
            "weight_bands": [{"max_g": 5000, "prices": {"ams": 895, "nl": 1095}}],
        },
    },
)

#: What a tracking event of each status says (staff-recorded: an admin may, the webhook needs HMAC).
TRACKING = {
    "in_transit": ("Sorted and on its way", "Amsterdam sorting centre"),
    "out_for_delivery": ("With the courier", "Utrecht"),
    "delivered": ("Delivered at the front door", "Utrecht"),
    "exception": ("Address not found: there is no number 221B in this street", "Antwerp depot"),
}


def _to(name: str, line1: str, city: str, postal_code: str, country: str = "NL") -> dict[str, Any]:
    return {"name": name, "line1": line1, "city": city, "postal_code": postal_code, "country": country}


@dataclass(frozen=True)
class DemoShipment:
    reference: str
    warehouse: str
    ship_to: dict[str, Any]
    lines: tuple[tuple[str, int], ...]
    #: The states it is taken through; the first is the saga's answer (ready or on_hold).
    path: tuple[str, ...]

    def body(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "warehouse": self.warehouse,
            "ship_to": self.ship_to,
            "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in self.lines],
            "parcels": [{"weight_g": 1200, "length_mm": 300, "width_mm": 200, "height_mm": 100}],
        }


SHIPMENTS = (
    DemoShipment(
        "DEMO-1001", "AMS", _to("Anna de Vries", "Prinsengracht 263", "Amsterdam", "1016 GV"),
        (("MUG-01", 2), ("TEE-M", 1)), ("ready",),
    ),
    # inventory's demo has one LAMP-01: a shortage, so the shipment waits on hold.
    DemoShipment(
        "DEMO-1002", "AMS", _to("Bram Jansen", "Oudegracht 100", "Utrecht", "3511 AX"),
        (("LAMP-01", 2),), ("on_hold",),
    ),
    DemoShipment(
        "DEMO-1003", "AMS", _to("Chris Bakker", "Oudegracht 158", "Utrecht", "3511 AZ"),
        (("BOOK-42", 1), ("MUG-01", 1)),
        ("ready", "label_purchased", "in_transit", "out_for_delivery", "delivered"),
    ),
    DemoShipment(
        "DEMO-1004", "AMS", _to("Dana Peeters", "Meir 221B", "Antwerpen", "2000", "BE"),
        (("SOCKS-3P", 2),), ("ready", "label_purchased", "in_transit", "exception"),
    ),
    DemoShipment(
        "DEMO-1005", "RTM", _to("Eva Smit", "Coolsingel 40", "Rotterdam", "3011 AD"),
        (("BOTTLE-05", 1),), ("ready", "cancelled"),
    ),
)  # fmt: skip


def _carrier(ctx: DemoContext) -> None:
    if ctx.get(SERVICE, f"/v1/carriers/{CARRIER}", expect=(200, 404)).status == 404:
        # A fresh webhook secret, never printed: a demo run against a real deployment must not
        # leave a carrier whose tracking events anyone who read this file could sign. Being random,
        # the body cannot carry an Idempotency-Key; the GET above is what makes a rerun safe.
        body = {
            "code": CARRIER,
            "name": "Demo Post",
            "webhook_secret": secrets.token_urlsafe(32),
            "tracking_prefix": "DP",
        }
        ctx.post(SERVICE, "/v1/carriers", body, expect=(201, 409))
    for service in SERVICES:
        path = f"/v1/carriers/{CARRIER}/services"
        ctx.post(SERVICE, path, service, key=f"demo-service-{service['code']}", expect=(201, 409))


def _status(ctx: DemoContext, shipment_id: str) -> tuple[str, str]:
    reply = ctx.get(SERVICE, f"/v1/shipments/{shipment_id}")
    return reply.body["status"], reply.etag


def _step(ctx: DemoContext, shipment: DemoShipment, shipment_id: str, target: str, etag: str) -> None:
    base = f"/v1/shipments/{shipment_id}"
    if target == "label_purchased":
        body = {"carrier": CARRIER, "service": "standard", "format": "pdf"}
        ctx.post(SERVICE, f"{base}/label", body, key=f"demo-label-{shipment.reference}", expect=(201,))
    elif target == "cancelled":
        # If-Match: cancel only the shipment as just read, not one that moved on meanwhile.
        body = {"reason": "The customer changed their mind"}
        ctx.post(SERVICE, f"{base}/cancel", body, headers={"If-Match": etag}, expect=(200,))
    else:
        description, location = TRACKING[target]
        body = {"status": target, "description": description, "location": location}
        key = f"demo-tracking-{shipment.reference}-{target}"
        ctx.post(SERVICE, f"{base}/tracking", body, key=key, expect=(201,))


def _drive(ctx: DemoContext, shipment: DemoShipment) -> None:
    reply = ctx.post(SERVICE, "/v1/shipments", shipment.body(), key=f"demo-shipment-{shipment.reference}")
    shipment_id = reply.body["id"]

    def answered() -> tuple[str, str] | None:
        found = _status(ctx, shipment_id)
        return found if found[0] != "awaiting_stock" else None

    what = f"{shipment.reference} ({shipment_id}) to leave awaiting_stock: inventory's answer to the saga"
    status, etag = ctx.wait_for(what, answered)
    if status not in shipment.path:
        # Only on a rerun, after someone moved it by hand (or its hold expired): leave it be.
        ctx.echo(f"  note: {shipment.reference} is {status}, off its demo path; left as it is")
        return
    for target in shipment.path[shipment.path.index(status) + 1 :]:
        _step(ctx, shipment, shipment_id, target, etag)
        status, etag = _status(ctx, shipment_id)
        if status != target:
            raise DemoError(f"{shipment.reference} ({shipment_id}) should be {target} but is {status}")
    ctx.echo(f"  {shipment.reference} {shipment_id} {status}")


def load(ctx: DemoContext) -> None:
    """The carrier and its services, then each shipment through the saga to its demo state."""
    _carrier(ctx)
    for shipment in SHIPMENTS:
        _drive(ctx, shipment)
