"""Fuzzing a running node over TCP: `linkstate fuzz node HOST[:PORT] --topology FILE`.

Owns: `Plan` (where the node listens, the secret, the GUIDs of the directory, bounds), `allowed_target`
(loopback only unless the user names the host with --i-own-this-target), `make_batch` (grammar-aware sequences:
691 frames before authentication; 691 frames after authenticating as MEMBER, CLIENT or BRIDGEHEAD with the
file's secret — templates carrying the directory's GUIDs, the node's own table mutated by the OrgInfo mutator,
byte-mutated frames; SMTP lines before authentication; a whole authenticated X-LINK2STATE exchange that
delivers a mutated table), `run` (batches until the time or batch budget is spent: after each one the node must
still answer DUMP and its table may have changed only by valid updates; the first failure stops the run and
the batch is written to a file), and `replay_batch` (send a written batch again).
"Valid updates": the table still decodes strictly, no section disappeared, no version went backwards, and a
section that changed is either one a sent frame carried (decoded strictly) or belongs to a routing group of
the directory (whose masters legitimately republish).
Invariants: only loopback (127.0.0.0/8, ::1) unless allowed by name; every connection and the whole run are
bounded in time; the node's own replies are read but never trusted to be well formed; connections are opened
at most at half the node's `connection_rate` (its per-address bound, docs/SECURITY.md), so they reach its
parsers instead of its rate limit, and a DUMP the node refuses is asked again (`DUMP_ATTEMPTS`, `DUMP_RETRY`)
before it counts as a failure — the run's own traffic, or a `cluster up` polling from the same address, must
not read as a node that stopped answering.
May import: the standard library, trio, proto.*, linkstate.core.*, linkstate.service.*, linkstate.fuzz.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import ipaddress
import json
import math
import random
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import trio

from linkstate.core.link2state_client import SmtpClientSession
from linkstate.core.session691 import Authenticated, Fault, PeerKind, Session691
from linkstate.core.topology import Topology
from linkstate.fuzz import mutate
from linkstate.service.client import ClientError, DumpResult, dump_frame
from proto import link2state as l2s
from proto import rg691
from proto.decode import Decoded, decode_strict
from proto.errors import DecodeError, EncodeError
from proto.model import OrgInfo

CONNECT_TIMEOUT = 3.0
EXCHANGE_TIMEOUT = 5.0
READ_SIZE = 65536
DUMP_ATTEMPTS = 5  # a DUMP after a batch, before "the node no longer answers DUMP"
DUMP_RETRY = 1.0  # seconds between them
PACE_SHARE = 0.5  # of the node's connection_rate this run uses


class LiveError(Exception):
    """The run cannot start (refused target, unreachable node); one line."""


@dataclass(frozen=True)
class Plan:
    host: str
    port: int
    smtp_port: int | None
    secret: bytes
    topology: Topology
    batches: int = 20
    batch_size: int = 8
    seconds: float = 60.0
    seed: int = 0
    findings: Path = Path(".fuzz/findings")


@dataclass
class Step:
    """One connection of a batch: which port and phase, and the bytes sent (after authentication, if any)."""

    channel: str  # 691-pre | 691-auth | smtp-pre | smtp-auth
    kind: str = ""  # the 691 peer kind claimed after authentication
    guid: str = ""
    payload: bytes = b""

    def to_json(self) -> dict[str, str]:
        return {"channel": self.channel, "kind": self.kind, "guid": self.guid,
                "payload": base64.b64encode(self.payload).decode()}  # fmt: skip

    @staticmethod
    def from_json(obj: dict[str, str]) -> Step:
        return Step(obj["channel"], obj.get("kind", ""), obj.get("guid", ""), base64.b64decode(obj["payload"]))


@dataclass
class Report:
    batches: int = 0
    connections: int = 0
    bytes_sent: int = 0
    failure: str = ""
    written: Path | None = None
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ target


def allowed_target(host: str, owned: tuple[str, ...]) -> str:
    """The address to connect to; LiveError unless it is loopback or `host` is named in `owned`."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise LiveError(f"cannot resolve {host}: {exc.strerror or exc}") from None
    addresses = sorted({str(info[4][0]) for info in infos})
    if host in owned:
        return addresses[0]
    for addr in addresses:
        if not ipaddress.ip_address(addr.split("%")[0]).is_loopback:
            raise LiveError(
                f"{host} ({addr}) is not a loopback address: fuzzing it could harm a node that is not yours; "
                f"if you own it, add --i-own-this-target {host}"
            )
    return addresses[0]


