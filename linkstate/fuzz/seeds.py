"""The committed seed corpora and dictionaries: how they are made (`python -m linkstate.fuzz.seeds`).

Owns: the seeds of each target, written to `fuzz/corpus/<target>/` under descriptive names, and the libFuzzer
dictionaries `fuzz/dicts/<target>.dict`:
  - orginfo: the seed's captured packet (tests/vectors/seed-sample-l8818.txt), every OrgInfo frame printed in
    docs/PROTOCOL.md, the packets of every example topology (all up, and each connector and server down), a
    digest-only frame and the empty table;
  - rg691: recorded 691 dialogues against the target's own sessions (their proofs are valid, because the
    fixture's nonces are deterministic), then every verb after authentication, for each session mode;
  - smtp: recorded SMTP transcripts against the target's own sessions (digests equal, a chunked exchange both
    ways, mail after authentication, errors before it), for each session mode;
  - topology: every example topology and a few files with problems.
Invariants: deterministic (the same files on every run); nothing here runs during a fuzz run.
May import: the standard library, proto.*, linkstate.core.*, linkstate.fuzz.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from linkstate.core.directory import build_orginfo
from linkstate.core.link2state_client import SmtpClientSession
from linkstate.core.link2state_server import SmtpServerSession
from linkstate.core.session691 import Session691
from linkstate.fuzz.targets import fixture
from linkstate.fuzz.targets import rg691 as t691
from linkstate.fuzz.targets import smtp as tsmtp
from linkstate.service.topofile import load_topology
from proto import rg691
from proto.decode import decode_strict
from proto.encode import encode, frame_from_sections
from proto.model import OrgInfo, Version

ROOT = Path(__file__).resolve().parent.parent.parent
Seeds = Iterator[tuple[str, bytes]]


def _examples() -> list[Path]:
    return sorted([*(ROOT / "examples").glob("*.toml")])


# ------------------------------------------------------------------------------------------------ orginfo


def orginfo_seeds() -> Seeds:
    yield "seed-sample-l8818", (ROOT / "tests/vectors/seed-sample-l8818.txt").read_bytes().strip()
    doc = (ROOT / "docs/PROTOCOL.md").read_text(encoding="utf-8")
    for i, m in enumerate(re.finditer(r"^(\{[0-9a-f]{8}\} ORGINFO [^\n]*)$", doc, re.M)):
        yield f"protocol-md-{i}", m.group(1).encode()
    for path in _examples():
        topo = load_topology(path)
        yield f"example-{path.stem}", encode(build_orginfo(topo))
        for name in [c.name for c in topo.connectors][:3] + [s.name for s in topo.servers][:2]:
            org = build_orginfo(topo, down=(name,))
            bumped = OrgInfo(tuple(dataclasses.replace(g, version=Version(1, 2, 3)) for g in org.routing_groups))
            yield f"example-{path.stem}-down-{name}", encode(bumped)
    yield "digest-only", frame_from_sections([], "0123456789abcdef0123456789abcdef")
    yield "empty", encode(OrgInfo())


def _table() -> bytes:
    topo = load_topology(ROOT / "examples/single-group.toml")
    return encode(build_orginfo(topo))


# ------------------------------------------------------------------------------------------------ rg691


def _after_auth_691(server_side: bool) -> list[bytes]:
    g1, g2, g3, d = fixture.LOCAL_GUID, fixture.PEER_GUID, "3d" * 16, decode_strict(_table()).digest
    common: list[rg691.Message] = [
        rg691.OrgInfoFrame(_table(), decode_strict(_table())),
        rg691.StateReport("BH", g3, g2, "CONN_NOT_AVAILABLE"),
        rg691.StateReport("SERVICE", g2, "", "0701000000000101"),
        rg691.Dump(),
        rg691.Detach("bye"),
    ]
    if server_side:  # what a responder (master) hears from a member
        return [rg691.encode_message(m) for m in (
            rg691.Attach(g2, g3, g1, d, 1, 0, 0, g3), rg691.SimplePoll(d), rg691.Reply(d, True), *common,
            rg691.Ack(d), rg691.Inject(g3), rg691.StateReport("FAULT", g3, "", "CLEAR"))]  # fmt: skip
    return [rg691.encode_message(m) for m in (
        rg691.AttachAck(True, d, 1, 2, True), rg691.PollResponse(False, d), *common,
        rg691.Dump(True, g2, g3, "master", g2, True, True, 1, 2), rg691.AttachAck(False, reason="no"))]  # fmt: skip


def _record_691(mode: int) -> bytes:
    """What the scripted peer sends to a fresh session of `mode` (0 responder, 1 initiator) to authenticate."""
    session = t691.new_session(mode)
    peer = Session691(initiator=mode == 0, local_guid=fixture.PEER_GUID, secret=fixture.SECRET,
                      nonce=fixture.counter_nonces(2))  # fmt: skip
    sent = b""
    for _ in range(4):
        out = peer.take_pending()
        sent += out
        session.receive(out)
        peer.receive(session.take_pending())
    return sent + peer.take_pending()


def rg691_seeds() -> Seeds:
    for mode, name in enumerate(t691.MODES):
        auth = _record_691(mode) if mode < 2 else b""
        frames = _after_auth_691(server_side=mode in (0, 2))
        for split in (0, 1, 5):
            yield f"{name}-split{split}", bytes([mode | split << 2]) + auth + b"".join(frames)
        yield f"{name}-auth-only", bytes([mode]) + auth
        for i, frame in enumerate(frames):
            yield f"{name}-frame{i}", bytes([mode]) + auth + frame
    doc = (ROOT / "docs/PROTOCOL.md").read_text(encoding="utf-8")
    frames_doc = re.findall(r"^[CS]: (\{[0-9a-f]{8}\} AUTH [^\n]*)$", doc, re.M)
    yield "protocol-md-auth", b"\x00" + "".join(frames_doc).encode()
    yield "protocol-md-banner", b"\x01" + rg691.banner("RED-1", "0.1.0") + "".join(frames_doc).encode()


# ------------------------------------------------------------------------------------------------ smtp


def _peer_frame() -> tuple[str, bytes]:
    table = _table()
    return decode_strict(table).digest, table


def _record_smtp(mode: int, peer_frame: bool) -> bytes:
    """What the scripted peer sends to a fresh session of `mode` (0 server, 2 client) in a whole dialogue."""
    session = tsmtp.new_session(mode)
    get_frame = _peer_frame if peer_frame else tsmtp._frame
    peer: SmtpServerSession | SmtpClientSession
    if mode == 0:
        peer = SmtpClientSession(fixture.PEER_GUID, fixture.SECRET, "peer.example", get_frame, fixture.nonce(2),
                                    chunk_raw_bytes=200)  # fmt: skip
        peer.receive_data(session.data_to_send())
    else:
        peer = SmtpServerSession(fixture.PEER_GUID, fixture.SECRET, "peer.example", get_frame, fixture.nonce(2),
                                    chunk_raw_bytes=200)  # fmt: skip
    sent = b""
    for _ in range(40):
        out = peer.data_to_send()
        if not out:
            break
        sent += out
        session.receive_data(out)
        peer.receive_data(session.data_to_send())
    return sent


def smtp_seeds() -> Seeds:
    for mode in (0, 2):
        name = tsmtp.MODES[mode]
        for peer_frame in (False, True):
            dialogue = _record_smtp(mode, peer_frame)
            label = "exchange" if peer_frame else "digests-equal"
            for split in (0, 1, 7):
                yield f"{name}-{label}-split{split}", bytes([mode | split << 2]) + dialogue
            if mode == 0:
                auth_end = dialogue.index(b"X-LINK2STATE")
                yield f"authenticated-server-{label}", b"\x01" + dialogue[auth_end:]
                mail = b"MAIL FROM:<a@b.example> SIZE=10\r\nRCPT TO:<c@d.example>\r\nDATA\r\n..x\r\nhi\r\n.\r\n"
                mail += b"QUIT\r\n"
                yield f"{name}-mail", b"\x00" + dialogue[:auth_end] + mail
                yield "authenticated-server-mail", b"\x01" + mail
            else:
                auth_end = dialogue.index(b"235 ")
                yield f"authenticated-client-{label}", b"\x03" + dialogue[dialogue.index(b"\n", auth_end) + 1 :]
    yield "server-before-auth", b"\x00EHLO a\r\nMAIL FROM:<>\r\nX-LINK2STATE MORE\r\nNOOP\r\nRSET\r\nBAD\r\nQUIT\r\n"
    yield "server-long-line", b"\x00EHLO a\r\n" + b"A" * 1100 + b"\r\nQUIT\r\n"
    yield "reply-multiline", b"\x02220 x\r\n250-x\r\n250-X-LINK2STATE\r\n250 X-EXPS LINKSTATE-HMAC-SHA256\r\n"


# ------------------------------------------------------------------------------------------------ topology


def topology_seeds() -> Seeds:
    for path in _examples():
        yield f"example-{path.stem}", path.read_bytes()
    yield "problems-few", (
        b'[organization]\nname = "O"\nsecret = "s"\n[[routing_groups]]\nname = "A"\nmaster = "nobody"\n'
        b'[[servers]]\nname = "a1"\nrouting_group = "B"\naddress = "10.0.0.1"\n'
        b'[[connectors]]\nname = "c"\ntype = "smtp"\nrouting_group = "A"\ncost = 500\n'
    )
    yield "invalid-toml", b'[organization\nname = "O"\n'


# ------------------------------------------------------------------------------------------------ dictionaries

DICTS: dict[str, tuple[str, ...]] = {
    "orginfo": (
        "ORGINFO", "CONFIG", "ARROWS", "BH", "TARGBH", "STATE", "UP", "DOWN", "YES", "NO", "CONN_AVAIL",
        "CONN_NOT_AVAILABLE", "CONN_NOT_STARTED", "VS_CONN_AVAIL", "{", "}", "{}", "( ", " )", "()", "  ", "ffffffff",
        "{00000000}", "0 ()", "1aae", "{10}0701000000000101", "SMTP", "X400", "RG", "*", "0" * 32,
    ),
    "rg691": (
        "691 Available ", "\r\n", "AUTH", "HELLO", "CHALLENGE", "PROOF", "OK", "FAIL", "MEMBER", "CLIENT", "BRIDGEHEAD",
        "ATTACH", "ATTACH_ACK", "REFUSED", "Simple_Poll", "POLL_RESPONSE", "SAME", "DIFFERENT", "ORGINFO", "REPLY",
        "FOLLOWS", "DONE", "ACK", "STATE", "BH", "SERVICE", "FAULT", "CLEAR", "DETACH", "INJECT", "DUMP", "VIEW", "YES",
        "NO", "{00000000}", "{}", "CONN_AVAIL", "00000000000000000000000000000000",
    ),
    "smtp": (
        "\r\n", "EHLO ", "HELO ", "X-EXPS LINKSTATE-HMAC-SHA256 ", "X-LINK2STATE ", "FIRST CHUNK=", "NEXT CHUNK=",
        "LAST CHUNK=", "CHUNK=", "LAST_CHUNK=", "MORE", "DONE_RESPONSE", "MAIL FROM:<", "RCPT TO:<", ">", "DATA",
        "\r\n.\r\n", "NOOP", "RSET", "QUIT", "220 ", "250-", "250 ", "334 ", "235 ", "200 Done", "221 ", "535 ", "*",
        "{00000000} ORGINFO ", "SIZE=",
    ),
    "topology": (
        "[organization]", "[settings]", "[[routing_groups]]", "[[servers]]", "[[connectors]]", "[[groups]]", "name = ",
        "secret = ", "secret_file = ", "master = ", "routing_group = ", "address = ", "port_691 = ", "port_smtp = ",
        "type = ", "cost = ", "source_bridgeheads = ", "remote_bridgeheads = ", "connected_routing_group = ",
        "address_spaces = ", "scope = ", "restrictions", "dns_routed = ", "smart_host = ", "guid = ", "legacy = ",
        "suppress_state_changes = ", "time_scale = ", "poll_interval = ", "state_delay = ", "compat_e2k = ", "true",
        "false", "\"routing_group\"", "\"smtp\"", "\"x400\"", "127.0.0.1",
        "{ type = \"SMTP\", address = \"*\", cost = 1 }",
    ),
}  # fmt: skip

SEEDS = {"orginfo": orginfo_seeds, "rg691": rg691_seeds, "smtp": smtp_seeds, "topology": topology_seeds}


def _dict_line(i: int, token: str) -> str:
    escaped = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else f"\\x{ord(c):02x}" for c in token)
    return f'kw{i}="{escaped}"'


def write(root: Path) -> dict[str, int]:
    """Write every corpus and dictionary under `root` (`fuzz/`); returns seeds written per target."""
    counts = {}
    for target, make in SEEDS.items():
        folder = root / "corpus" / target
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        counts[target] = 0
        for name, data in make():
            (folder / name).write_bytes(data)
            counts[target] += 1
        (root / "dicts").mkdir(parents=True, exist_ok=True)
        lines = [f"# libFuzzer dictionary for `linkstate fuzz {target}` (written by linkstate.fuzz.seeds)"]
        lines += [_dict_line(i, t) for i, t in enumerate(DICTS[target])]
        (root / "dicts" / f"{target}.dict").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return counts


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "fuzz"
    for target, n in write(out).items():
        print(f"{target}: {n} seeds")
