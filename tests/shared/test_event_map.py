"""The README's event map is the one ``logistics events`` generates from the registrations."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from logistics_shared.cli import main
from logistics_shared.events.registry import REGISTRY
from logistics_shared.service import discover

README = Path(__file__).parents[2] / "README.md"


def test_the_readme_event_map_is_the_generated_one():
    result = CliRunner().invoke(main, ["events", "--markdown"])
    assert result.exit_code == 0, result.output
    documented = re.search(
        r"<!-- event-map:start -->\n(.*?)\n<!-- event-map:end -->", README.read_text(), re.S
    )
    assert documented is not None, "README has no event map"
    assert documented.group(1).strip() == result.output.strip(), "run `logistics events --markdown`"


def test_every_subscription_names_a_contract_event_of_another_service():
    for name, spec in discover().items():
        for handler in spec.handlers() if spec.handlers else ():
            assert handler.producer != name, f"{name}.{handler.name} consumes its own events"
            for event_type in handler.events:
                assert REGISTRY.producer_of(event_type) == handler.producer, (name, handler.name, event_type)


def test_the_plain_listing_names_every_event():
    result = CliRunner().invoke(main, ["events"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for event_type in REGISTRY.types():
        assert event_type in result.output
