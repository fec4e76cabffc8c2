"""Attack benchmark: the hostile-peer attacks of issue 11 against a local cluster, with honest peers measured during
each, and whether the organization held.

Owns: the organization under attack (an example topology, by default the seed's four groups, moved to its own
loopback net 127.77.x.y so it never meets another cluster, run by linkstate.cli.cluster exactly as `linkstate
cluster up` runs it), the attacks (ATTACKS: SMTP pipelining and slowloris without credentials; version overflow,
table bloat, DUMP flood, a CR/LF string and a connection flood), the honest peers (DUMPs and X-LINK2STATE sessions
against the attacked node, from their own address, all through the project's client code), and the verdict per
attack: honest success rates during the attack, peak RSS of every node (sampled from /proc), node exits, one digest
across the organization and unchanged routes after it, and the events the nodes logged about it.

Usage (see bench/README.md, section "Attacks"):
  python bench/attack.py run                          # every attack, timers / 10, 20 s each
  python bench/attack.py run --attacks slowloris,dump-flood --duration 30
  python bench/attack.py run --time-scale 1           # production timers (slowloris then lasts 90 s)

Held = honest DUMPs and bridgehead sessions >= 95 % successful during the attack, no node above 150 MB RSS, no node
exit, one digest and the baseline routes after it (within the settle time), and for the forged-data attacks the
events that show the data was refused or bounded. The exit code is 0 when every attack held, 1 otherwise.
Invariants: loopback only (the cluster's addresses are checked, attackers and honest peers bind 127.77.250.x);
every attack is bounded in time and in connections; every node process is stopped on success, failure and Ctrl-C.
May import: anything (a bench script).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import trio  # noqa: E402

from linkstate.bench.convergence.report import machine  # noqa: E402
from linkstate.cli.cluster import Cluster, NodeRecord, alive  # noqa: E402
from linkstate.cli.route_cmd import describe  # noqa: E402
from linkstate.core.routing import Router, RoutingError  # noqa: E402
from linkstate.core.session691 import PeerKind  # noqa: E402
from linkstate.core.topology import Topology, TopologyError  # noqa: E402
from linkstate.service.client import ClientError, dump  # noqa: E402
from linkstate.service.peer import PeerError, bridgehead_exchange, flood, open_691  # noqa: E402
from linkstate.service.topofile import load_topology  # noqa: E402
from proto import rg691  # noqa: E402
from proto.codec import Decoded  # noqa: E402
from proto.encode import encode, frame_from_sections  # noqa: E402
from proto.model import VERSION_MAX, Member, OrgInfo, RoutingGroup, Version  # noqa: E402

NET = "127.77"  # the organization's loopback net (the example's 127.0.x.y moved here)
ATTACKER = f"{NET}.250.1"
HONEST = f"{NET}.251.1"
RSS_LIMIT_MB = 150.0
SUCCESS_MIN = 0.95
SAMPLE_S = 0.25
DEFINITION = (
    "held = honest DUMPs and X-LINK2STATE sessions against the attacked node >= 95 % successful during the attack; "
    "no node above 150 MB RSS (sampled every 0.25 s from /proc during the attack and the settle time); no node "
    "exit; one digest on every node and the routes of the start (every server to every other group) within the "
    "settle time after it; forged data refused or bounded, with the node's events saying so"
)


# ============================================================================================ the organization


def bench_topology(example: Path, dest: Path) -> Path:
    """The example moved to its own loopback net (127.0.x.y -> 127.77.x.y), written to `dest`."""
    text = example.read_text()
    moved = re.sub(r'address\s*=\s*"127\.\d+\.(\d+)\.(\d+)"', rf'address = "{NET}.\1.\2"', text)
    if moved == text:
        raise SystemExit(f"{example}: no 127.x.y.z server address to move to {NET}.x.y")
    dest.write_text(moved)
    return dest


@dataclass
class Org:
    """The running organization: its topology, its nodes, where their logs are."""

    cluster: Cluster
    topo: Topology
    records: dict[str, NodeRecord]
    time_scale: float

    def rec(self, name: str) -> NodeRecord:
        return self.records[name]

    def pids(self) -> dict[str, int | None]:
        state = self.cluster.state()
        assert state is not None
        return {n: r.pid for n, r in state.servers.items()}

    async def dump(self, name: str, timeout: float = 5.0, local_address: str | None = HONEST) -> Decoded:
        rec = self.rec(name)
        _, decoded = await dump(rec.host, rec.port, self.topo.secret, timeout=timeout, local_address=local_address)
        return decoded

    async def tables(self) -> dict[str, Decoded | None]:
        out: dict[str, Decoded | None] = {}

        async def one(name: str) -> None:
            try:
                out[name] = await self.dump(name, 3.0)
            except ClientError:
                out[name] = None

        async with trio.open_nursery() as nursery:
            for name in self.records:
                nursery.start_soon(one, name)
        return out

    def routes(self, table: OrgInfo) -> dict[str, str]:
        """Every server's route to every other group, as `linkstate route` prints it."""
        router = Router(self.topo)
        out = {}
        for s in self.topo.servers:
            for g in self.topo.routing_groups:
                if g.name == s.routing_group:
                    continue
                try:
                    out[f"{s.name}->{g.name}"] = describe(router.route(table, s.name, to_group=g.name))
                except RoutingError as exc:
                    out[f"{s.name}->{g.name}"] = f"error: {exc}"
        return out