# ------------------------------------------------------------------------------------------------ batches


def _guids(topo: Topology) -> tuple[str, ...]:
    return (*(g.guid for g in topo.routing_groups), *(s.guid for s in topo.servers), *(c.guid for c in topo.connectors))


def _templates(topo: Topology, rng: random.Random) -> rg691.Message:
    """A template message with its GUIDs replaced by the directory's (so the node finds them meaningful)."""
    msg = rng.choice(mutate.TEMPLATES_691)
    pool = _guids(topo)
    changes = {f: rng.choice(pool) for f in ("guid", "member", "routing_group", "master", "subject", "item",
                                             "node") if hasattr(msg, f) and rng.random() < 0.8}  # fmt: skip
    return cast(rg691.Message, dataclasses.replace(cast(Any, msg), **changes))


def _frames(plan: Plan, table: bytes, rng: random.Random, count: int) -> bytes:
    out = []
    for _ in range(count):
        pick = rng.random()
        if pick < 0.4:
            frame = mutate.orginfo_mutate(table, 1 << 20, rng) or table
        elif pick < 0.8:
            try:
                frame = rg691.encode_message(_templates(plan.topology, rng))
            except EncodeError:
                continue
        else:
            frame = mutate.byte_mutate(rg691.encode_message(rng.choice(mutate.TEMPLATES_691)), 4096, rng)
        out.append(frame)
    return b"".join(out)


def make_batch(plan: Plan, table: bytes, rng: random.Random) -> list[Step]:
    steps = []
    for _ in range(plan.batch_size):
        channel = rng.choice(("691-pre", "691-auth", "691-auth", "smtp-pre", "smtp-auth"))
        if channel.startswith("smtp") and plan.smtp_port is None:
            channel = "691-auth"
        if channel == "691-pre":
            hello = rg691.encode_message(_templates(plan.topology, rng))
            steps.append(Step(channel, payload=mutate.byte_mutate(hello, 4096, rng) + _frames(plan, table, rng, 2)))
        elif channel == "691-auth":
            kind = rng.choice(("MEMBER", "CLIENT", "BRIDGEHEAD"))
            guid = rng.choice([s.guid for s in plan.topology.servers] + [f"{rng.getrandbits(128):032x}"])
            payload = _frames(plan, table, rng, rng.randint(1, 6))
            attach = _attach(plan) if kind == "MEMBER" and rng.random() < 0.75 else None
            if attach is not None:  # a master hears a member's polls, packets and reports only once it attached
                guid, payload = attach[0], attach[1] + payload
            steps.append(Step(channel, kind, guid, payload))
        elif channel == "smtp-pre":
            lines = rng.choice((b"EHLO fuzz\r\n", b"X-LINK2STATE LAST CHUNK=" + table[:900] + b"\r\n", b"HELO x\r\n"))
            steps.append(Step(channel, payload=mutate.byte_mutate(lines, 2048, rng) + b"QUIT\r\n"))
        else:
            frame = _travelling_table(table, rng)
            steps.append(Step(channel, "BRIDGEHEAD", rng.choice([s.guid for s in plan.topology.servers]), frame))
    return steps


def _attach(plan: Plan) -> tuple[str, bytes] | None:
    """A valid ATTACH to the target in the name of another server of its group (GUID, frame); None when the target
    is not a server of the directory at this port or has no other server in its group."""
    topo = plan.topology
    at_port = [s for s in topo.servers if (s.port_691 or 691) == plan.port]
    target = next((s for s in at_port if s.address == plan.host), at_port[0] if len(at_port) == 1 else None)
    if target is None:
        return None
    group = topo.routing_group(target.routing_group)
    member = next((s for s in topo.servers_in(group.name) if s.name != target.name), None)
    if member is None:
        return None
    attach = rg691.Attach(member.guid, group.guid, target.guid, "0" * 32, 0, 0, 0, "f" * 32)
    return member.guid, rg691.encode_message(attach)


