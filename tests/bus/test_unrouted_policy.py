"""The policy bounding the unrouted parking queue (``logistics broker-policy``).

Unit: the policy and the command built from the settings; the management API
path against a stub HTTP server on loopback (the machine's RabbitMQ has no
management plugin, and tests never enable plugins). For real: applied with
rabbitmqctl on a private vhost of the test's own (created and deleted here;
the default vhost and the node's configuration are never touched), the
producer's topology declared on it, five unroutable events published through
the alternate exchange, and the queue holds the newest three.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from click.testing import CliRunner
from kombu import Connection, Producer

from logistics_shared.bus.names import Names
from logistics_shared.bus.policy import (
    PolicyError,
    apply_http,
    rabbitmqctl_args,
    rabbitmqctl_command,
    unrouted_policy,
    vhost_of,
)
from logistics_shared.bus.topology import declare_producer, producer_exchange
from logistics_shared.cli import main
from logistics_shared.settings import load_settings

from ..services import services_required


@pytest.mark.parametrize(
    ("env", "vhost", "name", "pattern", "definition"),
    [
        (
            {},
            "/",
            "logistics.inventory.unrouted.bound",
            r"^logistics\.inventory\.unrouted$",
            {"max-length": 10000, "overflow": "drop-head", "message-ttl": 7 * 24 * 3600 * 1000},
        ),
        (
            {
                "LOGISTICS_BROKER_URL": "amqp://u:p@h:5672/stack%2Fa",
                "LOGISTICS_BUS_NAMESPACE": "blue",
                "LOGISTICS_UNROUTED_MAX_LENGTH": "3",
                "LOGISTICS_UNROUTED_TTL_SECONDS": "60",
            },
            "stack/a",
            "blue.inventory.unrouted.bound",
            r"^blue\.inventory\.unrouted$",
            {"max-length": 3, "overflow": "drop-head", "message-ttl": 60000},
        ),
    ],
)
def test_the_policy_follows_the_settings(
    env: dict[str, str], vhost: str, name: str, pattern: str, definition: dict[str, Any]
) -> None:
    policy = unrouted_policy(load_settings("inventory", {}, env), "inventory")
    assert (policy.vhost, policy.name, policy.pattern) == (vhost, name, pattern)
    assert policy.definition == definition
    body = {"pattern": pattern, "definition": definition, "priority": 10, "apply-to": "queues"}
    assert policy.body() == body
    args = rabbitmqctl_args(policy)
    assert args[:8] == ["rabbitmqctl", "set_policy", "-p", vhost, "--apply-to", "queues", "--priority", "10"]
    assert args[8:10] == [name, pattern] and json.loads(args[10]) == definition
    assert shlex.split(rabbitmqctl_command(policy)) == args, "the printed command parses back to the argv"


@pytest.mark.parametrize(
    ("url", "vhost"),
    [
        ("amqp://guest:guest@127.0.0.1:5672//", "/"),
        ("amqp://127.0.0.1:5672/", "/"),
        ("amqp://127.0.0.1", "/"),
        ("amqp://h/%2F", "/"),
        ("amqp://h/staging", "staging"),
        ("memory://", "/"),
    ],
)
def test_the_vhost_is_the_broker_urls(url: str, vhost: str) -> None:
    assert vhost_of(url) == vhost


def test_the_pattern_matches_only_that_queue() -> None:
    import re

    pattern = unrouted_policy(load_settings("inventory", {}, {}), "inventory").pattern
    assert re.search(pattern, "logistics.inventory.unrouted")
    # Not a longer name, not another prefix, and the dots are literal.
    for other in (
        "logistics.inventory.unrouted.x",
        "xlogistics.inventory.unrouted",
        "logisticsXinventory.unrouted",
    ):
        assert not re.search(pattern, other)


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []
    status = 201

    def do_PUT(self) -> None:
        length = int(self.headers["content-length"])
        body = json.loads(self.rfile.read(length))
        self.seen.append({"path": self.path, "auth": self.headers.get("authorization"), "body": body})
        self.send_response(self.status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:  # quiet
        pass


@pytest.fixture
def management() -> Iterator[tuple[str, type[_Recorder]]]:
    handler = type("Recorder", (_Recorder,), {"seen": [], "status": 201})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://guest:s%40cret@127.0.0.1:{server.server_port}", handler
    server.shutdown()
    server.server_close()


def test_the_management_api_gets_a_put_with_basic_auth(management: tuple[str, type[_Recorder]]) -> None:
    url, handler = management
    env = {"LOGISTICS_RABBITMQ_MANAGEMENT_URL": url, "LOGISTICS_UNROUTED_MAX_LENGTH": "5"}
    result = CliRunner(env=env).invoke(main, ["broker-policy", "shipping"])
    assert result.exit_code == 0, result.output
    assert "s@cret" not in result.output and "s%40cret" not in result.output, "no password in the output"
    [request] = handler.seen
    assert request["path"] == "/api/policies/%2F/logistics.shipping.unrouted.bound"
    assert request["auth"] == "Basic Z3Vlc3Q6c0BjcmV0"  # guest:s@cret
    assert request["body"]["definition"]["max-length"] == 5
    assert request["body"]["apply-to"] == "queues"


def test_a_refusal_of_the_management_api_is_an_error(management: tuple[str, type[_Recorder]]) -> None:
    url, handler = management
    handler.status = 401
    policy = unrouted_policy(load_settings("shipping", {}, {}), "shipping")
    with pytest.raises(PolicyError, match="answered 401") as raised:
        apply_http(policy, url)
    assert "cret" not in str(raised.value)


def test_without_a_management_url_the_command_is_printed() -> None:
    result = CliRunner(env={"LOGISTICS_RABBITMQ_MANAGEMENT_URL": ""}).invoke(
        main, ["broker-policy", "support", "--vhost", "ops"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("rabbitmqctl set_policy -p ops --apply-to queues --priority 10 ")


# --- for real, on a private vhost -----------------------------------------------------------


def need_rabbitmqctl() -> str:
    """rabbitmqctl on PATH: skip without it, or fail under LOGISTICS_REQUIRE_SERVICES=1
    (as need_tool() in tests/ops/test_alert_rules.py)."""
    found = shutil.which("rabbitmqctl", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))
    if found is None:
        message = "applying the policy for real needs rabbitmqctl (apt-get install rabbitmq-server)"
        if services_required():
            pytest.fail(f"{message}; LOGISTICS_REQUIRE_SERVICES=1 forbids skipping", pytrace=False)
        pytest.skip(message)
    return found


def ctl(tool: str, *args: str) -> None:
    result = subprocess.run([tool, *args], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"rabbitmqctl {' '.join(args)}: {result.stderr or result.stdout}"


@pytest.fixture
def private_vhost(rabbit: str) -> Iterator[tuple[str, str]]:
    """(vhost, rabbitmqctl): a vhost of this test's own, guest allowed, deleted afterwards."""
    tool = need_rabbitmqctl()
    vhost = f"logistics-test-{uuid.uuid4().hex[:10]}"
    ctl(tool, "add_vhost", vhost)
    try:
        ctl(tool, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield vhost, tool
    finally:
        subprocess.run([tool, "delete_vhost", vhost], capture_output=True, timeout=60, check=False)


@pytest.mark.rabbitmq
def test_the_policy_drops_the_oldest_beyond_the_max_length(
    rabbit: str, private_vhost: tuple[str, str]
) -> None:
    vhost, tool = private_vhost
    parts = urlsplit(rabbit)
    url = urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), "", ""))
    env = {
        "LOGISTICS_BROKER_URL": url,
        "LOGISTICS_RABBITMQ_MANAGEMENT_URL": "",
        "LOGISTICS_UNROUTED_MAX_LENGTH": "3",
        "PATH": os.pathsep.join([os.path.dirname(tool), os.environ.get("PATH", "")]),
    }
    result = CliRunner(env=env).invoke(main, ["broker-policy", "inventory", "--apply"])
    assert result.exit_code == 0, result.output

    names = Names("logistics")
    queue = names.unrouted_queue("inventory")
    with Connection(url, transport_options={"confirm_publish": True}) as conn:
        channel = conn.channel()
        declare_producer(channel, names, "inventory")
        producer = Producer(channel, exchange=producer_exchange(names, "inventory"))
        for number in range(5):
            # No queue binds stock.received: the alternate exchange parks each one.
            producer.publish({"n": number}, routing_key="stock.received", serializer="json")
        _name, depth, _consumers = channel.queue_declare(queue, passive=True)
        assert depth == 3
        kept = []
        while (message := channel.basic_get(queue, no_ack=True)) is not None:
            kept.append(json.loads(message.body)["n"])
        assert kept == [2, 3, 4], "drop-head: the oldest parked events go first"

    listed = subprocess.run(
        [tool, "-q", "list_queues", "-p", vhost, "name", "policy"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert f"{queue}\t{queue}.bound" in listed


# --- applied by the worker at start-up ----------------------------------------------------------


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_the_worker_applies_the_policy_at_start_up_and_retries_a_refusal(
    management: tuple[str, type[_Recorder]],
    service_client: Any,
    rabbit: str,
    namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The stub refuses the first PUT (503): the worker logs why, keeps running (ready, its
    consumers connected), and puts the policy again until it takes. The real broker's side
    is in tests/bus/test_queue_gauges_management.py (a private node with the API)."""
    from logistics_shared.bus.worker import Worker

    from ..helpers.bus import wait_until

    url, handler = management
    handler.status = 503
    client = service_client(
        "inventory",
        "postgres",
        broker_url=rabbit,
        bus_namespace=namespace,
        rabbitmq_management_url=url,
        unrouted_max_length=7,
    )
    worker = Worker(client.registry["logistics.service"], client.settings, client.registry)
    assert worker.broker_policy is not None
    worker.broker_policy.first_retry = 0.2  # 5 s in production, doubling up to 5 minutes
    with caplog.at_level("WARNING", logger="logistics_shared.bus.policy"):
        worker.start()
        try:
            wait_until(lambda: len(handler.seen) >= 1, what="a PUT at start-up")
            wait_until(
                lambda: worker.readiness()["status"] == "ready", what="the worker ready, policy refused"
            )
            assert not worker.broker_policy.applied.is_set()
            handler.status = 201
            wait_until(worker.broker_policy.applied.is_set, what="the policy applied on a retry")
        finally:
            worker.shutdown()
    refused = [r.getMessage() for r in caplog.records if "not applied" in r.getMessage()]
    assert refused and "answered 503" in refused[0], refused
    assert "cret" not in caplog.text, "no password in the log"
    paths = {request["path"] for request in handler.seen}
    assert paths == {f"/api/policies/%2F/{namespace}.inventory.unrouted.bound"}
    assert handler.seen[-1]["body"]["definition"]["max-length"] == 7
    count = len(handler.seen)
    assert count >= 2 and worker.broker_policy.failures == count - 1


def test_without_a_management_url_the_worker_applies_nothing(service_client: Any, rabbit: str) -> None:
    from logistics_shared.bus.worker import Worker

    client = service_client("inventory", "sqlite", broker_url=rabbit, rabbitmq_management_url="")
    worker = Worker(client.registry["logistics.service"], client.settings, client.registry)
    assert worker.broker_policy is None and worker.management_gauges is None
