"""Buying a label: a quote's price, a tracking number with a check digit, and the
label document (PDF with a Code 128 barcode, or ZPL for thermal printers).

Buying is the saga's next step: the shipment goes ``ready -> label_purchased``
and ``shipment.label_purchased`` tells inventory to issue the reserved stock.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from datetime import UTC, date, datetime
from typing import Any

from barcode import Code128
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from sqlalchemy import select
from sqlalchemy.orm import Session

from logistics_shared.db import insert_unless_exists
from logistics_shared.errors import Conflict, InvalidField, NotFound
from logistics_shared.identity import Identity
from logistics_shared.outbox import Outbox

from ..models import carriers, labels
from ..models import shipments as shipments_table
from . import catalogue, lifecycle, rates, shipments

TRACKING_DIGITS = 10
#: Tracking numbers are random; a collision is rare and a new draw fixes it.
MAX_ATTEMPTS = 8
TRACKING_NUMBER = re.compile(rf"^([A-Z]{{2,4}})([0-9]{{{TRACKING_DIGITS}}})([0-9])\Z")

CONTENT_TYPES = {"pdf": "application/pdf", "zpl": "text/plain; charset=utf-8"}


# -- tracking numbers ------------------------------------------------------------------
def luhn_check_digit(digits: str) -> str:
    """The Luhn (mod 10) check digit to append to ``digits``."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:  # every second digit from the right, the check digit's neighbour first
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return str(-total % 10)


def tracking_number_valid(number: str) -> bool:
    match = TRACKING_NUMBER.match(number)
    return match is not None and luhn_check_digit(match.group(2)) == match.group(3)


def _random_digits() -> str:
    return f"{secrets.randbelow(10**TRACKING_DIGITS):0{TRACKING_DIGITS}d}"


def new_tracking_number(prefix: str) -> str:
    digits = _random_digits()
    return f"{prefix}{digits}{luhn_check_digit(digits)}"


# -- buying and reading labels ---------------------------------------------------------
def purchase(
    session: Session, outbox: Outbox, actor: Identity, shipment_id: str, data: dict[str, Any]
) -> dict[str, Any]:
    """Buy a label for a ``ready`` shipment with the chosen carrier service."""
    # Lock the shipment first so two purchases of one label serialise (PostgreSQL).
    session.execute(select(shipments_table.c.id).where(shipments_table.c.id == shipment_id).with_for_update())
    shipment = shipments.get(session, actor, shipment_id)  # 404 outside the actor's warehouses
    if not lifecycle.can(shipment["status"], "label_purchased"):
        # transition() raises the 409 naming the current state (and writes nothing).
        lifecycle.transition(session, shipment, "label_purchased", cause=actor.actor)
    carrier = session.execute(select(carriers).where(carriers.c.code == data["carrier"])).first()
    if carrier is None:
        raise InvalidField("/carrier", f"Unknown carrier {data['carrier']!r}.")
    service = rates.find_service(session, carrier.code, data["service"])
    if service is None:
        raise InvalidField("/service", f"Unknown service {data['service']!r} of carrier {carrier.code!r}.")
    rates.require_parcels(shipment)
    try:
        quote = rates.price(service, shipment["ship_to"], shipment["parcels"])
    except rates.NotCovered as exc:
        raise InvalidField("/service", str(exc)) from None

    now = datetime.now(UTC)
    # The sender block: the warehouse as shipping's read model of the catalogue knows it.
    sender = catalogue.warehouse(session, shipment["warehouse"])
    for _attempt in range(MAX_ATTEMPTS):
        tracking_number = new_tracking_number(carrier.tracking_prefix)
        document = render(
            data["format"],
            shipment,
            carrier.name,
            service,
            quote,
            tracking_number,
            sender=sender,
            ship_date=now.date(),
        )
        stored = insert_unless_exists(
            session,
            labels,
            {
                "shipment_id": shipment["id"],
                "carrier": carrier.code,
                "service": service["code"],
                "tracking_number": tracking_number,
                "zone": quote["zone"],
                "billable_weight_g": quote["billable_weight_g"],
                "amount_minor": quote["price"]["amount_minor"],
                "currency": quote["price"]["currency"],
                "format": data["format"],
                "document": document,
                "created_by": actor.actor,
                "created_at": now,
            },
            unique=["tracking_number"],
        )
        if stored:
            break
    else:
        raise Conflict("No unique tracking number could be assigned; try again.")

    moved = lifecycle.transition(
        session,
        shipment,
        "label_purchased",
        cause=actor.actor,
        detail=f"{carrier.code} {service['code']} {tracking_number}",
    )
    outbox.emit(
        "shipment.label_purchased",
        {
            "shipment_id": moved["id"],
            "reference": moved["reference"],
            "warehouse": moved["warehouse"],
            "status": moved["status"],
            "version": moved["version"],
            "carrier": carrier.code,
            "service": service["code"],
            "tracking_number": tracking_number,
            "reservation_id": moved["reservation_id"],
        },
    )
    return get(session, actor, shipment_id)


