"""A node's /metrics and /health (linkstate.service.metrics, .http): a routing group's real services over in-memory
streams under MockClock, scraped over HTTP and parsed with prometheus_client's parser; the HTTP endpoint against
hostile clients; the tallies the metrics take of the core's outputs; the metrics port rule."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from linkstate.core import events as ev
from linkstate.core.catalog import Ev
from linkstate.core.topology import Topology, TopologyError, default_metrics_port, parse_topology
from linkstate.service.http import MAX_HEAD, HttpEndpoint, Response
from linkstate.service.metrics import MetricsAddress, NodeMetrics, health
from linkstate.service.node import NodeService
from linkstate.service.transport import MemoryTransport
from proto.model import BridgeheadState
from tests.core.group_fixtures import ONE_GROUP, one_group

SERVERS = ("RED-1", "RED-2", "RED-3")
SEATTLE = Path(__file__).resolve().parents[2] / "examples" / "seattle.toml"
FAMILIES = {
    "linkstate_node_info", "linkstate_table_digest_info", "linkstate_table_version", "linkstate_attached",
    "linkstate_attached_members", "linkstate_group_servers", "linkstate_quorum", "linkstate_connector_state",
    "linkstate_table_updates", "linkstate_oscillation_windows", "linkstate_sessions", "linkstate_bytes",
    "linkstate_messages", "linkstate_decode_failures", "linkstate_auth_failures",
    "linkstate_exchange_duration_seconds", "linkstate_connections_open",
}  # fmt: skip


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def get(transport: MemoryTransport, host: str, port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """One HTTP exchange over the in-memory transport: (status, headers, body)."""
    stream = await transport.connect(host, port)
    await stream.send_all(request)
    data = b""
    while chunk := await stream.receive_some(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def samples(text: str) -> dict[str, list[Sample]]:
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def value(families: dict[str, list[Sample]], family: str, sample: str | None = None, **labels: str) -> float:
    found = [s.value for s in families[family] if s.name == (sample or family) and labels.items() <= s.labels.items()]
    assert len(found) == 1, (family, labels, families[family])
    return found[0]


Group = tuple[dict[str, NodeService], dict[str, trio.CancelScope]]


@asynccontextmanager
async def group(transport: MemoryTransport) -> AsyncIterator[Group]:
    """RED-1 (master), RED-2, RED-3, each serving its metrics at metrics:9100+n."""
    services: dict[str, NodeService] = {}
    scopes: dict[str, trio.CancelScope] = {}
    async with trio.open_nursery() as nursery:
        for n, name in enumerate(SERVERS):
            svc = NodeService(one_group(), name, transport=transport, metrics=MetricsAddress("metrics", 9100 + n))
            scopes[name] = trio.CancelScope()
            services[name] = await nursery.start(_run, svc, scopes[name])
        yield services, scopes
        nursery.cancel_scope.cancel()


async def _run(
    svc: NodeService, scope: trio.CancelScope, *, task_status: trio.TaskStatus[NodeService] = trio.TASK_STATUS_IGNORED
) -> None:
    with scope:
        await svc.run(task_status=task_status)


async def test_a_group_s_master_reports_two_attached_members(mock_clock: trio.testing.MockClock) -> None:
    transport = MemoryTransport()
    async with group(transport) as (services, scopes):
        with trio.fail_after(60):
            while not all(s.core is not None and s.core.view().attached for s in services.values()):
                await trio.sleep(0.1)
        assert services["RED-1"].metrics_url == "http://metrics:9100/metrics"
        status, headers, body = await get(transport, "metrics", 9100, b"GET /metrics HTTP/1.1\r\nHost: m\r\n\r\n")
        assert status == 200 and headers["Content-Type"].startswith("text/plain; version=")
        m = samples(body.decode())
        assert set(m) == FAMILIES
        master = services["RED-1"].core
        assert master is not None
        assert value(m, "linkstate_attached_members") == 2
        assert value(m, "linkstate_quorum") == 1 and value(m, "linkstate_group_servers") == 3
        info = m["linkstate_node_info"][0].labels
        assert info == {"server": "RED-1", "routing_group": "Redmond", "role": "master", "master": "RED-1"}
        assert m["linkstate_table_digest_info"][0].labels == {"digest": master.lsdb.digest}
        version = master.view().version
        assert version is not None
        assert value(m, "linkstate_table_version", routing_group="Redmond", part="major") == version.major
        assert value(m, "linkstate_connector_state", connector="Internet", state="UP") == 1
        assert value(m, "linkstate_connector_state", connector="Internet", state="DOWN") == 0
        assert value(m, "linkstate_table_updates", "linkstate_table_updates_total", kind="major") >= 1
        assert value(m, "linkstate_connections_open", protocol="691") == 2
        assert value(m, "linkstate_connections_open", protocol="smtp") == 0
        assert value(m, "linkstate_sessions", "linkstate_sessions_total", protocol="691", result="authenticated") >= 2
        assert value(m, "linkstate_bytes", "linkstate_bytes_total", protocol="691", direction="in") > 0
        assert value(m, "linkstate_messages", "linkstate_messages_total", protocol="691", direction="out") > 0
        assert value(m, "linkstate_auth_failures", "linkstate_auth_failures_total", protocol="691") == 0

        # the member: attached to its master; /health 200 everywhere
        m2 = samples((await get(transport, "metrics", 9101, b"GET /metrics HTTP/1.0\r\n\r\n"))[2].decode())
        assert value(m2, "linkstate_attached") == 1 and value(m2, "linkstate_attached_members") == 0
        for port in (9100, 9101, 9102):
            status, _, body = await get(transport, "metrics", port, b"GET /health HTTP/1.1\r\n\r\n")
            assert status == 200 and body.startswith(b"ok: "), body
        status, _, body = await get(transport, "metrics", 9100, b"GET /health HTTP/1.1\r\n\r\n")
        assert body == b"ok: master of Redmond with quorum: 2 of 2 members attached\n"

        # the master goes: a member is not serving any more, and says why
        scopes["RED-1"].cancel()
        with trio.fail_after(60):
            while (await get(transport, "metrics", 9101, b"GET /health HTTP/1.1\r\n\r\n"))[0] != 503:
                await trio.sleep(0.1)
        _, _, body = await get(transport, "metrics", 9101, b"GET /health HTTP/1.1\r\n\r\n")
        assert body == b"unavailable: member of Redmond: not attached to its master RED-1\n"


async def test_bridgeheads_count_their_exchanges_and_a_master_its_windows(mock_clock: trio.testing.MockClock) -> None:
    """The seed's four groups in memory: SEA-BH1's X-LINK2STATE sessions, bytes, lines and exchange durations;
    every connector's state; a connector flapping inside one window: one window opened, one suppressed."""
    topo = parse_topology(SEATTLE.read_text(), str(SEATTLE))
    transport = MemoryTransport()
    async with trio.open_nursery() as nursery:
        services = []
        for n, spec in enumerate(topo.servers):
            svc = NodeService(topo, spec.name, transport=transport, metrics=MetricsAddress("metrics", 9200 + n))
            services.append(await nursery.start(svc.run))
        with trio.fail_after(600):
            while len({s.core.lsdb.digest for s in services}) > 1 or not all(s.core.view().attached for s in services):
                await trio.sleep(1)
        sea = topo.servers.index(topo.server("SEA-BH1"))
        m = samples((await get(transport, "metrics", 9200 + sea, b"GET /metrics HTTP/1.1\r\n\r\n"))[2].decode())
        assert value(m, "linkstate_sessions", "linkstate_sessions_total", protocol="smtp", result="exchanged") >= 1
        duration = "linkstate_exchange_duration_seconds"
        assert value(m, duration, f"{duration}_count", result="exchanged") >= 1
        for direction in ("in", "out"):
            assert value(m, "linkstate_bytes", "linkstate_bytes_total", protocol="smtp", direction=direction) > 0
            assert value(m, "linkstate_messages", "linkstate_messages_total", protocol="smtp", direction=direction) > 0
        ups = {s.labels["connector"] for s in m["linkstate_connector_state"] if s.labels["state"] == "UP" and s.value}
        assert ups == {c.name for c in topo.connectors}

        connector = topo.connector("Seattle-London").guid
        for _ in range(2):  # down and up twice inside one 600 s window
            services[sea].post(ev.FaultInjected(connector, BridgeheadState.CONN_NOT_AVAILABLE))
            await trio.sleep(60)
            services[sea].post(ev.FaultInjected(connector, None))
            await trio.sleep(60)
        await trio.sleep(600)
        m = samples((await get(transport, "metrics", 9200 + sea, b"GET /metrics HTTP/1.1\r\n\r\n"))[2].decode())
        windows = "linkstate_oscillation_windows"
        assert value(m, windows, f"{windows}_total", outcome="opened") == 1
        assert value(m, windows, f"{windows}_total", outcome="suppressed") == 1
        assert value(m, "linkstate_connector_state", connector="Seattle-London", state="UP") == 1
        nursery.cancel_scope.cancel()


