"""The message bus (GUIDE §5): topology, the outbox relay, idempotent consumers,
retries with backoff, dead letters — over Kombu, RabbitMQ in production.
"""