_INFO = (
    labels.c.carrier,
    labels.c.service,
    labels.c.tracking_number,
    labels.c.format,
    labels.c.zone,
    labels.c.billable_weight_g,
    labels.c.amount_minor,
    labels.c.currency,
    labels.c.created_by,
    labels.c.created_at,
)


def get(session: Session, actor: Identity, shipment_id: str) -> dict[str, Any]:
    """The shipment with its label's carrier, service and tracking number (``None`` before)."""
    shipment = shipments.get(session, actor, shipment_id)
    row = session.execute(select(*_INFO).where(labels.c.shipment_id == shipment_id)).first()
    if row is None:
        return {**shipment, "carrier": None, "service": None, "tracking_number": None, "label": None}
    label = dict(row._mapping)
    label["price"] = {"amount_minor": label.pop("amount_minor"), "currency": label.pop("currency")}
    return {
        **shipment,
        "carrier": label["carrier"],
        "service": label["service"],
        "tracking_number": label["tracking_number"],
        "label": label,
    }


def document(session: Session, actor: Identity, shipment_id: str) -> tuple[bytes, str, str]:
    """``(content, content type, file name)`` of the shipment's label."""
    shipments.get(session, actor, shipment_id)  # 404 outside the actor's warehouses
    row = session.execute(
        select(labels.c.document, labels.c.format, labels.c.tracking_number).where(
            labels.c.shipment_id == shipment_id
        )
    ).first()
    if row is None:
        raise NotFound(f"Shipment {shipment_id!r} has no label yet.")
    return bytes(row.document), CONTENT_TYPES[row.format], f"label-{row.tracking_number}.{row.format}"


# -- documents -------------------------------------------------------------------------
def render(
    fmt: str,
    shipment: dict[str, Any],
    carrier_name: str,
    service: dict[str, Any],
    quote: dict[str, Any],
    tracking_number: str,
    *,
    sender: dict[str, Any] | None = None,
    ship_date: date | None = None,
) -> bytes:
    lines = _label_lines(
        shipment, carrier_name, service, quote, sender, ship_date or datetime.now(UTC).date()
    )
    if fmt == "zpl":
        return render_zpl(lines, tracking_number)
    return render_pdf(lines, tracking_number)


def _address_lines(address: dict[str, Any]) -> list[str]:
    place = " ".join(p for p in (address.get("postal_code"), address["city"]) if p)
    lines = [address["name"], address["line1"], address.get("line2"), place, address.get("region")]
    return [line for line in (*lines, address["country"]) if line]


def _sender_lines(code: str, sender: dict[str, Any] | None, ship_date: date) -> list[str]:
    """The warehouse's name, full address and phone when shipping's catalogue knows it
    (a warehouse whose event has not arrived yet prints its code alone), and the ship date."""
    if sender is None:
        lines = [f"FROM: warehouse {code}"]
    else:
        address = _address_lines(sender["address"])
        if address and address[0] == sender["name"]:
            address = address[1:]  # the address's name line repeats the warehouse's name
        lines = [f"FROM: {sender['name']}", *address]
        if sender.get("phone"):
            lines.append(f"Tel: {sender['phone']}")
    return [*lines, f"Ship date: {ship_date.isoformat()}"]


