"""The Wireshark dissector (contrib/wireshark/linkstate.lua) on traffic captured from a real small organization.

Two routing groups on loopback TCP (A: master A1 and member A2; B: master B1), with a recording relay in front of
every 691 and SMTP port (tests/contrib/capture.py), run until they converge, poll, probe each other over
X-LINK2STATE (chunks of 200 bytes, so packets go as FIRST/NEXT/LAST) and serve operator tools (DUMP, STATE FAULT,
a refused INJECT). Then a hostile SMTP client sends the MS05-021 shapes, and one forged 691 frame carries a wrong
digest. The capture is written as a pcap and dissected by `tshark -X lua_script:…`; the test asserts the
dissected fields against what the services hold.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from linkstate.core import auth
from linkstate.core.topology import Topology, parse_topology
from linkstate.service.client import ClientError, command, dump
from linkstate.service.node import NodeService
from proto import rg691
from tests.contrib.capture import Flow, Recorder, write_pcap
from tests.service.node_cli_helpers import free_ports

pytestmark = pytest.mark.tcp

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "contrib" / "wireshark" / "linkstate.lua"
SERVERS = ("A1", "A2", "B1")
HOST = "127.0.0.1"


def tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("tshark is missing in CI: .ci/run installs it (apt-get install tshark)")
        pytest.skip("tshark is not installed (apt-get install tshark)")
    return path


def organization(wire: dict[str, tuple[int, int]]) -> Topology:
    """Two groups; `wire` gives each server's (691, SMTP) ports as peers dial them (the relays)."""
    lines = ["[organization]", 'name = "Cap"', 'domain = "example.com"', f'secret = "{"s" * 24}"', "",
             "[settings]", "time_scale = 60", "poll_interval = 60", "bh_probe_interval = 60",
             "chunk_raw_bytes = 200", ""]  # fmt: skip
    for group, master in (("A", "A1"), ("B", "B1")):
        lines += ["[[routing_groups]]", f'name = "{group}"', f'master = "{master}"', ""]
    for name in SERVERS:
        p691, psmtp = wire[name]
        lines += ["[[servers]]", f'name = "{name}"', f'routing_group = "{name[0]}"', f'address = "{HOST}"',
                  f"port_691 = {p691}", f"port_smtp = {psmtp}", ""]  # fmt: skip
    for src, dst, bh, remote in (("A", "B", "A2", "B1"), ("B", "A", "B1", "A1")):
        lines += ["[[connectors]]", f'name = "{src}-{dst}"', 'type = "routing_group"', f'routing_group = "{src}"',
                  f'connected_routing_group = "{dst}"', "cost = 10", f'source_bridgeheads = ["{bh}"]',
                  f'remote_bridgeheads = ["{remote}"]', ""]  # fmt: skip
    return parse_topology("\n".join(lines), "cap.toml")


@asynccontextmanager
async def running(topo: Topology, real: dict[str, tuple[int, int]], rec: Recorder) -> AsyncIterator[
    dict[str, NodeService]
]:  # fmt: skip
    services: dict[str, NodeService] = {}
    async with trio.open_nursery() as nursery:
        for s in topo.servers:
            assert s.port_691 is not None and s.port_smtp is not None
            await nursery.start(rec.proxy, (HOST, s.port_691), (HOST, real[s.name][0]))
            await nursery.start(rec.proxy, (HOST, s.port_smtp), (HOST, real[s.name][1]))
        for name in SERVERS:
            svc = NodeService(topo, name, port=real[name][0], smtp_port=real[name][1])
            services[name] = await nursery.start(svc.run)
        yield services
        nursery.cancel_scope.cancel()


def converged(services: dict[str, NodeService]) -> bool:
    views = [s.core.view() for s in services.values() if s.core is not None]
    return (
        len(views) == len(services)
        and len({v.digest for v in views}) == 1
        and all(v.attached for v in views if not v.is_master)
        and all(v.published for v in views if v.is_master)
    )


async def wait_for(predicate: Any, timeout: float) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.05)


def seen(rec: Recorder, data: bytes) -> bool:
    return any(data in chunk for flow in rec.flows for _, _, chunk in flow.chunks)