def test_health_says_why() -> None:
    assert health(None, 3) == health(None, 3)
    assert not health(None, 3).serving and "starting" in health(None, 3).reason


async def test_a_master_without_quorum_is_unhealthy(mock_clock: trio.testing.MockClock) -> None:
    transport = MemoryTransport()
    svc = NodeService(one_group(), "RED-1", transport=transport, metrics=MetricsAddress("metrics", 9100))
    async with trio.open_nursery() as nursery:
        await nursery.start(svc.run)
        status, _, body = await get(transport, "metrics", 9100, b"GET /health HTTP/1.1\r\n\r\n")
        assert (status, body) == (503, b"unavailable: master of Redmond without quorum: 0 of 2 members attached\n")
        nursery.cancel_scope.cancel()


# --- the HTTP endpoint against hostile clients ---------------------------------------------------------------


def endpoint(**kwargs: object) -> tuple[HttpEndpoint, list[str]]:
    errors: list[str] = []

    def boom() -> Response:
        raise RuntimeError("broken")

    routes = {"/ok": lambda: Response(200, b"fine\n"), "/boom": boom}
    return HttpEndpoint(routes, on_error=lambda path, exc: errors.append(f"{path}: {exc}"), **kwargs), errors  # type: ignore[arg-type]


async def exchange(ep: HttpEndpoint, request: bytes) -> bytes:
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ep.handle, server)
        try:
            await client.send_all(request)
        except trio.BrokenResourceError:
            pass  # closed unanswered
        data = b""
        while chunk := await client.receive_some(65536):
            data += chunk
    return data


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n", b"200 OK"),
        (b"GET /ok?x=1 HTTP/1.0\n\n", b"200 OK"),
        (b"GET http://127.0.1.1:20691/ok HTTP/1.1\r\n\r\n", b"200 OK"),
        (b"GET HTTP://node/ok?x HTTP/1.1\r\n\r\n", b"200 OK"),
        (b"GET http://node HTTP/1.1\r\n\r\n", b"404 Not Found"),
        (b"GET /nope HTTP/1.1\r\n\r\n", b"404 Not Found"),
        (b"POST /ok HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", b"405 Method Not Allowed"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", b"400 Bad Request"),
        (b"GET /ok\r\n\r\n", b"400 Bad Request"),
        (b"GET /boom HTTP/1.1\r\n\r\n", b"500 Internal Server Error"),
        (b"GET /ok HTTP/1.1\r\nX: " + b"a" * MAX_HEAD + b"\r\n\r\n", b"431 Request Header Fields Too Large"),
    ],
)
async def test_http_answers_one_request_and_closes(
    mock_clock: trio.testing.MockClock, request_bytes: bytes, status: bytes
) -> None:
    ep, errors = endpoint()
    data = await exchange(ep, request_bytes)
    assert data.startswith(b"HTTP/1.1 " + status + b"\r\n"), data[:80]
    assert b"\r\nConnection: close\r\n" in data and ep.clients == 0
    assert errors == (["/boom: broken"] if b"boom" in request_bytes else [])