def _label_lines(
    shipment: dict[str, Any],
    carrier_name: str,
    service: dict[str, Any],
    quote: dict[str, Any],
    sender: dict[str, Any] | None,
    ship_date: date,
) -> dict[str, list[str]]:
    return {
        "header": [carrier_name, service["name"]],
        "from": _sender_lines(shipment["warehouse"], sender, ship_date),
        "to": _address_lines(shipment["ship_to"]),
        "details": [
            f"Ref: {shipment['reference']}",
            f"Shipment: {shipment['id']}",
            f"Parcels: {len(shipment['parcels'])}   Billable: {quote['billable_weight_g']} g",
        ],
    }


def _plain(text: str) -> str:
    """One line of text in Latin-1 (the PDF core fonts): accents kept where possible."""
    out = []
    for char in " ".join(text.split()):
        try:
            char.encode("latin-1")
            out.append(char)
        except UnicodeEncodeError:
            base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
            out.append(base if base and base.isascii() else "?")
    return "".join(out)


def render_pdf(lines: dict[str, list[str]], tracking_number: str) -> bytes:
    """A 4x6 inch label; the barcode is drawn as bars, module by module."""
    pdf = FPDF(unit="mm", format=(101.6, 152.4))
    pdf.set_compression(False)
    pdf.set_auto_page_break(False)
    pdf.set_margins(6, 6, 6)
    pdf.set_title(f"Label {tracking_number}")
    pdf.set_creator("logistics shipping")
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    def write(text: str, size: float, style: str = "") -> None:
        pdf.set_font("Helvetica", style, size)
        pdf.cell(width, size * 0.45, _plain(text)[:80], new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    write(lines["header"][0], 16, "B")
    write(lines["header"][1], 11)
    pdf.ln(2)
    for line in lines["from"]:
        write(line, 8)
    pdf.ln(3)
    write("SHIP TO:", 9, "B")
    for line in lines["to"]:
        write(line, 12)
    pdf.ln(3)
    for line in lines["details"]:
        write(line, 8)

    modules = Code128(tracking_number).build()[0]
    module = min(0.5, width / len(modules))
    left = pdf.l_margin + (width - module * len(modules)) / 2
    # Below the text, however long the sender's address made it.
    top, height = max(100.0, pdf.get_y() + 4), 25.0
    for match in re.finditer("1+", modules):
        pdf.rect(left + match.start() * module, top, module * len(match.group()), height, style="F")
    pdf.set_xy(pdf.l_margin, top + height + 2)
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(width, 6, tracking_number, align="C")
    return bytes(pdf.output())


def _zpl(text: str) -> str:
    """Field data for ``^FH^FD``: ``^``, ``~`` and the ``_`` escape itself as hex (UTF-8 via ^CI28)."""
    text = " ".join(text.split())
    return text.replace("_", "_5F").replace("^", "_5E").replace("~", "_7E")[:80]


def render_zpl(lines: dict[str, list[str]], tracking_number: str) -> bytes:
    """The same label for a 203 dpi thermal printer, 4x6 inch."""
    out = ["^XA", "^CI28", "^PW812", "^LL1218"]
    y = 40

    def field(text: str, size: int) -> None:
        nonlocal y
        out.append(f"^FO40,{y}^A0N,{size},{size}^FH^FD{_zpl(text)}^FS")
        y += size + 12

    field(lines["header"][0], 48)
    field(lines["header"][1], 30)
    for line in lines["from"]:
        field(line, 22)
    y += 20
    field("SHIP TO:", 24)
    for line in lines["to"]:
        field(line, 32)
    y += 20
    for line in lines["details"]:
        field(line, 20)
    out.append(f"^FO60,{max(y + 30, 820)}^BY3^BCN,200,Y,N,N^FD{tracking_number}^FS")
    out.append("^XZ")
    return ("\n".join(out) + "\n").encode()
