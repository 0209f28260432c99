"""The RabbitMQ policy that bounds a producer's unrouted parking queue.

The parking queue (``<namespace>.<producer>.unrouted``) is declared without
arguments, and RabbitMQ refuses a re-declaration whose arguments differ, so
``x-max-length`` cannot be added to queues that already exist. A policy can:
it applies to a live queue in place and can be changed later. ``logistics
broker-policy`` builds it here and applies it through the management HTTP API,
or prints (and optionally runs) the equivalent ``rabbitmqctl set_policy``.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import shlex
import subprocess
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from ..settings import Settings
from .names import Names

log = logging.getLogger(__name__)

#: RabbitMQ applies one policy per queue, the highest priority among those matching; above
#: the usual 0 so a broad catch-all policy of the operator's does not silently replace the bound.
#: (Operator policies, ``set_operator_policy``, are merged on top and still apply.)
DEFAULT_PRIORITY = 10


class PolicyError(RuntimeError):
    """The broker refused the policy (or another management request), or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        #: The management API's HTTP status, None when it was not reached.
        self.status = status


@dataclass(frozen=True)
class Policy:
    vhost: str
    name: str
    pattern: str
    definition: dict[str, Any]
    priority: int = DEFAULT_PRIORITY
    apply_to: str = "queues"

    def body(self) -> dict[str, Any]:
        """The management API's JSON body for ``PUT /api/policies/<vhost>/<name>``."""
        return {
            "pattern": self.pattern,
            "definition": self.definition,
            "priority": self.priority,
            "apply-to": self.apply_to,
        }


def vhost_of(broker_url: str) -> str:
    """The virtual host an AMQP URL names: its path without the leading slash, unquoted;
    ``/`` when empty (``amqp://host//`` and ``amqp://host/`` both mean the default vhost)."""
    path = urlsplit(broker_url).path
    return unquote(path[1:] if path.startswith("/") else path) or "/"


def unrouted_policy(
    settings: Settings, producer: str, *, vhost: str | None = None, priority: int = DEFAULT_PRIORITY
) -> Policy:
    queue = Names(settings.bus_namespace).unrouted_queue(producer)
    return Policy(
        vhost=vhost if vhost is not None else vhost_of(settings.broker_url),
        name=f"{queue}.bound",
        # Anchored and escaped: the dots in the name are literal, and no other queue whose name
        # merely contains it (a tap, another namespace's prefix) is bounded by accident.
        pattern=f"^{re.escape(queue)}$",
        definition={
            "max-length": settings.unrouted_max_length,
            # Drop the oldest parked event, never refuse the new one: reject-publish would nack
            # the relay's publish and stall the outbox behind events nobody wants.
            "overflow": "drop-head",
            "message-ttl": settings.unrouted_ttl_seconds * 1000,
        },
        priority=priority,
    )


def rabbitmqctl_args(policy: Policy, ctl: str = "rabbitmqctl") -> list[str]:
    return [
        ctl,
        "set_policy",
        "-p",
        policy.vhost,
        "--apply-to",
        policy.apply_to,
        "--priority",
        str(policy.priority),
        policy.name,
        policy.pattern,
        json.dumps(policy.definition, sort_keys=True, separators=(",", ":")),
    ]


def rabbitmqctl_command(policy: Policy) -> str:
    """The shell command an operator can paste (quoted: the pattern holds ``^``, ``$`` and ``\\``)."""
    return shlex.join(rabbitmqctl_args(policy))


def run_rabbitmqctl(policy: Policy, ctl: str, timeout: float = 60) -> None:
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        rabbitmqctl_args(policy, ctl), capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise PolicyError(f"rabbitmqctl set_policy failed: {(result.stderr or result.stdout).strip()}")


def redact(url: str) -> str:
    """The management URL without its credentials, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _management(
    management_url: str, path: str, *, method: str = "GET", body: Any = None, timeout: float = 10
) -> bytes:
    """One request to the management API, basic auth from the URL's user and password;
    any failure is a :class:`PolicyError` that names the URL without its credentials."""
    parts = urlsplit(management_url)
    if parts.scheme not in ("http", "https"):
        raise PolicyError(f"management URL must be http(s)://, got {parts.scheme or 'none'}://")
    base = redact(management_url).rstrip("/")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        base + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"content-type": "application/json"},
    )
    if parts.username is not None:
        user, password = unquote(parts.username), unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace").strip()
        raise PolicyError(
            f"{redact(management_url)} answered {exc.code}: {detail}", status=exc.code
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PolicyError(f"cannot reach {redact(management_url)}: {reason}") from None


def _segment(name: str) -> str:
    # safe="": the default vhost "/" must travel as %2F, and so must any slash in a name.
    return quote(name, safe="")


def apply_http(policy: Policy, management_url: str, timeout: float = 10) -> None:
    """``PUT /api/policies/<vhost>/<name>`` with basic auth from the URL's user and password."""
    path = f"/api/policies/{_segment(policy.vhost)}/{_segment(policy.name)}"
    _management(management_url, path, method="PUT", body=policy.body(), timeout=timeout)


def read_http(vhost: str, name: str, management_url: str, timeout: float = 10) -> dict[str, Any]:
    """``GET /api/policies/<vhost>/<name>``: the policy as the broker holds it."""
    path = f"/api/policies/{_segment(vhost)}/{_segment(name)}"
    return dict(json.loads(_management(management_url, path, timeout=timeout)))


def queue_http(vhost: str, queue: str, management_url: str, timeout: float = 10) -> dict[str, Any]:
    """``GET /api/queues/<vhost>/<name>``: the queue's details and message counts."""
    path = f"/api/queues/{_segment(vhost)}/{_segment(queue)}"
    return dict(json.loads(_management(management_url, path, timeout=timeout)))


class PolicyAtStartup:
    """Applies a policy through the management API from a worker's thread: at once, then,
    after a failure (logged with its reason), again with a growing delay until it takes
    or the worker stops. The PUT is idempotent, so every replica may do it at every
    start; the worker never waits for it, nor stops when the broker refuses it."""

    def __init__(
        self,
        policy: Policy,
        management_url: str,
        *,
        service: str,
        first_retry: float = 5.0,
        max_retry: float = 300.0,
        timeout: float = 10.0,
    ) -> None:
        self.policy = policy
        self.management_url = management_url
        self.service = service
        self.first_retry = first_retry
        self.max_retry = max_retry
        self.timeout = timeout
        #: Set once the broker accepted the policy.
        self.applied = threading.Event()
        self.failures = 0

    def run(self, stop: threading.Event) -> None:
        delay = self.first_retry
        where = redact(self.management_url)
        while not stop.is_set():
            try:
                apply_http(self.policy, self.management_url, timeout=self.timeout)
            except Exception as exc:  # noqa: BLE001 - a worker runs on without its policy
                self.failures += 1
                log.warning(
                    "policy %s not applied on vhost %s (retrying in %.0fs): %s",
                    self.policy.name,
                    self.policy.vhost,
                    delay,
                    exc,
                    extra={"service": self.service},
                )
            else:
                log.info(
                    "policy %s applied on vhost %s through %s",
                    self.policy.name,
                    self.policy.vhost,
                    where,
                    extra={"service": self.service},
                )
                self.applied.set()
                return
            if stop.wait(delay):
                return
            delay = min(delay * 2, self.max_retry)