async def test_head_has_no_body(mock_clock: trio.testing.MockClock) -> None:
    ep, _ = endpoint()
    data = await exchange(ep, b"HEAD /ok HTTP/1.1\r\n\r\n")
    assert data.endswith(b"Content-Length: 5\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n")


async def test_slow_and_silent_clients_cannot_hold_the_endpoint(mock_clock: trio.testing.MockClock) -> None:
    """A client that never finishes its head gets 408 after the read timeout; when every place is taken by such
    clients, a newcomer takes the oldest one's place (closed unanswered) and is answered at once, so a handful
    of idle connections cannot shut a scraper or a health check out."""
    ep, _ = endpoint(max_clients=2, read_timeout=5.0)
    silent = []
    async with trio.open_nursery() as nursery:
        for _ in range(2):
            client, server = trio.testing.memory_stream_pair()
            nursery.start_soon(ep.handle, server)
            await client.send_all(b"GET /ok HTTP/1.1\r\nHost")
            silent.append(client)
            await trio.sleep(1)
        assert ep.clients == 2
        started = trio.current_time()
        assert (await exchange(ep, b"GET /ok HTTP/1.1\r\n\r\n")).endswith(b"\r\n\r\nfine\n")
        assert trio.current_time() - started < 1 and (ep.evicted, ep.refused) == (1, 0)
        assert await silent[0].receive_some(1000) == b""  # the oldest: closed unanswered
        answer = await silent[1].receive_some(1000)
        assert answer.startswith(b"HTTP/1.1 408 ") and trio.current_time() - started < 5
    assert ep.clients == 0
    assert (await exchange(ep, b"GET /ok HTTP/1.1\r\n\r\n")).endswith(b"\r\n\r\nfine\n")


