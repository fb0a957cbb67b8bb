"""The outbound (SSRF) policy: address classes in every numeric spelling, the allow-list, and refusal
before any socket opens — on the first hop, on redirects, over HTTP and WebSocket.

Nothing here sends a packet beyond loopback: internal names resolve through a stub resolver, the
network layer below the guard is a recorder, and socket connects are trapped as a second safety net.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpcore
import httpx
import pytest
from websockets.asyncio.server import ServerConnection, serve

from openevi.llm.base import GenerationRequest, LLMError, Message
from openevi.llm.custom import CustomSSELanguageModel, CustomWebSocketLanguageModel
from openevi.net.clients import GuardedTransport, connect_websocket, short_reason
from openevi.net.outbound import (
    AllowList,
    IPAddress,
    OutboundPolicy,
    OutboundRefused,
    parse_ip_literal,
    refusal_reason,
)
from tests.server import free_port
from tests.support import http_stub
from tests.support.http_stub import QuietHandler

REFUSED_LITERALS = [
    # IPv4 loopback in every spelling inet_aton accepts
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("2130706433", "loopback"),
    ("0x7f.1", "loopback"),
    ("0x7f000001", "loopback"),
    ("017700000001", "loopback"),
    ("0177.0.0.1", "loopback"),
    ("127.1", "loopback"),
    ("127.0.1", "loopback"),
    ("127.0.0.1.", "loopback"),
    # other IPv4 classes
    ("169.254.169.254", "link-local"),
    ("0xa9.0xfe.0xa9.0xfe", "link-local"),
    ("2852039166", "link-local"),
    ("10.0.0.1", "private"),
    ("012.1", "private"),
    ("172.16.5.4", "private"),
    ("192.168.0.1", "private"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("224.0.0.251", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("0.0.0.0", "unspecified"),
    ("0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    # IPv6, and IPv4 inside IPv6
    ("::1", "loopback"),
    ("[::1]", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("fc00::1", "private"),
    ("fec0::1", "site-local"),
    ("feff:ffff::1", "site-local"),
    ("fd12:3456::1", "private"),
    ("ff02::1", "multicast"),
    ("::ffff:127.0.0.1", "loopback"),
    ("[::ffff:127.0.0.1]", "loopback"),
    ("::ffff:7f00:1", "loopback"),
    ("::ffff:169.254.169.254", "link-local"),
    ("::ffff:10.0.0.1", "private"),
    ("::127.0.0.1", "IPv4-compatible"),
    ("::10.0.0.1", "IPv4-compatible"),
    ("::ffff:0:7f00:1", "loopback"),
    ("64:ff9b::a9fe:a9fe", "link-local"),
    ("2002:7f00:1::", "loopback"),
    ("2002:a00:1::1", "private"),
    ("2001:db8::1", ""),  # documentation range (its class name differs between Python versions)
    ("198.51.100.7", ""),
]

ALLOWED_LITERALS = ["8.8.8.8", "93.184.216.34", "0x5db8d822", "::ffff:8.8.8.8", "2606:4700:4700::1111", "1.1.1.1"]


@pytest.mark.parametrize(("host", "reason"), REFUSED_LITERALS)
def test_internal_addresses_are_refused_in_every_spelling(host: str, reason: str) -> None:
    ip = parse_ip_literal(host)
    assert ip is not None, host
    why = refusal_reason(ip)
    assert why is not None and reason in why, (host, ip, why)


@pytest.mark.parametrize("host", ALLOWED_LITERALS)
def test_public_addresses_are_allowed(host: str) -> None:
    ip = parse_ip_literal(host)
    assert ip is not None and refusal_reason(ip) is None, (host, ip)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1.258", "10.1.1.2"),
        ("0X0A.0.0.1", "10.0.0.1"),
        ("example.com", None),
        ("localhost", None),
        ("1.2.3.4.5", None),
        ("08.1.1.1", None),  # 8 is not an octal digit: a (strange) name, left to the resolver
        ("256.1.1.1", None),
        ("1.2.65536", None),
        ("4294967296", None),
        ("1.2.3.-4", None),
        ("1_0.0.0.1", None),
        ("", None),
    ],
)
def test_numeric_host_parsing(host: str, expected: str | None) -> None:
    ip = parse_ip_literal(host)
    assert (str(ip) if ip is not None else None) == expected


def test_allow_list_parsing_and_matching() -> None:
    allow = AllowList.parse(" 127.0.0.1/32, 10.0.0.0/8 ,::1/128, llm.internal, *.corp.example, 192.168.1.7, [fd00::1],")
    assert allow.hosts == frozenset({"llm.internal"})
    assert allow.allows_host("LLM.internal.") and allow.allows_host("a.b.corp.example")
    assert not allow.allows_host("corp.example") and not allow.allows_host("evil-llm.internal")
    ip = ipaddress.ip_address
    assert allow.allows_address(ip("10.200.0.1")) and allow.allows_address(ip("192.168.1.7"))
    assert allow.allows_address(ip("::ffff:127.0.0.1"))  # the same address, IPv6-mapped
    assert allow.allows_address(ip("fd00::1")) and allow.allows_address(ip("::1"))
    assert not allow.allows_address(ip("127.0.0.2")) and not allow.allows_address(ip("192.168.1.8"))
    assert AllowList.parse("") == AllowList()
    for bad in ("10.0.0.0/33", "http://x", "a b", "10.0.0.1/8/1"):
        with pytest.raises(ValueError, match="OPENEVI_OUTBOUND_ALLOW"):
            AllowList.parse(bad)


class StubResolver:
    """Maps test host names to addresses; records lookups; never touches DNS."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.asked.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "unknown test host")
        return [ipaddress.ip_address(a) for a in self.table[host]]