def _travelling_table(table: bytes, rng: random.Random, tries: int = 4) -> bytes:
    """A mutated table X-LINK2STATE can carry: chunks are lines, so a frame holding CR, LF or NUL (which the
    OrgInfo mutator writes on purpose) has no wire form there; after `tries` such mutations, the table itself."""
    for _ in range(tries):
        frame = mutate.orginfo_mutate(table, 1 << 20, rng) or table
        if _can_travel(frame):
            return frame
    return table


def _can_travel(frame: bytes) -> bool:
    try:
        l2s.Chunker(frame)
    except EncodeError:
        return False
    return True


# ------------------------------------------------------------------------------------------------ sending


async def _connect(host: str, port: int) -> trio.SocketStream:
    with trio.fail_after(CONNECT_TIMEOUT):
        return await trio.open_tcp_stream(host, port)


async def _drain(stream: trio.SocketStream, seconds: float) -> bytes:
    got = b""
    with trio.move_on_after(seconds):
        while chunk := await stream.receive_some(READ_SIZE):
            got += chunk
    return got


async def _send_pre(host: str, port: int, payload: bytes) -> None:
    stream = await _connect(host, port)
    async with stream:
        await stream.send_all(payload)
        await _drain(stream, 0.3)


async def _send_691_auth(plan: Plan, step: Step) -> None:
    session = Session691(initiator=True, local_guid=step.guid, secret=plan.secret, nonce=_nonces(step),
                         kind=PeerKind(step.kind))  # fmt: skip
    stream = await _connect(plan.host, plan.port)
    async with stream:
        with trio.move_on_after(EXCHANGE_TIMEOUT):
            while True:
                data = await stream.receive_some(READ_SIZE)
                if not data:
                    return
                results = session.receive(data)
                if any(isinstance(r, Fault) for r in results):
                    return
                out = session.take_pending()
                if any(isinstance(r, Authenticated) for r in results):
                    await stream.send_all(out + step.payload)
                    break
                if out:
                    await stream.send_all(out)
            await _drain(stream, 0.3)


async def _send_smtp_auth(plan: Plan, step: Step) -> None:
    assert plan.smtp_port is not None
    frame = step.payload
    if not _can_travel(frame):  # a batch written before _travelling_table: nothing to send
        return
    try:
        digest = l2s.frame_digest(frame)
    except l2s.Link2StateError:
        digest = "0" * 32  # a broken header: the node gets the frame anyway, after the digests differ
    try:
        client = SmtpClientSession(step.guid, plan.secret, "fuzz.example", lambda: (digest, frame),
                                      _nonces(step)(), chunk_raw_bytes=700)  # fmt: skip
    except ValueError:
        return
    stream = await _connect(plan.host, plan.smtp_port)
    async with stream:
        with trio.move_on_after(EXCHANGE_TIMEOUT):
            while not client.closed:
                data = await stream.receive_some(READ_SIZE)
                client.receive_data(data)
                out = client.data_to_send()
                if out:
                    await stream.send_all(out)
                if not data:
                    break


def _nonces(step: Step) -> Callable[[], str]:
    rng = random.Random(step.payload)
    return lambda: f"{rng.getrandbits(128):032x}"


async def send_step(plan: Plan, step: Step) -> None:
    """One connection; the node closing it or refusing it is an answer, not a failure."""
    try:
        if step.channel == "691-pre":
            await _send_pre(plan.host, plan.port, step.payload)
        elif step.channel == "691-auth":
            await _send_691_auth(plan, step)
        elif step.channel == "smtp-pre" and plan.smtp_port is not None:
            await _send_pre(plan.host, plan.smtp_port, step.payload)
        elif plan.smtp_port is not None:
            await _send_smtp_auth(plan, step)
    except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError):
        pass


# ------------------------------------------------------------------------------------------------ checking


def sent_sections(steps: list[Step]) -> set[object]:
    """Every routing-group section carried by a strictly decodable ORGINFO frame of the batch."""
    found: set[object] = set()
    for step in steps:
        _, frames, _ = mutate.split_691(step.payload)
        for frame in frames if step.channel != "smtp-auth" else [step.payload]:
            try:
                found.update(decode_strict(frame).orginfo.routing_groups)
            except DecodeError:
                continue
    return found