async def test_a_newcomer_is_refused_only_while_every_place_is_being_answered(
    mock_clock: trio.testing.MockClock,
) -> None:
    big = Response(200, b"x" * 1_000_000)
    ep = HttpEndpoint({"/big": lambda: big}, max_clients=2, write_timeout=3.0)
    async with trio.open_nursery() as nursery:
        for _ in range(2):  # whole requests, answers never read: both places are being answered
            client, server = trio.testing.lockstep_stream_pair()
            nursery.start_soon(ep.handle, server)
            await client.send_all(b"GET /big HTTP/1.1\r\n\r\n")
        await trio.sleep(1)
        assert await exchange(ep, b"GET /big HTTP/1.1\r\n\r\n") == b"" and (ep.refused, ep.evicted) == (1, 0)
        await trio.sleep(3)  # their write timeout
        assert ep.clients == 0


async def test_a_client_that_does_not_read_is_dropped(mock_clock: trio.testing.MockClock) -> None:
    big = Response(200, b"x" * 1_000_000)
    ep = HttpEndpoint({"/big": lambda: big}, write_timeout=3.0)
    client, server = trio.testing.lockstep_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ep.handle, server)
        await client.send_all(b"GET /big HTTP/1.1\r\n\r\n")
        await trio.sleep(10)
        assert ep.clients == 0  # gave up writing after 3 s and closed


# --- tallies of the core's outputs ---------------------------------------------------------------------------


class _NoNode:
    core = None
    topology = one_group()


