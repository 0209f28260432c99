"""Drain marks (logistics_shared.bus.drain): when a watched handler's queue counts as
drained, and when its mark is cleared, step by step on a clock the test turns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from logistics_shared.bus.drain import DrainMarker, DrainWatch
from logistics_shared.db import aware
from shipping.models import drain_marks


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "postgres"])
def ship(service_client, request):
    return service_client("shipping", request.param)


def marks(ship) -> dict[str, datetime | None]:
    with ship.engine.connect() as conn:
        return {
            h: aware(at) for h, at in conn.execute(select(drain_marks.c.handler, drain_marks.c.drained_at))
        }


def marker(ship, clock: Clock) -> DrainMarker:
    watch = DrainWatch(drain_marks, ("catalogue", "other"))
    return DrainMarker(watch, ship.registry["dbsession_factory"], idle=1.0, clock=clock)


def test_a_queue_is_drained_after_a_second_without_deliveries(ship):
    clock = Clock()
    drain = marker(ship, clock)
    drain.started()
    drain.idle()
    assert marks(ship) == {}  # consuming for less than the idle spell: nothing known yet
    clock.now += 1.0
    drain.idle()
    found = marks(ship)
    assert set(found) == {"catalogue", "other"}
    assert all(datetime.now(UTC) - at < timedelta(seconds=5) for at in found.values())


def test_a_delivery_clears_the_mark_before_it_is_applied_and_idleness_sets_it_again(ship):
    clock = Clock()
    drain = marker(ship, clock)
    drain.started()
    clock.now += 1.0
    drain.idle()
    drain.delivered(["catalogue", "stock_reserved"])  # an unwatched handler is ignored
    assert marks(ship)["catalogue"] is None and marks(ship)["other"] is not None
    clock.now += 0.5
    drain.idle()
    assert marks(ship)["catalogue"] is None  # busy half a second ago
    clock.now += 0.5
    drain.idle()
    assert marks(ship)["catalogue"] is not None


def test_a_retried_message_holds_the_mark_back_for_its_delay(ship):
    clock = Clock()
    drain = marker(ship, clock)
    drain.started()
    clock.now += 1.0
    drain.idle()
    drain.retried("catalogue", 5.0)
    assert marks(ship)["catalogue"] is None
    clock.now += 5.5
    drain.idle()
    assert marks(ship)["catalogue"] is None  # its retry may come back any moment
    clock.now += 0.5
    drain.idle()
    assert marks(ship)["catalogue"] is not None


def test_a_restart_or_a_stop_clears_every_mark(ship):
    clock = Clock()
    drain = marker(ship, clock)
    drain.started()
    clock.now += 1.0
    drain.idle()
    drain.stopped()
    assert marks(ship) == {"catalogue": None, "other": None}
    clock.now += 1.0
    drain.started()
    drain.idle()
    assert marks(ship) == {"catalogue": None, "other": None}  # a new idle spell first
