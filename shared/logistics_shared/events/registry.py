"""(type, version) -> marshmallow schema, for producing and consuming."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError

from .envelope import Envelope, EnvelopeSchema


class UnknownEvent(LookupError):
    """No schema is registered for this (type, version)."""


class EventRegistry:
    def __init__(self) -> None:
        self._schemas: dict[tuple[str, int], type[Schema]] = {}

    def register(self, type: str, version: int = 1):
        def decorator(schema: type[Schema]) -> type[Schema]:
            key = (type, version)
            if key in self._schemas:
                raise ValueError(f"event {type} v{version} is registered twice")
            self._schemas[key] = schema
            return schema

        return decorator

    def schema(self, type: str, version: int) -> type[Schema]:
        try:
            return self._schemas[(type, version)]
        except KeyError:
            raise UnknownEvent(f"no schema for event {type!r} version {version}") from None

    def known(self) -> list[tuple[str, int]]:
        return sorted(self._schemas)

    def validate_outgoing(self, envelope: Envelope) -> dict[str, Any]:
        """Strict: a producer may only emit exactly what the contract says."""
        body = envelope.to_dict()
        EnvelopeSchema().load(body)
        schema = self.schema(envelope.type, envelope.version)(unknown=RAISE)
        errors = schema.validate(envelope.data)
        if errors:
            raise ValidationError(errors, field_name="data")
        return body

    def load_incoming(self, body: dict[str, Any]) -> dict[str, Any]:
        """Lenient: unknown fields are dropped so a newer producer never breaks us."""
        envelope = EnvelopeSchema().load(body)
        schema = self.schema(envelope["type"], envelope["version"])(unknown=EXCLUDE)
        envelope["data"] = schema.load(envelope["data"])
        return envelope


REGISTRY = EventRegistry()

# Import the contract modules so their schemas register themselves.
from . import inventory, shipping  # noqa: E402,F401
