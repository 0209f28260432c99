"""Carriers, their services' rate tables, and quotes for a shipment.

A rate table has zones (countries, optionally narrowed to postal-code
prefixes), weight bands (``max_g`` -> a price per zone, in minor units of the
table's currency) and a dimensional-weight divisor in cm³/kg. A parcel's
billable weight is ``max(actual, L*W*H / divisor)``; a shipment's is the sum
over its parcels, and the first band whose ``max_g`` covers it prices it.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from logistics_shared.db import insert_unless_exists
from logistics_shared.errors import Conflict, NotFound
from logistics_shared.identity import Identity
from logistics_shared.secretbox import Box
from logistics_shared.sorting import Sort

from ..models import CARRIER_SORTS, carrier_services, carriers
from ..schemas.carriers import normalise_postal
from . import shipments

_PUBLIC_CARRIER = (carriers.c.code, carriers.c.name, carriers.c.tracking_prefix, carriers.c.created_at)


def default_tracking_prefix(code: str) -> str:
    letters = "".join(ch for ch in code.upper() if "A" <= ch <= "Z")[:3]
    return letters if len(letters) >= 2 else "LG"


# -- carriers and services -------------------------------------------------------------
def create_carrier(session: Session, box: Box, data: dict[str, Any]) -> dict[str, Any]:
    created = insert_unless_exists(
        session,
        carriers,
        {
            "code": data["code"],
            "name": data["name"],
            "tracking_prefix": data.get("tracking_prefix") or default_tracking_prefix(data["code"]),
            # Encrypted only: the plaintext column is for carriers created before 0009.
            "webhook_secret_encrypted": box.encrypt(data["webhook_secret"]),
            "webhook_secret": None,
            "created_at": datetime.now(UTC),
        },
        unique=["code"],
    )
    if not created:
        raise Conflict(f"A carrier {data['code']!r} already exists.")
    return get_carrier(session, data["code"])


def _service_row(row: Any) -> dict[str, Any]:
    service = dict(row._mapping)
    service["rate_table"] = orjson.loads(service["rate_table"])
    return service


def _services_of(session: Session, codes: list[str]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if codes:
        for row in session.execute(
            select(carrier_services)
            .where(carrier_services.c.carrier.in_(codes))
            .order_by(carrier_services.c.carrier, carrier_services.c.code)
        ):
            found[row.carrier].append(_service_row(row))
    return found


def get_carrier(session: Session, code: str) -> dict[str, Any]:
    row = session.execute(select(*_PUBLIC_CARRIER).where(carriers.c.code == code)).first()
    if row is None:
        raise NotFound(f"No carrier {code!r}.")
    return {**row._mapping, "services": _services_of(session, [code])[code]}


def list_carriers(
    session: Session, *, cursor: str | None, limit: int, sort: Sort | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    sort = CARRIER_SORTS.of(sort)
    code = carriers.c.code  # the primary key: no tie to break
    stmt = select(*_PUBLIC_CARRIER).order_by(*sort.order_by(code, code)).limit(limit + 1)
    if cursor:
        stmt = stmt.where(sort.after(code, code, sort.decode(cursor)))
    rows, next_cursor = sort.page(
        [dict(r._mapping) for r in session.execute(stmt)], limit, lambda r: (r["code"], None)
    )
    services = _services_of(session, [r["code"] for r in rows])
    for row in rows:
        row["services"] = services[row["code"]]
    return rows, next_cursor


def create_service(session: Session, carrier: str, data: dict[str, Any]) -> dict[str, Any]:
    get_carrier(session, carrier)  # 404 for an unknown carrier in the path
    created = insert_unless_exists(
        session,
        carrier_services,
        {
            "carrier": carrier,
            "code": data["code"],
            "name": data["name"],
            "rate_table": orjson.dumps(data["rate_table"]).decode(),
            "created_at": datetime.now(UTC),
        },
        unique=["carrier", "code"],
    )
    if not created:
        raise Conflict(f"Carrier {carrier!r} already has a service {data['code']!r}.")
    return get_service(session, carrier, data["code"])


def get_service(session: Session, carrier: str, code: str) -> dict[str, Any]:
    row = session.execute(
        select(carrier_services).where(carrier_services.c.carrier == carrier, carrier_services.c.code == code)
    ).first()
    if row is None:
        raise NotFound(f"No service {code!r} of carrier {carrier!r}.")
    return _service_row(row)


def find_service(session: Session, carrier: str, code: str) -> dict[str, Any] | None:
    try:
        return get_service(session, carrier, code)
    except NotFound:
        return None


# -- pricing ---------------------------------------------------------------------------
def billable_weight_g(parcels: list[dict[str, Any]], dim_divisor: int) -> int:
    """Σ max(actual, dimensional) over parcels, in grams (rounded up).

    With dimensions in mm and the divisor in cm³/kg, the dimensional weight
    in grams is exactly ``L*W*H [mm³] / divisor``.
    """
    total = 0
    for parcel in parcels:
        volume_mm3 = parcel["length_mm"] * parcel["width_mm"] * parcel["height_mm"]
        dimensional = -(-volume_mm3 // dim_divisor)
        total += max(parcel["weight_g"], dimensional)
    return total


def match_zone(rate_table: dict[str, Any], country: str, postal_code: str | None) -> dict[str, Any] | None:
    """The most specific zone covering the destination: the longest matching postal
    prefix wins over a whole-country zone; ties go to the zone declared first."""
    postal = normalise_postal(postal_code or "")
    best: tuple[int, dict[str, Any]] | None = None
    for zone in rate_table["zones"]:
        if country not in zone["countries"]:
            continue
        if not zone["postal_prefixes"]:
            score = 0
        else:
            matching = [len(p) for p in zone["postal_prefixes"] if postal.startswith(p)]
            if not matching:
                continue
            score = max(matching)
        if best is None or score > best[0]:
            best = (score, zone)
    return best[1] if best else None


class NotCovered(Exception):
    """The service does not carry this shipment (destination or weight); ``str()`` says why."""


def price(service: dict[str, Any], ship_to: dict[str, Any], parcels: list[dict[str, Any]]) -> dict[str, Any]:
    """The quote of ``service`` for a shipment, or :class:`NotCovered`."""
    table = service["rate_table"]
    zone = match_zone(table, ship_to["country"], ship_to.get("postal_code"))
    if zone is None:
        where = ship_to["country"] + (f" {ship_to['postal_code']}" if ship_to.get("postal_code") else "")
        raise NotCovered(
            f"Service {service['code']!r} of carrier {service['carrier']!r} does not serve {where}."
        )
    weight = billable_weight_g(parcels, table["dim_divisor"])
    band = next((b for b in table["weight_bands"] if weight <= b["max_g"]), None)
    if band is None or zone["name"] not in band["prices"]:
        raise NotCovered(
            f"Service {service['code']!r} of carrier {service['carrier']!r} does not carry "
            f"{weight} g (billable) to zone {zone['name']!r}."
        )
    return {
        "carrier": service["carrier"],
        "service": service["code"],
        "zone": zone["name"],
        "billable_weight_g": weight,
        "price": {"amount_minor": band["prices"][zone["name"]], "currency": table["currency"]},
    }


def require_parcels(shipment: dict[str, Any]) -> None:
    if not shipment["parcels"]:
        raise Conflict(
            "The shipment has no parcels; rates and labels need each parcel's weight and dimensions.",
            current_status=shipment["status"],
        )


def quotes(session: Session, actor: Identity, shipment_id: str) -> list[dict[str, Any]]:
    """Every service's quote for the shipment, cheapest first (per currency)."""
    shipment = shipments.get(session, actor, shipment_id)
    require_parcels(shipment)
    found = []
    for row in session.execute(
        select(carrier_services).order_by(carrier_services.c.carrier, carrier_services.c.code)
    ):
        try:
            found.append(price(_service_row(row), shipment["ship_to"], shipment["parcels"]))
        except NotCovered:
            continue
    return sorted(
        found,
        key=lambda q: (q["price"]["currency"], q["price"]["amount_minor"], q["carrier"], q["service"]),
    )