RESOLVER = StubResolver(
    {
        "internal.test": ["10.0.0.1"],
        "metadata.test": ["169.254.169.254"],
        "mapped.test": ["::ffff:127.0.0.1"],
        "mixed.test": ["93.184.216.34", "192.168.0.10"],  # one bad record refuses the name
        "public.test": ["93.184.216.34"],
        "stub.test": ["127.0.0.1"],
    }
)


@pytest.fixture(autouse=True)
def no_real_connects(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Fail on any connect to a non-loopback address (a second net under the recorder)."""
    attempts: list[Any] = []
    real_create_connection = asyncio.BaseEventLoop.create_connection
    real_sock_connect = asyncio.BaseEventLoop.sock_connect
    real_connect = socket.socket.connect

    def check(host: Any) -> None:
        attempts.append(host)
        if not (isinstance(host, str) and (host.startswith("127.") or host in ("::1", "localhost"))):
            raise AssertionError(f"a test tried to connect to {host!r}")

    async def create_connection(self: Any, *args: Any, **kwargs: Any) -> Any:
        check(kwargs.get("host", args[1] if len(args) > 1 else None))
        return await real_create_connection(self, *args, **kwargs)

    async def sock_connect(self: Any, sock: Any, address: Any) -> Any:
        check(address[0])
        return await real_sock_connect(self, sock, address)

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            check(address[0])
        return real_connect(self, address)

    monkeypatch.setattr(asyncio.BaseEventLoop, "create_connection", create_connection)
    monkeypatch.setattr(asyncio.BaseEventLoop, "sock_connect", sock_connect)
    monkeypatch.setattr(socket.socket, "connect", connect)
    yield attempts


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Below the guard: records where it was asked to connect, then connects only to loopback."""

    def __init__(self) -> None:
        self.hosts: list[str] = []
        self.real = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        self.hosts.append(host)
        if not host.startswith("127."):
            raise httpcore.ConnectError(f"test backend does not connect to {host}")
        return await self.real.connect_tcp(host, port, *args, **kwargs)

    async def sleep(self, seconds: float) -> None:
        await self.real.sleep(seconds)


def client(policy: OutboundPolicy, backend: RecordingBackend, **options: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=GuardedTransport(policy, inner=backend), timeout=5, **options)


@pytest.mark.parametrize(
    "url",
    [
        "http://internal.test/",
        "https://metadata.test/latest/meta-data/",
        "http://mapped.test:8080/",
        "http://mixed.test/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://017700000001/",
        "http://[::ffff:127.0.0.1]/",
        "https://169.254.169.254/",
        "http://10.1.2.3:9000/hook",
    ],
)
async def test_http_refusal_happens_before_connecting(url: str, no_real_connects: list[Any]) -> None:
    backend = RecordingBackend()
    async with client(OutboundPolicy(resolver=RESOLVER), backend) as http:
        with pytest.raises(OutboundRefused) as info:
            await http.get(url)
    assert backend.hosts == [] and no_real_connects == []
    assert "OPENEVI_OUTBOUND_ALLOW" in str(info.value)


async def test_connection_goes_to_the_checked_address() -> None:
    backend = RecordingBackend()
    async with client(OutboundPolicy(resolver=RESOLVER), backend) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get("http://public.test/")
    # The resolved, checked address is what the network layer gets, not the name (no second lookup).
    assert backend.hosts == ["93.184.216.34"]


async def test_lookup_failure_is_a_connect_error_not_a_refusal() -> None:
    backend = RecordingBackend()
    async with client(OutboundPolicy(resolver=RESOLVER), backend) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get("http://nowhere.test/")
    assert backend.hosts == []


class Echo(QuietHandler):
    """Answers with the Host header it saw; /redirect sends the client to an internal address."""

    def do_GET(self) -> None:
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", self.path.split("to=", 1)[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = (self.headers.get("Host") or "").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def echo() -> Iterator[int]:
    with http_stub.serving(Echo) as port:
        yield port


async def test_allow_listed_network_works_with_the_original_host_header(echo: int) -> None:
    backend = RecordingBackend()
    policy = OutboundPolicy(AllowList.parse("127.0.0.1/32"), resolver=RESOLVER)
    async with client(policy, backend) as http:
        response = await http.get(f"http://stub.test:{echo}/")
    assert response.status_code == 200 and response.text == f"stub.test:{echo}"
    assert backend.hosts == ["127.0.0.1"]
    # Without the allow-list entry the same name is refused.
    async with client(OutboundPolicy(resolver=RESOLVER), RecordingBackend()) as http:
        with pytest.raises(OutboundRefused):
            await http.get(f"http://stub.test:{echo}/")


async def test_allow_listed_host_name(echo: int) -> None:
    policy = OutboundPolicy(AllowList.parse("stub.test"), resolver=RESOLVER)
    async with client(policy, RecordingBackend()) as http:
        assert (await http.get(f"http://stub.test:{echo}/")).status_code == 200
        with pytest.raises(OutboundRefused):
            await http.get(f"http://127.0.0.1:{echo}/")  # allowed by name only, not by address


@pytest.mark.parametrize("target", ["http://internal.test/x", "http://169.254.169.254/latest", "http://0x7f.1:9/"])
async def test_redirects_are_checked_on_every_hop(echo: int, target: str, no_real_connects: list[Any]) -> None:
    backend = RecordingBackend()
    policy = OutboundPolicy(AllowList.parse("stub.test"), resolver=RESOLVER)  # by name: the hop to 0x7f.1 is not
    async with client(policy, backend, follow_redirects=True) as http:
        with pytest.raises(OutboundRefused):
            await http.get(f"http://stub.test:{echo}/redirect?to={target}")
    assert backend.hosts == ["127.0.0.1"]  # the first hop only
    assert all(str(a).startswith("127.") for a in no_real_connects)


@pytest.fixture
def ws_server() -> Iterator[tuple[int, list[str]]]:
    """A loopback WebSocket server (own thread and loop) that records the Host header it saw."""
    hosts: list[str] = []
    port = free_port()
    ready = threading.Event()
    stop: list[asyncio.Event] = []
    loop = asyncio.new_event_loop()

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        hosts.append(ws.request.headers.get("Host", ""))
        await ws.send("hello")

    async def main() -> None:
        stop.append(asyncio.Event())
        async with serve(handler, "127.0.0.1", port):
            ready.set()
            await stop[0].wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(5)
    yield port, hosts
    loop.call_soon_threadsafe(stop[0].set)
    thread.join(5)


@pytest.mark.parametrize(
    "url", ["ws://internal.test/llm", "wss://metadata.test/", "ws://mapped.test:81/", "ws://0x7f.1/"]
)
async def test_websocket_refusal_happens_before_connecting(url: str, no_real_connects: list[Any]) -> None:
    with pytest.raises(OutboundRefused):
        await connect_websocket(url, OutboundPolicy(resolver=RESOLVER), open_timeout=2)
    assert no_real_connects == []


async def test_websocket_pins_the_checked_address_and_keeps_the_host(ws_server: tuple[int, list[str]]) -> None:
    port, hosts = ws_server
    policy = OutboundPolicy(AllowList.parse("127.0.0.1/32"), resolver=RESOLVER)
    ws = await connect_websocket(f"ws://stub.test:{port}/llm", policy, open_timeout=5)
    try:
        assert await ws.recv() == "hello"
    finally:
        await ws.close()
    assert hosts == [f"stub.test:{port}"]


REQUEST = GenerationRequest(messages=[Message("user", "hi")])


# An address the tenant wrote is refused as such; a name is refused exactly as a name that does not
# resolve (the tenant must not learn which internal names exist).
@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://metadata.test/v1/chat/completions", "llm_unreachable"),
        ("https://[::ffff:127.0.0.1]/chat", "llm_url_refused"),
    ],
)
async def test_custom_sse_model_refuses_internal_urls(url: str, code: str, no_real_connects: list[Any]) -> None:
    model = CustomSSELanguageModel(url=url, outbound=OutboundPolicy(resolver=RESOLVER))
    with pytest.raises(LLMError) as info:
        [e async for e in model.stream(REQUEST)]
    await model.aclose()
    assert info.value.code == code
    assert no_real_connects == []


