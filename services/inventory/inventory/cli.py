"""``logistics inventory ...``: staff commands of the inventory service."""

from __future__ import annotations

import click


@click.group()
def inventory() -> None:
    """Inventory service commands."""