def start(example: Path, time_scale: float, workdir: Path) -> Org:
    path = bench_topology(example, workdir / example.name)
    cluster = Cluster(path, run_dir=workdir / "run")
    state = cluster.prepare(load_topology(path), time_scale)
    for name in state.servers:
        cluster.spawn(name)
    return attach(path, workdir / "run", time_scale)


def attach(path: Path, run_dir: Path, time_scale: float) -> Org:
    """The organization a run directory describes (the attacker process finds its targets this way)."""
    cluster = Cluster(path, run_dir=run_dir)
    state = cluster.require_state()
    return Org(cluster, cluster.topology(state), dict(state.servers), time_scale)


async def converged(org: Org, baseline: dict[str, str] | None, timeout: float) -> tuple[bool, bool, str]:
    """Wait until every node answers with one digest (and, with `baseline`, its routes); (one digest?, routes?, d)."""
    deadline = trio.current_time() + timeout
    one = same = False
    digest = ""
    while trio.current_time() < deadline:
        tables = await org.tables()
        digests = {t.digest for t in tables.values() if t is not None}
        one = None not in tables.values() and len(digests) == 1
        if one:
            digest = digests.pop()
            first = next(t for t in tables.values() if t is not None)
            same = baseline is None or org.routes(first.orginfo) == baseline
            if same:
                return True, True, digest
        await trio.sleep(0.5)
    return one, same, digest


# ============================================================================================ measuring


@dataclass
class Probe:
    """Honest peers against one node for as long as it runs: a DUMP, then an X-LINK2STATE session with the table
    the DUMP returned (digests equal: DONE_RESPONSE), from HONEST."""

    org: Org
    target: str
    dumps_ok: int = 0
    dumps: int = 0
    bh_ok: int = 0
    bh: int = 0
    failures: Counter[str] = field(default_factory=Counter)

    async def run(self) -> None:
        rec = self.org.rec(self.target)
        spec = self.org.topo.server(self.target)
        table: tuple[str, bytes] | None = None
        while True:  # an attempt counts once it has ended (one the end of the attack cut short does not)
            try:
                decoded = await self.org.dump(self.target, 5.0)
                self.dumps_ok += 1
                table = (decoded.digest, encode(decoded.orginfo, digest=decoded.digest))
            except ClientError as exc:
                self.failures[f"dump: {exc.kind}"] += 1
            self.dumps += 1
            if table is not None:
                try:
                    await bridgehead_exchange(rec.host, rec.port_smtp, self.org.topo.secret, peer_guid=spec.guid,
                                              table=table, local_address=HONEST, timeout=5.0)  # fmt: skip
                    self.bh_ok += 1
                except (PeerError, OSError, trio.BrokenResourceError) as exc:
                    self.failures[f"bridgehead: {str(exc)[:60]}"] += 1
                self.bh += 1
            await trio.sleep(0.2)


