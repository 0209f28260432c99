"""Inventory's demo data, created through its own HTTP API (``logistics demo``).

Two warehouses with locations, six items and their stock. ``LAMP-01`` is short on
purpose (one in Amsterdam), so shipping's demo can put a shipment on hold.
"""

from __future__ import annotations

from typing import Any

from logistics_shared.demo import DemoContext

SERVICE = "inventory"

WAREHOUSES: tuple[dict[str, Any], ...] = (
    {
        "code": "AMS",
        "name": "Amsterdam DC",
        "address": {
            "name": "Amsterdam DC",
            "line1": "Havenstraat 1",
            "city": "Amsterdam",
            "postal_code": "1013 AB",
            "country": "NL",
        },
    },
    {
        "code": "RTM",
        "name": "Rotterdam DC",
        "address": {
            "name": "Rotterdam DC",
            "line1": "Waalhaven 12",
            "city": "Rotterdam",
            "postal_code": "3089 JH",
            "country": "NL",
        },
    },
)

LOCATIONS = {
    "AMS": (("A-01-01", "Aisle A, shelf 1"), ("A-01-02", "Aisle A, shelf 2"), ("B-02", "Bulk storage")),
    "RTM": (("R-01", "Rack 1"), ("R-02", "Rack 2")),
}

#: sku, name, grams, (length, width, height) in mm, reorder point.
ITEMS = (
    ("MUG-01", "Coffee mug", 350, (120, 90, 100), 10),
    ("TEE-M", "T-shirt, size M", 180, (300, 250, 20), 5),
    ("BOOK-42", "Paperback guide", 420, (200, 130, 30), 0),
    ("LAMP-01", "Desk lamp", 1500, (450, 200, 200), 2),
    ("BOTTLE-05", "Water bottle, 0.5 l", 250, (260, 75, 75), 0),
    ("SOCKS-3P", "Socks, 3 pairs", 120, (200, 100, 40), 0),
)

#: (warehouse, sku, quantity, location). One lamp only: the shortage the demo shows.
RECEIPTS = (
    ("AMS", "MUG-01", 40, "A-01-01"),
    ("AMS", "TEE-M", 25, "A-01-02"),
    ("AMS", "BOOK-42", 30, "A-01-02"),
    ("AMS", "LAMP-01", 1, "B-02"),
    ("AMS", "BOTTLE-05", 20, "A-01-01"),
    ("AMS", "SOCKS-3P", 50, "A-01-02"),
    ("RTM", "MUG-01", 15, "R-01"),
    ("RTM", "TEE-M", 10, "R-01"),
    ("RTM", "BOTTLE-05", 12, "R-02"),
    ("RTM", "SOCKS-3P", 30, "R-02"),
)


def _create(ctx: DemoContext, path: str, body: dict[str, Any], key: str) -> None:
    # 409: it exists already (made by hand, or by a run before the key was stored): keep it.
    reply = ctx.post(SERVICE, path, body, key=key, expect=(201, 409))
    if reply.status == 409:
        ctx.echo(f"  {path} {key}: exists, kept")


def load(ctx: DemoContext) -> None:
    """Create the warehouses, locations, items and stock receipts (safe to run again)."""
    for warehouse in WAREHOUSES:
        code = warehouse["code"]
        _create(ctx, "/v1/warehouses", warehouse, key=f"demo-warehouse-{code}")
        for location, description in LOCATIONS[code]:
            body = {"code": location, "description": description}
            _create(ctx, f"/v1/warehouses/{code}/locations", body, key=f"demo-location-{code}-{location}")
    for sku, name, grams, (length, width, height), reorder_point in ITEMS:
        item = {
            "sku": sku,
            "name": name,
            "unit_weight_g": grams,
            "length_mm": length,
            "width_mm": width,
            "height_mm": height,
            "reorder_point": reorder_point,
        }
        _create(ctx, "/v1/items", item, key=f"demo-item-{sku}")
    for at, sku, quantity, location in RECEIPTS:
        receipt: dict[str, Any] = {
            "warehouse": at,
            "sku": sku,
            "quantity": quantity,
            "location": location,
            "reference": "DEMO-PO-1",
        }
        # No 409 here: a receipt always adds stock, so only the key keeps a rerun from doubling it.
        ctx.post(SERVICE, "/v1/receipts", receipt, key=f"demo-receipt-{at}-{sku}", expect=(201,))
    ctx.echo(f"  {len(WAREHOUSES)} warehouses, {len(ITEMS)} items, {len(RECEIPTS)} receipts")
