"""logistics_http_requests_in_flight: the requests a process is handling right now."""

from __future__ import annotations

import pytest

from ..helpers.metrics import sample, scrape_registry


@pytest.mark.fresh_app
def test_in_flight_counts_the_request_being_handled_and_drops_after(service_client):
    client = service_client("inventory")
    registry = client.registry["logistics.metrics"].registry
    # The scrape is itself a request in flight while /metrics renders.
    text = client.anonymous.get("/metrics").text
    assert 'logistics_http_requests_in_flight{service="inventory"} 1.0' in text
    client.anonymous.get("/v1/items", status=401)
    assert sample(scrape_registry(registry), "logistics_http_requests_in_flight", service="inventory") == 0