@dataclass
class Rss:
    """Peak RSS per node process, sampled from /proc."""

    pids: dict[str, int | None]
    peak: dict[str, float] = field(default_factory=dict)

    async def run(self) -> None:
        while True:
            for name, pid in self.pids.items():
                mb = _rss_mb(pid)
                if mb is not None:
                    self.peak[name] = max(self.peak.get(name, 0.0), mb)
            await trio.sleep(SAMPLE_S)


def _rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def log_offsets(org: Org) -> dict[str, int]:
    return {n: _size(r.log) for n, r in org.records.items()}


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def events_since(org: Org, offsets: dict[str, int], specs: tuple[str, ...]) -> Counter[str]:
    """How many log lines of every node after `offsets` match each spec: `event`, or `event:text` (the event's
    line also holds `text`, e.g. its reason)."""
    wanted = [(spec, *spec.partition(":")[::2]) for spec in specs]
    out: Counter[str] = Counter({spec: 0 for spec in specs})
    for name, rec in org.records.items():
        try:
            with open(rec.log, encoding="utf-8", errors="replace") as f:
                f.seek(offsets.get(name, 0))
                for line in f:
                    try:
                        event = json.loads(line).get("event")
                    except ValueError:
                        continue
                    for spec, ev_name, text in wanted:
                        if event == ev_name and text in line:
                            out[spec] += 1
        except OSError:
            continue
    return out


# ============================================================================================ the attacks


@dataclass
class Ctx:
    org: Org
    target: str
    duration: float
    notes: list[str] = field(default_factory=list)
    minimum: dict[str, int] = field(default_factory=dict)  # evidence spec -> count it must reach (default 1)

    @property
    def rec(self) -> NodeRecord:
        return self.org.rec(self.target)


async def _connect(host: str, port: int, address: str = ATTACKER) -> trio.SocketStream | None:
    try:
        return await trio.open_tcp_stream(host, port, local_address=address)
    except OSError:
        return None


def attacker_address(i: int) -> str:
    """The i-th of the addresses a distributed attacker uses (ATTACKER is the first)."""
    return f"{NET}.250.{1 + i % 250}"


async def smtp_pipelining(ctx: Ctx) -> None:
    """20 connections writing pipelined `EHLO a` for the whole attack, never reading a reply (no credentials); each
    one the node ends comes back."""

    async def dial() -> trio.abc.Stream:
        return await trio.open_tcp_stream(ctx.rec.host, ctx.rec.port_smtp, local_address=ATTACKER)

    written, ended = await flood(dial, b"EHLO a\r\n" * 4096, connections=20, seconds=ctx.duration)
    ctx.notes.append(f"20 connections at a time wrote {written / 2**20:.0f} MiB of EHLO into their sockets; the node "
                     f"ended {ended} connections")  # fmt: skip


async def _slowloris(ctx: Ctx, addresses: int) -> None:
    """300 connections per protocol from `addresses` source addresses, one byte every 20 s (scaled), never
    authenticating; a connection the node closes is opened again a second later."""
    every = 20.0 / ctx.org.time_scale
    opened = [0]

    async def one(port: int, address: str) -> None:
        while True:
            stream = await _connect(ctx.rec.host, port, address)
            if stream is not None:
                opened[0] += 1
                async with stream:
                    try:
                        while True:
                            await stream.send_all(b"{")
                            with trio.move_on_after(every):
                                while await stream.receive_some(4096):
                                    pass
                                break  # closed by the node
                    except (trio.BrokenResourceError, OSError):
                        pass
            await trio.sleep(1.0)

    with trio.move_on_after(ctx.duration):
        async with trio.open_nursery() as nursery:
            for port in (ctx.rec.port, ctx.rec.port_smtp):
                for i in range(300):
                    nursery.start_soon(one, port, attacker_address(i % addresses))
                    await trio.sleep(0.001)
    ctx.notes.append(f"{opened[0]} connections opened from {addresses} address(es), 600 at a time, one byte every "
                     f"{every:g} s")  # fmt: skip


async def slowloris(ctx: Ctx) -> None:
    """The issue's slowloris: 300 connections per protocol from one address."""
    await _slowloris(ctx, 1)


