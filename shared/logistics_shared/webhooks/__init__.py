"""Outbound webhooks: integrations subscribe to a service's events.

- ``tables``: endpoints, messages (one public payload per event), deliveries (one per
  event and endpoint) and their attempts, in each webhook-enabled service's database.
- ``catalogue``: the public, versioned payload of every event an endpoint may subscribe
  to; an allow-list, so nothing internal leaves.
- ``fanout``: the outbox relay writes the deliveries of the events it publishes, in the
  transaction that marks them published (so none is lost or written twice).
- ``domain``/``views``: the REST API (``/v1/<service>/webhook-endpoints``).
- ``dispatcher``: ``logistics dispatcher <svc>``, one asyncio loop sending due deliveries.
- ``addresses``: where a delivery may go (no loopback, private or metadata addresses).
"""
