"""Support's business rules: plain functions over a session and an outbox, no Pyramid."""
