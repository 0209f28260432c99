"""Exchange and queue names, in one place so the worker, the relay and the DLQ
tool always agree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Names:
    namespace: str

    def exchange(self, producer: str) -> str:
        """Each producing service owns one durable topic exchange."""
        return f"{self.namespace}.{producer}"

    def unrouted_exchange(self, producer: str) -> str:
        """Alternate exchange: events nobody subscribes to yet land here, not in a retry loop."""
        return f"{self.namespace}.{producer}.unrouted"

    def unrouted_queue(self, producer: str) -> str:
        return f"{self.namespace}.{producer}.unrouted"

    def queue(self, consumer: str, handler: str) -> str:
        """One durable queue per (consumer service, handler); replicas compete on it."""
        return f"{self.namespace}.{consumer}.{handler}"

    def delay_queue(self, consumer: str, handler: str, delay_ms: int) -> str:
        return f"{self.queue(consumer, handler)}.retry.{delay_ms}ms"

    def dlq(self, consumer: str) -> str:
        return f"{self.namespace}.{consumer}.dlq"
