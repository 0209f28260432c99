"""Inventory's business rules: plain functions over a SQLAlchemy session and an
outbox, no Pyramid. Views and event handlers are thin callers of these.
"""