async def slowloris_distributed(ctx: Ctx) -> None:
    """The same from 60 addresses (10 connections per protocol each: under every per-address bound)."""
    await _slowloris(ctx, 60)


async def dump_flood(ctx: Ctx) -> None:
    """With the secret: 100,000 pipelined DUMPs per connection, never read; a new connection when one ends."""
    frame = rg691.encode_message(rg691.Dump()) * 1000
    connections = [0]
    with trio.move_on_after(ctx.duration):
        while True:
            try:
                peer = await open_691(ctx.rec.host, ctx.rec.port, ctx.org.topo.secret, kind=PeerKind.CLIENT,
                                      local_address=ATTACKER)  # fmt: skip
            except PeerError:  # over the per-address connection rate: try again, as an attacker would
                await trio.sleep(0.01)
                continue
            connections[0] += 1
            try:
                for _ in range(100):
                    await peer.send(frame)
                await trio.sleep(1)
            except (trio.BrokenResourceError, OSError):
                pass
            finally:
                await peer.aclose()
    ctx.notes.append(f"{connections[0]} connections of up to 100,000 DUMPs")


async def _member(ctx: Ctx) -> Any:
    """With the secret: a peer authenticated in the name of a member of the target's group, ATTACHed to the target
    (a master takes packets, polls and state reports only from attached members; the real member's attachment is
    replaced until it reconnects). Raises PeerError when the target refuses the connection."""
    topo = ctx.org.topo
    group = topo.group_of(ctx.target)
    target = topo.server(ctx.target)
    member = next(s for s in topo.servers_in(group.name) if s.name != ctx.target)
    peer = await open_691(ctx.rec.host, ctx.rec.port, topo.secret, guid=member.guid, local_address=ATTACKER)
    await peer.send(rg691.encode_message(rg691.Attach(member.guid, group.guid, target.guid, "0" * 32, 0, 0, 0,
                                                      "f" * 32)))  # fmt: skip
    with trio.move_on_after(2):
        while not any(isinstance(a, rg691.AttachAck) for a in await peer.receive(0.5)):
            pass
    return peer


async def _push(ctx: Ctx, org: OrgInfo | bytes, *, expect_ack: bool = True) -> str:
    """With the secret: a peer ATTACHed in a member's name sends one ORGINFO frame; what came back."""
    try:
        peer = await _member(ctx)
    except PeerError:
        return "connection refused"
    try:
        await peer.send(org if isinstance(org, bytes) else encode(org))
        for _ in range(20):
            for answer in await peer.receive(0.5):
                if isinstance(answer, rg691.Ack):
                    return "ACK"
        return "no answer"
    except (PeerError, trio.BrokenResourceError, OSError) as exc:
        return f"closed ({str(exc)[:40]})"
    finally:
        await peer.aclose()


async def version_overflow(ctx: Ctx) -> None:
    """With the secret: another group's section and the target's own, both at ffffffffffffffff.0.0, pushed to a master
    (the issue's crash: that group's master published above 2**64-1); again every second."""
    table = (await ctx.org.dump(ctx.target)).orginfo
    own = ctx.org.topo.group_of(ctx.target).guid
    other = next((rg for rg in table.routing_groups if rg.guid != own), None)  # none in a one-group organization
    forged = OrgInfo(tuple(replace(rg, version=Version(VERSION_MAX), version_guid="f" * 32) for rg in
                           (other, table.group(own)) if rg is not None))  # fmt: skip
    answers: Counter[str] = Counter()
    with trio.move_on_after(ctx.duration):
        while True:
            answers[await _push(ctx, forged)] += 1
            await trio.sleep(1)
    ctx.notes.append(f"pushes answered: {dict(answers)}")


def _fake(i: int) -> RoutingGroup:
    guid = f"{0x7A000000 + i:032x}"
    return RoutingGroup(guid=guid, master=guid, version=Version(1), smtp_address=f"*.bloat{i}", members=(Member(guid),))


