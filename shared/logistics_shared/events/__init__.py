"""Event contracts of the suite: the envelope and one schema per (type, version)."""

from .envelope import Envelope, EnvelopeSchema, new_envelope
from .registry import REGISTRY, EventRegistry, UnknownEvent

__all__ = ["REGISTRY", "Envelope", "EnvelopeSchema", "EventRegistry", "UnknownEvent", "new_envelope"]