async def hostile_smtp(topo: Topology, port: int) -> None:
    """Authenticate with X-EXPS (unauthenticated X-LINK2STATE is refused at once), then send the MS05-021
    shapes; the server refuses each, and the dissector flags each."""
    stream = await trio.open_tcp_stream(HOST, port)
    async with stream:
        buf = b""

        async def reply(prefix: bytes) -> bytes:
            nonlocal buf
            with trio.fail_after(5):
                while True:
                    for line in buf.split(b"\r\n")[:-1]:
                        if line[: len(prefix)] == prefix and line[3:4] == b" ":
                            buf = buf[buf.index(line) + len(line) + 2 :]
                            return line
                    buf += await stream.receive_some(65536)

        await reply(b"220")
        await stream.send_all(b"EHLO attacker.example.com\r\n")
        await reply(b"250")
        guid, nonce = secrets.token_hex(16), secrets.token_hex(16)
        await stream.send_all(f"X-EXPS LINKSTATE-HMAC-SHA256 {guid} {nonce}\r\n".encode())
        _, server_guid, server_nonce, _ = (await reply(b"334")).decode().split()
        proof = auth.proof(topo.secret, auth.INITIATOR, nonce, server_nonce, guid, server_guid)
        await stream.send_all(proof.encode() + b"\r\n")
        await reply(b"235")
        shapes = [
            b"X-LINK2STATE CHUNK=" + b"A" * 600,  # the exploit: an unmarked chunk over 520 bytes, no FIRST
            b"X-LINK2STATE LAST CHUNK=" + b"B" * 50,  # continues nothing, no whole frame
            b"X-LINK2STATE FIRST CHUNK={ffffffff} ORGINFO ",  # declared length over the frame limit
            b"X-LINK2STATE FIRST CHUNK=" + b"C" * 1100,  # a line over 1,024 bytes
        ]
        for shape in shapes:
            await stream.send_all(shape + b"\r\n")
            await reply(b"5")  # refused (before the opening every shape gets a 5xx)
        await stream.send_all(b"QUIT\r\n")
        await reply(b"221")


def forged_flow(frame: bytes, port: int) -> Flow:
    """A 691 connection whose ORGINFO frame carries a digest that does not match its table."""
    tampered = frame.replace(frame[20:28], b"00000000", 1)
    t = time.time()
    return Flow((HOST, 40000), (HOST, port), t, [(t, False, b"691 Available forged linkstate\r\n"),
                                                 (t, False, tampered)], t)  # fmt: skip