async def table_bloat(ctx: Ctx) -> None:
    """With the secret: 10,000 sections of groups no directory knows, then two pushes of 55,000 (the issue's)."""
    results = [await _push(ctx, _bulk_frame(0, 10_000))]
    for base in (10_000, 65_000):
        frame = _bulk_frame(base, 55_000)
        results.append(await _push(ctx, frame))
    size = len(_bulk_frame(0, 55_000)) / 2**20
    ctx.notes.append(f"10,000 sections: {results[0]}; 55,000 twice ({size:.1f} MiB each): {results[1]}, {results[2]}")
    await trio.sleep(min(5.0, ctx.duration / 2))  # the bounded subset spreads to every node
    tables = await ctx.org.tables()
    held = sorted({len(t.orginfo.routing_groups) for t in tables.values() if t is not None})
    settings = ctx.org.topo.settings
    ctx.notes.append(f"sections held per node: {held} (directory {len(ctx.org.topo.routing_groups)} + "
                     f"max_unknown_sections {settings.max_unknown_sections})")  # fmt: skip
    await trio.sleep(max(0.0, ctx.duration - 10))


def _bulk_frame(base: int, count: int) -> bytes:
    """An ORGINFO frame of `count` fake sections, encoded once each (no model objects kept)."""
    from proto.encode import encode_section

    return frame_from_sections([encode_section(_fake(base + i)) for i in range(count)])


async def crlf_string(ctx: Ctx) -> None:
    """With the secret: `STATE SERVICE <server> {2}\\r\\n` to a master (the issue's encode crash), then a good
    report that makes it commit; repeated."""
    member = next(s for s in ctx.org.topo.servers_in(ctx.org.topo.group_of(ctx.target).name) if s.name != ctx.target)
    results: Counter[str] = Counter()
    with trio.move_on_after(ctx.duration):
        i = 0
        while True:
            i += 1
            for value in (b"\r\n", b"07010000000001%02x" % (i % 2)):
                try:
                    peer = await _member(ctx)
                except PeerError:
                    results["connection refused"] += 1
                    continue
                try:
                    await peer.send(rg691.frame("STATE", b"SERVICE " + member.guid.encode() + b" {%x}" % len(value)
                                                + value))  # fmt: skip
                    with trio.move_on_after(1):  # what the attachment brought (a push), then the close or nothing
                        while True:
                            await peer.receive(0.5)
                    results["kept open" if value != b"\r\n" else "hostile kept open!"] += 1
                except (PeerError, trio.BrokenResourceError, OSError):
                    results["closed by the node"] += 1
                finally:
                    await peer.aclose()
            await trio.sleep(1)
    ctx.notes.append(f"reports: {dict(results)}")


async def connection_flood(ctx: Ctx) -> None:
    """5,000 connections opened and closed as fast as possible (half 691, half SMTP), each writing a few bytes."""
    done: Counter[int] = Counter()
    admitted: Counter[int] = Counter()

    async def one(port: int, address: str) -> None:
        stream = await _connect(ctx.rec.host, port, address)
        if stream is None:
            return
        done[port] += 1
        async with stream:
            try:
                await stream.send_all(b"EHLO a\r\n" if port == ctx.rec.port_smtp else b"{0000")
                with trio.move_on_after(2):
                    if await stream.receive_some(4096):  # the banner or greeting: the node admitted it
                        admitted[port] += 1
            except (trio.BrokenResourceError, OSError):
                pass

    with trio.move_on_after(ctx.duration):
        async with trio.open_nursery() as nursery:
            for i in range(5_000):
                nursery.start_soon(one, ctx.rec.port if i % 2 else ctx.rec.port_smtp, attacker_address(i % 100))
                if i % 50 == 49:
                    await trio.sleep(0.01)
        await trio.sleep(2)  # the last closes reach the node
    # each admitted 691 connection closed unauthenticated is one 961 event: the core was told of every close
    ctx.minimum[CLOSED_UNAUTHENTICATED] = admitted[ctx.rec.port]
    ctx.notes.append(f"{sum(done.values())} connections from 100 addresses opened and closed; admitted (banner "
                     f"seen): {admitted[ctx.rec.port]} on 691, {admitted[ctx.rec.port_smtp]} on SMTP")  # fmt: skip


@dataclass(frozen=True)
class Attack:
    name: str
    credentials: bool
    target: str  # a server name of the seed example (SEA-BH1: Seattle's master and bridgehead; LON-BH1: London's)
    run: Callable[[Ctx], Awaitable[None]]
    evidence: tuple[str, ...] = ()  # events that must appear on some node (the forged data refused or bounded)
    forbidden: tuple[str, ...] = ("encode_failed", "connection_error")