@pytest.mark.parametrize(
    ("url", "code"), [("ws://internal.test/llm", "llm_unreachable"), ("wss://2130706433/llm", "llm_url_refused")]
)
async def test_custom_websocket_model_refuses_internal_urls(url: str, code: str, no_real_connects: list[Any]) -> None:
    model = CustomWebSocketLanguageModel(url=url, outbound=OutboundPolicy(resolver=RESOLVER))
    with pytest.raises(LLMError) as info:
        [e async for e in model.stream(REQUEST)]
    await model.aclose()
    assert info.value.code == code
    assert no_real_connects == []


SECRET = "root:x:0:0:SECRET-INTERNAL-DATA"


class Leaky(QuietHandler):
    """An endpoint whose error bodies hold things the tenant must not see."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path.startswith("/json"):
            long = "upstream exploded: " + "x" * 3000 + SECRET
            body = ('{"error": {"message": "' + long + '"}}').encode()
        elif self.path.startswith("/stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.write(f"data: {SECRET}\n\n".encode())
            return
        else:
            body = f"<html><body>Internal dashboard {SECRET}</body></html>".encode()
        self.send_response(502)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def leaky() -> Iterator[int]:
    with http_stub.serving(Leaky) as port:
        yield port


@pytest.mark.parametrize(("path", "expected"), [("/html", "HTTP 502 Bad Gateway"), ("/json", "upstream exploded")])
async def test_custom_model_errors_do_not_echo_the_body(leaky: int, path: str, expected: str) -> None:
    policy = OutboundPolicy(AllowList.parse("127.0.0.1/32"))
    model = CustomSSELanguageModel(url=f"http://127.0.0.1:{leaky}{path}?api_key=k", outbound=policy)
    with pytest.raises(LLMError) as info:
        [e async for e in model.stream(REQUEST)]
    await model.aclose()
    message = str(info.value)
    assert expected in message and "HTTP 502" in message
    assert SECRET not in message and "Internal dashboard" not in message and len(message) < 250


async def test_custom_model_malformed_stream_is_not_echoed(leaky: int) -> None:
    model = CustomSSELanguageModel(url=f"http://127.0.0.1:{leaky}/stream")
    with pytest.raises(LLMError) as info:
        [e async for e in model.stream(REQUEST)]
    await model.aclose()
    assert info.value.code == "llm_bad_response" and SECRET not in str(info.value)


def test_short_reason_is_one_bounded_printable_line() -> None:
    text = "line one\n\x00\x1b[31mred\r\n" + "y" * 500
    reason = short_reason(text)
    assert "\n" not in reason and "\x1b" not in reason and "\x00" not in reason
    assert reason.startswith("line one") and len(reason) <= 120


@pytest.fixture
def redirecting_ws() -> Iterator[int]:
    """A loopback WebSocket endpoint that answers every handshake with a redirect to an internal host."""
    port = free_port()
    ready = threading.Event()
    stop: list[asyncio.Event] = []
    loop = asyncio.new_event_loop()

    def redirect(connection: ServerConnection, request: Any) -> Any:
        response = connection.respond(302, "moved\n")
        response.headers["Location"] = "ws://internal.test/llm"
        return response

    async def handler(ws: ServerConnection) -> None:
        await ws.close()

    async def main() -> None:
        stop.append(asyncio.Event())
        async with serve(handler, "127.0.0.1", port, process_request=redirect):
            ready.set()
            await stop[0].wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(5)
    yield port
    loop.call_soon_threadsafe(stop[0].set)
    thread.join(5)


async def test_websocket_model_does_not_follow_a_redirect_elsewhere(
    redirecting_ws: int, no_real_connects: list[Any]
) -> None:
    policy = OutboundPolicy(AllowList.parse("127.0.0.1/32"), resolver=RESOLVER)
    model = CustomWebSocketLanguageModel(url=f"ws://stub.test:{redirecting_ws}/llm", outbound=policy)
    with pytest.raises(LLMError) as info:
        [e async for e in model.stream(REQUEST)]
    await model.aclose()
    assert info.value.code == "llm_unreachable" and "redirect" in str(info.value)
    assert set(no_real_connects) == {"127.0.0.1"}  # the first hop only (create_connection, then sock_connect)


async def test_tenants_are_not_told_what_internal_names_resolve_to(no_real_connects: list[Any]) -> None:
    model = CustomSSELanguageModel(url="http://internal.test/v1", outbound=OutboundPolicy(resolver=RESOLVER))
    with pytest.raises(LLMError) as info:
        [e async for e in model.stream(REQUEST)]
    await model.aclose()
    assert "10.0.0.1" not in str(info.value) and "private" not in str(info.value)
    # Word for word what a name that does not exist gives, over SSE and WebSocket alike.
    for cls, scheme in ((CustomSSELanguageModel, "http"), (CustomWebSocketLanguageModel, "ws")):
        said = []
        for host in ("internal.test", "no-such-name.test"):
            other = cls(url=f"{scheme}://{host}/v1", outbound=OutboundPolicy(resolver=RESOLVER))
            with pytest.raises(LLMError) as answer:
                [e async for e in other.stream(REQUEST)]
            await other.aclose()
            said.append((answer.value.code, str(answer.value).replace(host, "HOST")))
        assert said[0] == said[1], said
    with pytest.raises(OutboundRefused) as refused:
        await OutboundPolicy(resolver=RESOLVER).addresses("internal.test", 80)
    assert "10.0.0.1" in str(refused.value)  # the operator's view (logs, delivery records) has it


async def test_a_custom_model_url_the_client_cannot_parse_is_a_config_error(no_real_connects: list[Any]) -> None:
    """It used to surface as an "internal error"."""
    model = CustomSSELanguageModel(url="https://0177.0.0.1/v1", outbound=OutboundPolicy(resolver=RESOLVER))
    with pytest.raises(LLMError) as info:
        [e async for e in model.stream(REQUEST)]
    await model.aclose()
    assert info.value.code == "llm_bad_config" and "not valid" in str(info.value)
    assert no_real_connects == []