def test_events_become_counts() -> None:
    m = NodeMetrics(_NoNode())
    m.on_input(ev.PeerConnected(1, inbound=True, proto=ev.Proto.SMTP))
    m.on_input(ev.DataReceived(1, b"EHLO x\r\nX-LINK2STATE MORE\r\n"))
    m.on_input(ev.DataReceived(99, b"unknown connection\r\n"))
    diag = [
        ev.Diagnostic(Ev.AUTH_FAILED, "warning", {"protocol": "691", "cause": "decode"}),
        ev.Diagnostic(Ev.CLIENT_AUTH_FAILED, "warning", {"protocol": "smtp", "cause": "auth"}),
        ev.Diagnostic(Ev.LINK2STATE_REJECTED, "warning", {"conn": 1, "reason": "x", "fatal": False}),
        ev.Diagnostic(Ev.BRIDGEHEAD_SESSION_DONE, "debug", {"exchanged": True, "duration_s": 0.03}),
        ev.Diagnostic(Ev.BRIDGEHEAD_SESSION_DONE, "debug", {"exchanged": False, "duration_s": 0.002}),
        ev.Diagnostic(Ev.OSCILLATION_WINDOW_OPENED, "info", {}),
        ev.Diagnostic(Ev.OSCILLATION_SUPPRESSED, "warning", {}),
    ]
    m.on_outputs([ev.Send(1, b"250 OK\r\n"), *diag])
    m.on_input(ev.PeerLost(1))
    s = samples(m._metrics_page().body.decode())
    assert value(s, "linkstate_bytes", "linkstate_bytes_total", protocol="smtp", direction="in") == 27
    assert value(s, "linkstate_messages", "linkstate_messages_total", protocol="smtp", direction="in") == 2
    assert value(s, "linkstate_messages", "linkstate_messages_total", protocol="smtp", direction="out") == 1
    assert value(s, "linkstate_auth_failures", "linkstate_auth_failures_total", protocol="691") == 1
    assert value(s, "linkstate_auth_failures", "linkstate_auth_failures_total", protocol="smtp") == 1
    assert value(s, "linkstate_decode_failures", "linkstate_decode_failures_total", protocol="691") == 1
    assert value(s, "linkstate_decode_failures", "linkstate_decode_failures_total", protocol="smtp") == 1
    assert value(s, "linkstate_sessions", "linkstate_sessions_total", protocol="smtp", result="exchanged") == 1
    assert value(s, "linkstate_sessions", "linkstate_sessions_total", protocol="smtp", result="in_sync") == 1
    duration = "linkstate_exchange_duration_seconds"
    assert value(s, duration, f"{duration}_bucket", result="exchanged", le="0.025") == 0
    assert value(s, duration, f"{duration}_bucket", result="exchanged", le="0.05") == 1
    assert value(s, duration, f"{duration}_count", result="in_sync") == 1
    assert value(s, "linkstate_oscillation_windows", "linkstate_oscillation_windows_total", outcome="opened") == 1
    assert value(s, "linkstate_oscillation_windows", "linkstate_oscillation_windows_total", outcome="suppressed") == 1
    assert value(s, "linkstate_connections_open", protocol="smtp") == 0
    assert s["linkstate_node_info"] == [] and s["linkstate_attached"] == []  # nothing to say before the core runs


# --- the metrics port -----------------------------------------------------------------------------------------


def test_the_default_metrics_port_never_meets_a_cluster_dev_port() -> None:
    assert default_metrics_port(691) == 20691 and default_metrics_port(6910) == 26910
    assert default_metrics_port(60000) == 40000 and default_metrics_port(45535) == 65535
    servers = 4385  # past this the dev ports 2525+n and 6910+n meet each other
    dev = {p for n in range(servers) for p in (2525 + n, 6910 + n)}
    assert len(dev) == 2 * servers
    assert not {default_metrics_port(p) for p in [691, *range(6910, 6910 + servers)]} & dev


def _server_with(line: str) -> Topology:
    first = 'address = "127.0.9.1"\n'
    return parse_topology(ONE_GROUP.format(cost=1).replace(first, f"{first}{line}\n"), "t.toml")


def test_metrics_port_in_the_topology() -> None:
    assert _server_with("metrics_port = 9100").server("RED-1").metrics() == 9100
    assert _server_with("port_691 = 7000").server("RED-1").metrics() == 27000
    assert one_group().server("RED-2").metrics() == 20691
    with pytest.raises(TopologyError, match="metrics port 691 is also this server's port_691"):
        _server_with("metrics_port = 691")
    with pytest.raises(TopologyError, match="metrics_port"):
        _server_with("metrics_port = 70000")