CLOSED_UNAUTHENTICATED = 'auth_failed:"cause": "closed"'
BLOAT_BOUNDED = "sections_refused:unknown routing group"
BLOAT_REFUSED = "session_failed:exceeds the"
ATTACKS = {
    a.name: a
    for a in (
        Attack("smtp-pipelining", False, "LON-BH1", smtp_pipelining, ("connection_dropped:before authenticating",)),
        Attack("slowloris", False, "LON-BH1", slowloris, ("connection_refused", "connection_evicted")),
        Attack("slowloris-distributed", False, "LON-BH1", slowloris_distributed, ("connection_evicted",)),
        Attack("version-overflow", True, "SEA-BH1", version_overflow, ("sections_refused:version jump",)),
        Attack("table-bloat", True, "SEA-BH1", table_bloat, (BLOAT_BOUNDED, BLOAT_REFUSED)),
        Attack("dump-flood", True, "LON-BH1", dump_flood, ("dump_rate_exceeded",)),
        Attack("crlf-string", True, "SEA-BH1", crlf_string, ("session_failed:CR, LF or NUL",)),
        Attack("connection-flood", False, "LON-BH1", connection_flood, (CLOSED_UNAUTHENTICATED,)),
    )
}


# ============================================================================================ running


@dataclass
class Result:
    attack: str
    credentials: bool
    target: str
    duration_s: float
    honest_dumps: str
    honest_dump_rate: float
    bridgehead_sessions: str
    bridgehead_rate: float
    rss_peak_mb: dict[str, float]
    exits: list[str]
    one_digest: bool
    routes_unchanged: bool
    evidence: dict[str, int]
    forbidden: dict[str, int]
    own_bridgehead_failures: int
    notes: list[str]
    failures: dict[str, int]
    held: bool = False

    def judge(self, attack: Attack, minimum: dict[str, int]) -> None:
        self.held = (
            self.honest_dump_rate >= SUCCESS_MIN
            and self.bridgehead_rate >= SUCCESS_MIN
            and max(self.rss_peak_mb.values(), default=0.0) <= RSS_LIMIT_MB
            and not self.exits
            and self.one_digest
            and self.routes_unchanged
            and all(self.evidence.get(e, 0) >= max(1, minimum.get(e, 1)) for e in attack.evidence)
            and not any(self.forbidden.values())
        )


async def run_attack(org: Org, attack: Attack, duration: float, baseline: dict[str, str], settle: float) -> Result:
    target = attack.target if attack.target in org.records else next(iter(org.records))
    if attack.name.startswith("slowloris"):  # a full authentication deadline and then some, whatever the scale
        duration = max(duration, 3 * org.topo.settings.attach_timeout / org.time_scale)  # (the file says scale 1)
    offsets = log_offsets(org)
    pids = org.pids()
    probe, rss = Probe(org, target), Rss(pids)
    started = time.monotonic()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(rss.run)
        nursery.start_soon(probe.run)
        ctx = await attacker(org, attack, target, duration)
        nursery.cancel_scope.cancel()
    elapsed = time.monotonic() - started
    async with trio.open_nursery() as nursery:  # memory keeps being watched while the organization settles
        nursery.start_soon(rss.run)
        one, same, _ = await converged(org, baseline, settle)
        nursery.cancel_scope.cancel()
    exits = [n for n, pid in pids.items() if not alive(pid, n)]
    for name in exits:  # bring it back for the next attack, after saying so
        org.cluster.spawn(name)
    counts = events_since(org, offsets, (*attack.evidence, *attack.forbidden, "bridgehead_session_failed"))
    result = Result(
        attack=attack.name,
        credentials=attack.credentials,
        target=target,
        duration_s=round(elapsed, 1),
        honest_dumps=f"{probe.dumps_ok}/{probe.dumps}",
        honest_dump_rate=_rate(probe.dumps_ok, probe.dumps),
        bridgehead_sessions=f"{probe.bh_ok}/{probe.bh}",
        bridgehead_rate=_rate(probe.bh_ok, probe.bh),
        rss_peak_mb={n: round(v, 1) for n, v in sorted(rss.peak.items())},
        exits=exits,
        one_digest=one,
        routes_unchanged=same,
        evidence={e: counts[e] for e in attack.evidence},
        forbidden={e: counts[e] for e in attack.forbidden},
        own_bridgehead_failures=counts["bridgehead_session_failed"],
        notes=ctx.notes,
        failures=dict(probe.failures.most_common(5)),
    )
    result.judge(attack, ctx.minimum)
    return result