def table_problem(before: OrgInfo, after: Decoded, sent: set[object], directory: set[str]) -> str:
    """Why `after` is not `before` changed only by valid updates ("" when it is)."""
    if after.computed_digest != after.digest:
        return f"the node's table carries digest {after.digest} but hashes to {after.computed_digest}"
    new = {g.guid: g for g in after.orginfo.routing_groups}
    for old in before.routing_groups:
        now = new.get(old.guid)
        if now is None:
            return f"routing group {old.guid} disappeared from the node's table"
        if now.version < old.version:
            return f"routing group {old.guid} went back from version {old.version} to {now.version}"
    old_by_guid = {g.guid: g for g in before.routing_groups}
    for guid, group in new.items():
        if old_by_guid.get(guid) == group or group in sent or guid in directory:
            continue
        return f"routing group {guid} changed to a section nothing valid carried"
    return ""


async def run(plan: Plan, echo: Callable[[str], None]) -> Report:
    rng = random.Random(plan.seed)
    report = Report()
    directory = {g.guid for g in plan.topology.routing_groups}
    try:
        baseline = await dump_frame(plan.host, plan.port, plan.secret, timeout=EXCHANGE_TIMEOUT)
    except ClientError as exc:
        raise LiveError(f"the node does not answer DUMP before fuzzing: {exc.reason}") from None
    echo(f"node {plan.host}:{plan.port} answers DUMP: {len(baseline.decoded.orginfo.routing_groups)} sections, "
         f"digest {baseline.decoded.digest}")  # fmt: skip
    started = time.monotonic()
    before = baseline
    pace = _pacer(plan)
    while report.batches < plan.batches and time.monotonic() - started < plan.seconds:
        steps = make_batch(plan, before.frame.raw, rng)
        for step in steps:
            await pace()
            await send_step(plan, step)
            report.connections += 1
            report.bytes_sent += len(step.payload)
        report.batches += 1
        problem, after = await _check(plan, before.decoded.orginfo, steps, directory)
        if problem:
            report.failure = problem
            report.written = write_batch(plan, steps, problem)
            return report
        assert after is not None
        before = after
        echo(f"  batch {report.batches}: {len(steps)} connections, node answers DUMP, table valid "
             f"({len(after.decoded.orginfo.routing_groups)} sections)")  # fmt: skip
    return report


def _pacer(plan: Plan) -> Callable[[], Awaitable[None]]:
    """Waits until the next connection may open: at most PACE_SHARE of the node's connection_rate."""
    interval = 1 / (plan.topology.settings.connection_rate * PACE_SHARE)
    last = -math.inf

    async def pace() -> None:
        nonlocal last
        await trio.sleep_until(last + interval)
        last = trio.current_time()

    return pace


async def _check(
    plan: Plan, before: OrgInfo, steps: list[Step], directory: set[str]
) -> tuple[str, DumpResult | None]:
    after: DumpResult | None = None
    reason = ""
    for attempt in range(DUMP_ATTEMPTS):
        if attempt:
            await trio.sleep(DUMP_RETRY)
        try:
            after = await dump_frame(plan.host, plan.port, plan.secret, timeout=EXCHANGE_TIMEOUT)
            break
        except ClientError as exc:
            reason = exc.reason
    if after is None:
        return f"the node no longer answers DUMP ({DUMP_ATTEMPTS} attempts): {reason}", None
    return table_problem(before, after.decoded, sent_sections(steps), directory), after


def write_batch(plan: Plan, steps: list[Step], problem: str) -> Path:
    plan.findings.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"problem": problem, "steps": [s.to_json() for s in steps]}, indent=1)
    path = plan.findings / f"node-batch-{hashlib.sha1(body.encode(), usedforsecurity=False).hexdigest()[:16]}.json"
    path.write_text(body + "\n", encoding="utf-8")
    return path


def read_batch(path: Path) -> list[Step]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
        return [Step.from_json(s) for s in obj["steps"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LiveError(f"cannot read the batch {path}: {exc}") from None


async def replay_batch(plan: Plan, steps: list[Step]) -> str:
    """Send a written batch again; the problem it causes now ("" when the node stays well)."""
    before = await dump_frame(plan.host, plan.port, plan.secret, timeout=EXCHANGE_TIMEOUT)
    pace = _pacer(plan)
    for step in steps:
        await pace()
        await send_step(plan, step)
    problem, _ = await _check(plan, before.decoded.orginfo, steps, {g.guid for g in plan.topology.routing_groups})
    return problem
