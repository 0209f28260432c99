"""(type, version) -> marshmallow schema, for producing and consuming."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError

from .envelope import Envelope, EnvelopeSchema

#: A schema class (named, because ``register`` has a parameter called ``type``).
SchemaClass = type[Schema]


class UnknownEvent(LookupError):
    """No schema is registered for this (type, version)."""


class EventRegistry:
    def __init__(self) -> None:
        self._schemas: dict[tuple[str, int], type[Schema]] = {}
        self._producers: dict[str, str] = {}
        # Schema instances are reusable and building one is costly: cache them.
        self._strict: dict[tuple[str, int], Schema] = {}
        self._lenient: dict[tuple[str, int], Schema] = {}
        self._envelope = EnvelopeSchema()

    def register(self, type: str, version: int = 1, *, producer: str) -> Callable[[SchemaClass], SchemaClass]:
        """Register the schema of one (type, version); ``producer`` is the service whose
        exchange carries it (one producer per type, whatever the version)."""

        def decorator(schema: SchemaClass) -> SchemaClass:
            key = (type, version)
            if key in self._schemas:
                raise ValueError(f"event {type} v{version} is registered twice")
            if self._producers.setdefault(type, producer) != producer:
                raise ValueError(f"event {type} has two producers: {self._producers[type]} and {producer}")
            self._schemas[key] = schema
            return schema

        return decorator

    def producer_of(self, type: str) -> str:
        try:
            return self._producers[type]
        except KeyError:
            raise UnknownEvent(f"no event {type!r} is registered") from None

    def types(self) -> list[str]:
        """Every registered event type, sorted."""
        return sorted(self._producers)

    def schema(self, type: str, version: int) -> SchemaClass:
        try:
            return self._schemas[(type, version)]
        except KeyError:
            raise UnknownEvent(f"no schema for event {type!r} version {version}") from None

    def known(self) -> list[tuple[str, int]]:
        return sorted(self._schemas)

    def validate_outgoing(self, envelope: Envelope) -> dict[str, Any]:
        """Strict: a producer may only emit exactly what the contract says."""
        # The envelope is built by new_envelope(), so only the data needs checking.
        body = envelope.to_dict()
        key = (envelope.type, envelope.version)
        schema = self._strict.get(key) or self._strict.setdefault(key, self.schema(*key)(unknown=RAISE))
        errors = schema.validate(envelope.data)
        if errors:
            raise ValidationError(errors, field_name="data")
        return body

    def load_incoming(self, body: dict[str, Any]) -> dict[str, Any]:
        """Lenient: unknown fields are dropped so a newer producer never breaks us."""
        envelope: dict[str, Any] = self._envelope.load(body)
        key = (envelope["type"], envelope["version"])
        schema = self._lenient.get(key) or self._lenient.setdefault(key, self.schema(*key)(unknown=EXCLUDE))
        envelope["data"] = schema.load(envelope["data"])
        return envelope


REGISTRY = EventRegistry()

# Import the contract modules so their schemas register themselves.
from . import inventory, shipping, support  # noqa: E402,F401