async def attacker(org: Org, attack: Attack, target: str, duration: float) -> Ctx:
    """Run one attack in its own process (as an attacker on another host would: the honest peers measured here do
    not wait on its event loop); its notes and evidence minimums come back as JSON on its last output line."""
    argv = [sys.executable, __file__, "_attack", attack.name, "--topology", str(org.cluster.source), "--run-dir",
            str(org.cluster.run_dir), "--time-scale", repr(org.time_scale), "--target", target, "--duration",
            repr(duration)]  # fmt: skip
    ctx = Ctx(org, target, duration)
    with trio.move_on_after(duration + 60):  # the attacks bound themselves; this is a backstop
        done = await trio.run_process(argv, capture_stdout=True, check=False)
        lines = done.stdout.decode(errors="replace").strip().splitlines()
        try:
            report = json.loads(lines[-1]) if lines else {}
        except ValueError:
            report = {}
        ctx.notes = report.get("notes", [f"attacker exited {done.returncode} without a report"])
        ctx.minimum = report.get("minimum", {})
        return ctx
    ctx.notes.append("attacker stopped by the backstop")
    return ctx


def attacker_main(args: argparse.Namespace) -> int:
    """The attacker process: one attack against the running organization, then its report as one JSON line."""
    org = attach(Path(args.topology), Path(args.run_dir), args.time_scale)
    ctx = Ctx(org, args.target, args.duration)
    trio.run(ATTACKS[args.name].run, ctx)
    print(json.dumps({"notes": ctx.notes, "minimum": ctx.minimum}))
    return 0


def _rate(ok: int, total: int) -> float:
    return ok / total if total else 0.0


def table(results: list[Result]) -> str:
    cols = ["attack", "creds", "target", "honest DUMPs", "bridgehead sessions", "peak RSS MB (max node)",
            "exits", "one digest", "routes", "evidence", "held"]  # fmt: skip
    rows = [
        [
            r.attack,
            "yes" if r.credentials else "no",
            r.target,
            f"{r.honest_dumps} ({100 * r.honest_dump_rate:.0f} %)",
            f"{r.bridgehead_sessions} ({100 * r.bridgehead_rate:.0f} %)",
            _peak(r.rss_peak_mb),
            str(len(r.exits)),
            "yes" if r.one_digest else "NO",
            "same" if r.routes_unchanged else "CHANGED",
            ", ".join(f"{k} {v}" for k, v in r.evidence.items()) or "-",
            "HELD" if r.held else "BROKEN",
        ]
        for r in results
    ]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def _peak(peaks: dict[str, float]) -> str:
    if not peaks:
        return "-"
    name = max(peaks, key=lambda n: peaks[n])
    return f"{peaks[name]:.0f} ({name})"


async def run_all(org: Org, names: list[str], duration: float, settle: float) -> tuple[list[Result], dict[str, Any]]:
    one, _, digest = await converged(org, None, 60)
    if not one:
        raise SystemExit(f"the organization did not converge within 60 s (node logs: {org.cluster.run_dir})")
    first = await org.dump(next(iter(org.records)))
    baseline = org.routes(first.orginfo)
    start_rss = {n: round(_rss_mb(pid) or 0.0, 1) for n, pid in org.pids().items()}
    print(f"organization: {len(org.records)} servers, one digest {digest[:8]}, {len(baseline)} routes; "
          f"RSS at rest {min(start_rss.values()):.0f}-{max(start_rss.values()):.0f} MB", flush=True)  # fmt: skip
    results = []
    for name in names:
        attack = ATTACKS[name]
        print(f"-- {name} against {attack.target} ({'with' if attack.credentials else 'without'} the secret) ...",
              flush=True)  # fmt: skip
        result = await run_attack(org, attack, duration, baseline, settle)
        print(f"   {'HELD' if result.held else 'BROKEN'}: DUMPs {result.honest_dumps}, bridgehead sessions "
              f"{result.bridgehead_sessions}, peak RSS {_peak(result.rss_peak_mb)} MB, exits {len(result.exits)}, "
              f"one digest {result.one_digest}, routes unchanged {result.routes_unchanged}, evidence "
              f"{result.evidence}, {'; '.join(result.notes)}", flush=True)  # fmt: skip
        if result.failures:
            print(f"   honest failures: {result.failures}", flush=True)
        results.append(result)
    return results, {"rss_at_rest_mb": start_rss, "digest_at_start": digest, "routes": baseline}


