"""The SSRF guard of outbound webhooks (logistics_shared/webhooks/addresses.py).

Address classes are tested on the check itself, with sockets and DNS made to fail
the test if anything tries them; live requests go only to receivers on 127.0.0.1
and ::1 (or to refused loopback addresses, which are never connected to).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from ipaddress import ip_network
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from logistics_shared.settings import SettingsError
from logistics_shared.webhooks.addresses import (
    MAX_URL_LENGTH,
    GuardedResolver,
    RefusedAddress,
    guarded_connector,
    parse_networks,
    refusal,
    refused,
    url_problem,
)

LOOPBACK = (ip_network("127.0.0.0/8"), ip_network("::1/128"))


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connect or DNS lookup fails the test: these checks must decide without either."""

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a connection or lookup was attempted: {args!r}")

    for name in ("connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, forbidden)
    monkeypatch.setattr(socket, "getaddrinfo", forbidden)
    monkeypatch.setattr(socket, "create_connection", forbidden)


# --- refusal(): the address classes, without opening any connection ----------------------

REFUSED = [
    ("10.0.0.1", "private"),
    ("10.255.255.254", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.0.1", "private"),
    ("192.168.255.254", "private"),
    ("169.254.0.1", "link-local"),
    ("169.254.255.254", "link-local"),
    ("169.254.169.254", "metadata"),  # AWS, GCP, Azure, OpenStack
    ("169.254.170.2", "metadata"),  # ECS task metadata
    ("fd00:ec2::254", "metadata"),  # AWS over IPv6
    ("100.100.100.200", "metadata"),  # Alibaba
    ("fc00::1", "unique-local"),
    ("fd12:3456:789a::1", "unique-local"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("febf:ffff::1", "link-local"),
    ("fec0::1", "site-local"),
    ("100.64.0.1", "shared (CGNAT)"),
    ("100.127.255.254", "shared (CGNAT)"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified (this network)"),
    ("0.255.255.255", "unspecified (this network)"),
    ("::", "unspecified"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("::1", "loopback"),
    # IPv6 forms that carry an IPv4 address: the IPv4 address decides.
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:169.254.169.254", "metadata"),
    ("::127.0.0.1", "loopback"),  # IPv4-compatible (deprecated)
    ("::8.8.8.8", "reserved (IPv4-compatible)"),
    ("64:ff9b::10.0.0.1", "private"),  # NAT64
    ("64:ff9b::127.0.0.1", "loopback"),
    ("64:ff9b:1::1", "NAT64 (local use)"),
    ("2002:a9fe:a9fe::1", "metadata"),  # 6to4 of 169.254.169.254
    ("2002:c0a8:101::1", "private"),  # 6to4 of 192.168.1.1
    ("2001::1", "Teredo"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("192.0.0.8", "reserved (IETF protocol assignments)"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.254", "benchmarking"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.1", "documentation"),
    ("203.0.113.1", "documentation"),
    ("2001:db8::1", "documentation"),
    ("100::1", "discard-only"),
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "9.9.9.9",
    "11.0.0.1",  # just past 10/8
    "172.15.255.254",  # just before 172.16/12
    "172.32.0.1",  # just past it
    "192.167.255.254",
    "100.63.255.254",  # just before 100.64/10
    "100.128.0.1",  # just past it
    "169.253.255.254",
    "2606:4700::1111",
    "2606:4700::1",
    "2001:4860:4860::8888",
    "2a00:1450:4001::1",
    "64:ff9b::8.8.8.8",  # NAT64 of a public address
    "::ffff:8.8.8.8",
]


@pytest.mark.parametrize(("address", "reason"), REFUSED, ids=[a for a, _ in REFUSED])
def test_addresses_that_are_not_globally_routable_are_refused(no_network, address, reason):
    found = refusal(address)
    assert found is not None and found.startswith(reason), found


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_not_refused(no_network, address):
    assert refusal(address) is None


def test_the_allow_list_overrides_the_refusal_for_its_networks_only(no_network):
    assert refusal("127.0.0.1", LOOPBACK) is None
    assert refusal("127.10.20.30", LOOPBACK) is None
    assert refusal("::1", LOOPBACK) is None
    assert refusal("::ffff:127.0.0.1", LOOPBACK) is None  # the IPv4 address it carries is allowed
    assert refusal("10.0.0.1", LOOPBACK) == "private"
    assert refusal("169.254.169.254", LOOPBACK) == "metadata"
    only_v6 = (ip_network("::1/128"),)
    assert refusal("127.0.0.1", only_v6) == "loopback"
    assert refusal("10.1.2.3", (ip_network("10.1.0.0/16"),)) is None
    assert refusal("10.2.0.1", (ip_network("10.1.0.0/16"),)) == "private"


# --- parse_networks(): the webhook_allow_networks setting ---------------------------------


def test_parse_networks_reads_the_comma_list():
    assert parse_networks("") == ()
    assert parse_networks(" 127.0.0.0/8 , ::1/128,") == LOOPBACK
    assert parse_networks("10.0.0.5") == (ip_network("10.0.0.5/32"),)


@pytest.mark.parametrize("raw", ["10.0.0.1/8", "nonsense", "127.0.0.0/33", "::1/129", "127.0.0.0/8,,x"])
def test_a_bad_network_names_the_setting_and_the_entry(raw):
    with pytest.raises(SettingsError) as caught:
        parse_networks(raw)
    message = str(caught.value)
    assert "'webhook_allow_networks' (LOGISTICS_WEBHOOK_ALLOW_NETWORKS)" in message
    assert "CIDR" in message


# --- url_problem(): when an endpoint is created or changed --------------------------------

GOOD_URLS = [
    "https://hooks.example.com/logistics",
    "https://hooks.example.com:8443/in?token=abc&x=1",
    "https://8.8.8.8/hook",
    "https://[2606:4700::1]/hook",
    "https://xn--r8jz45g.jp/hook",
    "https://例え.jp/hook",
    "https://example.com/#",
]

BAD_URLS = [
    ("http://hooks.example.com/", "start with https://"),
    ("ftp://hooks.example.com/", "start with https://"),
    ("/relative/path", "absolute"),
    ("//hooks.example.com/x", "absolute"),
    ("hooks.example.com/x", "absolute"),
    ("https:///nohost", "absolute"),
    ("https://user:pw@hooks.example.com/", "user name or password"),
    ("https://user@hooks.example.com/", "user name or password"),
    ("https://:pw@hooks.example.com/", "user name or password"),
    ("https://hooks.example.com/#frag", "fragment"),
    ("https://hooks.example.com:99999/", "cannot be parsed"),
    ("https://hooks.example.com/a b", "whitespace"),
    ("https://hooks.example.com/\n", "whitespace"),
    ("https://hooks.example.com\\@127.0.0.1/", "backslash"),
    ("https://" + "a" * MAX_URL_LENGTH + ".com/", f"longer than {MAX_URL_LENGTH}"),
    ("https://127.0.0.1/", "loopback"),
    ("https://[::1]:8443/", "loopback"),
    ("https://[::ffff:127.0.0.1]/", "loopback"),
    ("https://[::ffff:10.0.0.1]/", "private"),
    ("https://10.0.0.1/", "private"),
    ("https://172.16.5.4/", "private"),
    ("https://192.168.1.1/", "private"),
    ("https://169.254.169.254/latest/meta-data/", "metadata"),
    ("https://[fd00:ec2::254]/", "metadata"),
    ("https://[fc00::1]/", "unique-local"),
    ("https://[fe80::1%25eth0]/", "link-local"),
    ("https://100.64.0.1/", "CGNAT"),
    ("https://0.0.0.0/", "unspecified"),
    ("https://localhost/", "loopback"),
    ("https://LOCALHOST./", "loopback"),
    ("https://api.localhost/", "loopback"),
    ("https://2130706433/", "dotted-quad"),  # 127.0.0.1 as one number
    ("https://127.1/", "dotted-quad"),
    ("https://0x7f.0.0.1/", "dotted-quad"),
    ("https://0177.0.0.1/", "dotted-quad"),
]


@pytest.mark.parametrize("url", GOOD_URLS)
def test_good_endpoint_urls(no_network, url):
    assert url_problem(url, allow_http=False) is None


@pytest.mark.parametrize(("url", "problem"), BAD_URLS, ids=[u[:60] for u, _ in BAD_URLS])
def test_bad_endpoint_urls_say_why(no_network, url, problem):
    found = url_problem(url, allow_http=False)
    assert found is not None and problem in found, found


def test_http_and_loopback_only_where_the_settings_allow(no_network):
    assert url_problem("http://hooks.example.com/", allow_http=True) is None
    assert "https:// or http://" in (url_problem("ftp://x.example/", allow_http=True) or "")
    assert url_problem("http://127.0.0.1:8080/", allow_http=True, allow=LOOPBACK) is None
    assert url_problem("http://[::1]:8080/", allow_http=True, allow=LOOPBACK) is None
    assert url_problem("http://localhost:8080/", allow_http=True, allow=LOOPBACK) is None
    assert "private" in (url_problem("http://10.0.0.1/", allow_http=True, allow=LOOPBACK) or "")


# --- GuardedResolver on a stub resolver: what DNS answers, without DNS ---------------------


class Answers(aiohttp.abc.AbstractResolver):
    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> Any:
        return [
            {
                "hostname": host,
                "host": a,
                "port": port,
                "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
            for a in self.addresses
        ]

    async def close(self) -> None:
        pass


def test_the_resolver_drops_refused_addresses_and_keeps_the_rest(no_network):
    resolver = GuardedResolver((), Answers("10.0.0.1", "8.8.8.8", "169.254.169.254", "2606:4700::1"))
    kept = asyncio.run(resolver.resolve("rebind.example", 443))
    assert [a["host"] for a in kept] == ["8.8.8.8", "2606:4700::1"]


def test_the_resolver_refuses_a_name_with_only_refused_addresses(no_network):
    resolver = GuardedResolver((), Answers("127.0.0.1", "169.254.169.254"))
    with pytest.raises(RefusedAddress) as caught:
        asyncio.run(resolver.resolve("internal.example", 443))
    assert caught.value.host == "internal.example"
    assert caught.value.reasons == (("127.0.0.1", "loopback"), ("169.254.169.254", "metadata"))
    assert "169.254.169.254 is metadata" in str(caught.value)
    assert isinstance(caught.value, OSError) and caught.value.errno is not None


def test_guarded_connector_owns_its_resolver_and_socket_factory():
    async def build() -> None:
        with pytest.raises(TypeError, match="socket_factory"):
            guarded_connector(LOOPBACK, socket_factory=lambda info: socket.socket())
        connector = guarded_connector(LOOPBACK, limit=5)
        assert isinstance(connector, aiohttp.TCPConnector) and connector.limit == 5
        await connector.close()

    asyncio.run(build())


# --- live: real aiohttp requests to receivers on 127.0.0.1 and ::1 ------------------------


class Receiver:
    """An aiohttp.web receiver on one loopback address: ``/`` answers 200, ``/redirect?to=URL`` 302."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.hits: list[str] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> Receiver:
        async def ok(request: web.Request) -> web.Response:
            self.hits.append(request.path_qs)
            return web.Response(text="ok")

        async def redirect(request: web.Request) -> web.Response:
            self.hits.append(request.path_qs)
            raise web.HTTPFound(request.query["to"])

        app = web.Application()
        app.router.add_get("/", ok)
        app.router.add_get("/redirect", redirect)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    def url(self, path: str = "/", host: str | None = None) -> str:
        host = host or self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}{path}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@asynccontextmanager
async def receiving(host: str) -> AsyncIterator[Receiver]:
    receiver = await Receiver(host).start()
    try:
        yield receiver
    finally:
        await receiver.stop()


async def fetch(
    url: str, allow: tuple[Any, ...], resolver: aiohttp.abc.AbstractResolver | None = None, **kwargs: Any
) -> aiohttp.ClientResponse:
    timeout = aiohttp.ClientTimeout(total=10)
    session = aiohttp.ClientSession(connector=guarded_connector(allow, resolver=resolver), timeout=timeout)
    async with session, session.get(url, **kwargs) as response:
        await response.read()
        return response


def run(make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(make())


TARGETS = [
    pytest.param("127.0.0.1", None, id="http://127.0.0.1"),
    pytest.param("::1", None, id="http://[::1]"),
    pytest.param("127.0.0.1", "localhost", id="http://localhost (a name resolving to loopback)"),
]


@pytest.mark.parametrize(("listen", "name"), TARGETS)
def test_loopback_is_refused_without_the_allow_list(listen, name):
    async def go() -> None:
        async with receiving(listen) as receiver:
            with pytest.raises(aiohttp.ClientConnectorError) as caught:
                await fetch(receiver.url("/", name), ())
            why = refused(caught.value)
            assert why is not None, caught.value
            assert ("loopback" in str(why)) and receiver.hits == []
            assert "webhook address refused" in str(caught.value)

    run(go)


@pytest.mark.parametrize(("listen", "name"), TARGETS)
def test_loopback_is_reached_with_the_allow_list(listen, name):
    async def go() -> None:
        async with receiving(listen) as receiver:
            response = await fetch(receiver.url("/", name), LOOPBACK)
            assert response.status == 200 and receiver.hits == ["/"]

    run(go)


def test_a_redirect_to_a_refused_address_is_refused_when_redirects_are_followed():
    async def go() -> None:
        only_v6 = (ip_network("::1/128"),)
        async with receiving("::1") as receiver:
            # Not followed (what the dispatcher does): the 302 is the answer.
            hop = receiver.url("/redirect?to=http://127.0.0.1:9/")
            response = await fetch(hop, only_v6, allow_redirects=False)
            assert response.status == 302 and receiver.hits == ["/redirect?to=http://127.0.0.1:9/"]
            # Followed: to an allowed address it arrives, to a refused one it is refused, whether the
            # target is an IP literal (the socket factory's check) or a name (the resolver's; here a
            # stub's answer, since whether this machine's "localhost" has ::1 too varies).
            to_self = receiver.url("/redirect?to=" + receiver.url("/"))
            assert (await fetch(to_self, only_v6)).status == 200
            dns = Answers("127.0.0.1")
            for target in (f"http://127.0.0.1:{receiver.port}/", f"http://internal.test:{receiver.port}/"):
                receiver.hits.clear()
                with pytest.raises(aiohttp.ClientConnectorError) as caught:
                    await fetch(receiver.url(f"/redirect?to={target}"), only_v6, dns)
                why = refused(caught.value)
                assert why is not None and why.reasons == (("127.0.0.1", "loopback"),), caught.value
                assert receiver.hits == [f"/redirect?to={target}"]  # the first hop only

    run(go)


def test_an_ordinary_connect_failure_is_not_a_refusal():
    async def go() -> None:
        with socket.socket() as probe:  # a loopback port nobody listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with pytest.raises(aiohttp.ClientConnectorError) as caught:
            await fetch(f"http://127.0.0.1:{port}/", LOOPBACK)
        assert refused(caught.value) is None

    run(go)


def test_aiohttp_does_not_ask_the_resolver_about_an_ip_literal():
    """Why guarded_connector also checks in its socket factory: with the resolver alone, an IP
    literal (the URL's, or a redirect's) is connected to unchecked."""

    async def go() -> None:
        async with receiving("127.0.0.1") as receiver:
            connector = aiohttp.TCPConnector(resolver=GuardedResolver(()))
            session = aiohttp.ClientSession(connector=connector)
            async with session, session.get(receiver.url("/")) as response:
                assert response.status == 200  # reached: the resolver was never asked
            assert receiver.hits == ["/"]

    run(go)