def fields(packets: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Every field value of the dissection, by field name (nested trees and repeated fields flattened)."""
    out: dict[str, list[str]] = defaultdict(list)

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for v in node:
                walk(v, key)
        else:
            out[key].append(str(node))

    for p in packets:
        walk(p["_source"]["layers"])
    return out


async def test_tshark_dissects_a_captured_organization(tmp_path: Path) -> None:
    binary = tshark()
    ports = free_ports(12)
    wire = {name: (ports[2 * i], ports[2 * i + 1]) for i, name in enumerate(SERVERS)}
    real = {name: (ports[6 + 2 * i], ports[7 + 2 * i]) for i, name in enumerate(SERVERS)}
    topo = organization(wire)
    rec = Recorder()
    a2, b1 = topo.server("A2"), topo.server("B1")
    a_to_b = topo.connector("A-B")
    async with running(topo, real, rec) as services:
        await wait_for(lambda: converged(services), 20)
        # then a Simple_Poll answered SAME (every 1 s) and a bridgehead probe that ends in DONE_RESPONSE (every 1 s)
        await wait_for(lambda: seen(rec, b" POLL_RESPONSE SAME ") and seen(rec, b" X-LINK2STATE DONE_RESPONSE"), 20)
        view, decoded = await dump(HOST, wire["A2"][0], topo.secret)
        assert view.role == "member"
        await command(HOST, wire["A2"][0], topo.secret, rg691.StateReport("FAULT", a_to_b.guid, "", "CLEAR"))
        with pytest.raises(ClientError, match="refused"):  # the tool runs on A2's address: refused with DETACH
            await command(HOST, wire["A2"][0], topo.secret, rg691.Inject(topo.routing_group("B").guid))
        await hostile_smtp(topo, wire["B1"][1])
        master = services["A1"].core
        assert master is not None
        versions = {rg.guid: str(rg.version) for rg in master.lsdb.snapshot().routing_groups}
        digest, frame = master.lsdb.digest, master.lsdb.frame()
    assert decoded.digest == digest
    pcap = tmp_path / "linkstate.pcap"
    write_pcap(pcap, [*rec.flows, forged_flow(frame, 6999)])

    decode_as = [f"-d tcp.port=={p},linkstate" for p, _ in wire.values()]
    decode_as += [f"-d tcp.port=={s},xlink2state" for _, s in wire.values()] + ["-d tcp.port==6999,linkstate"]
    cmd = [binary, "-n", "-X", f"lua_script:{SCRIPT}", "-r", str(pcap), "-T", "json", "--no-duplicate-keys",
           "-Y", "linkstate or xlink2state", *" ".join(decode_as).split()]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "Lua" not in res.stderr, res.stderr
    f = fields(json.loads(res.stdout))

    # TCP 691: the banner and every verb the organization and the tools exchanged
    assert any(b.startswith("691 Available A1.example.com linkstate Routing Engine") for b in f["linkstate.banner"])
    assert set(f["linkstate.verb"]) >= {"AUTH", "ATTACH", "ATTACH_ACK", "Simple_Poll", "POLL_RESPONSE", "REPLY",
                                        "ACK", "STATE", "DETACH", "INJECT", "DUMP"}  # fmt: skip
    assert set(f["linkstate.sub"]) >= {"HELLO", "CHALLENGE", "PROOF", "OK", "SAME", "VIEW", "FAULT"}
    assert a2.guid in f["linkstate.member"] and a2.guid in f["linkstate.node"]
    assert set(f["linkstate.auth.kind"]) >= {"MEMBER", "CLIENT"}
    assert any("cannot inject on the server the tool runs on" in r for r in f["linkstate.reason"])

    # the OrgInfo payload: both groups at the versions the services hold, connectors, bridgeheads, digests
    assert set(f["orginfo.rg.guid"]) == {rg.guid for rg in topo.routing_groups}
    assert set(versions.values()) <= set(f["orginfo.rg.version"])
    assert digest in f["orginfo.digest"] and digest in f["orginfo.digest_computed"]
    assert {c.guid for c in topo.connectors} <= set(f["orginfo.connector.guid"])
    assert set(f["orginfo.connector.state"]) <= {"UP", "DOWN"} and "UP" in f["orginfo.connector.state"]
    assert b1.vs_guid in f["orginfo.connector.bh.guid"] and "CONN_AVAIL" in f["orginfo.connector.bh.state"]
    assert set(f["orginfo.member.guid"]) >= {s.guid for s in topo.servers}
    assert f["orginfo.digest_ok"].count("0") == 1, "only the forged frame fails the digest check"
    assert f["orginfo.digest_ok"].count("1") >= 3  # pushes, the DUMP answer, reassembled packets

    # X-LINK2STATE: the opening digest, chunks, MORE, DONE_RESPONSE, reassembled packets
    assert set(f["xlink2state.chunk.kind"]) >= {"FIRST", "NEXT", "LAST"}
    assert "1" in f["xlink2state.more"] and "1" in f["xlink2state.done_response"]
    assert digest in f["xlink2state.digest"]
    if topo.settings.delta:  # an extended session opens with its digest as DELTA=<digest> (docs/PROTOCOL.md §3.11)
        assert any(len(v) == 32 and int(v, 16) >= 0 for v in f["xlink2state.extension.value"])
    else:  # the seed's opening: a digest-only frame
        assert "1" in f["xlink2state.opening"]
    assert "1" in f["xlink2state.packet.complete"] and max(map(int, f["xlink2state.packet.chunks"])) >= 3

    # the negotiated extensions (docs/PROTOCOL.md §2.5, §3.11), when the organization runs them (the default)
    if topo.settings.delta:
        assert set(f["xlink2state.extension"]) >= {"WINDOW", "DELTA", "TREE", "LIST"}
        assert "DELTA" in f["linkstate.capability"] and "DELTA" in f["linkstate.verb"]
        assert f["linkstate.delta.target"] and all(len(t) == 32 for t in f["linkstate.delta.target"])
    else:
        assert not f["xlink2state.extension"] and not f["linkstate.capability"]

    # expert info: the MS05-021 shapes and the forged digest
    messages = f["_ws.expert.message"]
    for expected in (
        "unmarked CHUNK= with no FIRST CHUNK before it (600 bytes: over the 520 of the published exploit)",
        "malformed {len8} header",
        "LAST CHUNK continues no FIRST CHUNK and is no whole frame",
        "declared length 4294967295 is over the frame limit of 16777216 bytes",
        "line of 1127 bytes",
    ):
        assert any(expected in m for m in messages), (expected, messages)
    assert any(m.startswith("computed ") for m in messages)