def _attacker_parser() -> argparse.ArgumentParser:
    """`attack.py _attack NAME …`: the attacker's own process (started by `run`, not in --help)."""
    a = argparse.ArgumentParser(prog="attack _attack")
    a.add_argument("name", choices=sorted(ATTACKS))
    for opt in ("--topology", "--run-dir", "--target"):
        a.add_argument(opt, required=True)
    a.add_argument("--time-scale", type=float, required=True)
    a.add_argument("--duration", type=float, required=True)
    return a


def _check_run_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The attacks to run, or one usage error (exit 2) for an option the run could not work with."""
    names = [n.strip() for n in args.attacks.split(",") if n.strip()]
    unknown = [n for n in names if n not in ATTACKS]
    if unknown:
        p.error(f"unknown attack(s): {', '.join(unknown)} (choose from {', '.join(ATTACKS)})")
    if not 0.5 <= args.duration <= 600:
        p.error("--duration must be between 0.5 and 600 seconds")
    if not 0.5 <= args.settle <= 3600:
        p.error("--settle must be between 0.5 and 3600 seconds")
    if not 1 <= args.time_scale <= 1000:
        p.error("--time-scale must be between 1 (production timers) and 1000")
    try:
        load_topology(args.topology)
    except TopologyError as exc:
        p.error(f"--topology: {str(exc).splitlines()[0]}")
    return names


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_attack"]:
        return attacker_main(_attacker_parser().parse_args(argv[1:]))
    p = argparse.ArgumentParser(prog="attack", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True, metavar="{run}")
    r = sub.add_parser("run", help="run the attacks, print the table, write JSON")
    r.add_argument("--topology", default=str(ROOT / "examples" / "seattle.toml"),
                   help="the organization (its 127.x.y.z addresses are moved to 127.77.x.y)")  # fmt: skip
    r.add_argument("--attacks", default=",".join(ATTACKS), help=f"comma-separated, from: {', '.join(ATTACKS)}")
    r.add_argument("--duration", type=float, default=20.0, help="seconds per attack (slowloris: at least 3 "
                   "authentication deadlines)")  # fmt: skip
    r.add_argument("--settle", type=float, default=60.0, help="seconds to wait for one digest and the routes after")
    r.add_argument("--time-scale", type=float, default=10.0, help="timers divided by this (1: production timers)")
    r.add_argument("--out", default=str(ROOT / "bench" / "results"), help="directory for the JSON result")
    r.add_argument("--keep", action="store_true", help="keep the run directory (node logs)")
    args = p.parse_args(argv)
    names = _check_run_args(p, args)
    workdir = Path(tempfile.mkdtemp(prefix="linkstate-attack-"))
    org = start(Path(args.topology), args.time_scale, workdir)
    try:
        results, context = trio.run(run_all, org, names, args.duration, args.settle)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        org.cluster.stop_all()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"run directory kept: {workdir}")
    print()
    print(table(results))
    print(f"\ndefinition: {DEFINITION}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path = out / f"attack-{stamp}.json"
    doc = {
        "definition": DEFINITION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": ["attack.py", *argv],
        "machine": machine(),
        "time_scale": args.time_scale,
        "organization": args.topology,
        **context,
        "results": [asdict(r) for r in results],
    }
    path.write_text(json.dumps(doc, indent=1))
    print(f"results: {path}")
    return 0 if all(r.held for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
