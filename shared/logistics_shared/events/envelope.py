"""The envelope every event travels in (GUIDE §5)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from marshmallow import EXCLUDE, Schema, fields, validate


class EnvelopeSchema(Schema):
    """Envelope fields; consumers ignore fields they do not know."""

    class Meta:
        unknown = EXCLUDE

    id = fields.UUID(required=True)
    type = fields.String(required=True, validate=validate.Regexp(r"^[a-z_]+(\.[a-z_]+)+$"))
    version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    occurred_at = fields.AwareDateTime(required=True, default_timezone=UTC)
    producer = fields.String(required=True, validate=validate.Length(min=1, max=64))
    correlation_id = fields.String(required=True, validate=validate.Length(min=1, max=128))
    causation_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=128))
    data = fields.Dict(required=True)


@dataclass
class Envelope:
    type: str
    version: int
    producer: str
    data: dict[str, Any]
    correlation_id: str
    causation_id: str | None = None
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "type": self.type,
            "version": self.version,
            "occurred_at": self.occurred_at.isoformat(),
            "producer": self.producer,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "data": self.data,
        }


def new_envelope(
    type: str,
    data: dict[str, Any],
    *,
    producer: str,
    version: int = 1,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> Envelope:
    event_id = uuid.uuid4()
    return Envelope(
        id=event_id,
        type=type,
        version=version,
        producer=producer,
        data=data,
        # A fresh chain starts with its own id as the correlation id.
        correlation_id=correlation_id or str(event_id),
        causation_id=causation_id,
    )
