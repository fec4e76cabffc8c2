"""The X-LINK2STATE transcripts of docs/PROTOCOL.md §3.9 and §3.11, produced by the session code.

`SmtpClientSession` wired to `SmtpServerSession` in memory (secret `secret`, server GUID `5e5e…`, nonce `0f0f…`,
client GUID `c1c1…`, nonce `a5a5…`), each side holding a small table in a `LinkStateDB` that merges what its session
hands over (as the bridgehead does) before the session's next bytes are taken. `python -m tests.proto.transcripts`
prints them all; tests/proto/test_protocol_doc.py checks that the document holds them byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from linkstate.core.link2state_client import SmtpClientSession
from linkstate.core.link2state_server import SmtpServerSession
from linkstate.core.link2state_session import Event, OrgInfoReceived
from linkstate.core.lsdb import LinkStateDB
from proto.codec import decode_strict
from proto.model import Member, RoutingGroup, Version

ZERO = Version()

SECRET = b"secret"
SERVER = ("5e" * 16, "0f" * 16)
CLIENT = ("c1" * 16, "a5" * 16)


def group(n: int, version: Version = ZERO, tag: str = "") -> RoutingGroup:
    """The one-group sections of §3.9: group n, master 0x1n, one member 0x2n."""
    return RoutingGroup(
        guid=f"{n:032x}",
        master=f"{0x10 + n:032x}",
        version=version or Version(),
        smtp_address=f"rg{n}{tag}.example",
        members=(Member(f"{0x20 + n:032x}"),),
    )


@dataclass
class Side:
    """A session and the table it speaks for (merging what it hands over)."""

    db: LinkStateDB
    lines: list[str] = field(default_factory=list)

    def frame_source(self) -> tuple[str, bytes]:
        return self.db.digest, self.db.frame()

    def handle(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, OrgInfoReceived):
                self.db.merge(decode_strict(event.frame).orginfo)


def _lines(who: str, data: bytes) -> list[str]:
    return [f"{who}: {line.decode()}" for line in data.split(b"\r\n")[:-1]]


def converse(
    server: SmtpServerSession, srv: Side, client: SmtpClientSession, cli: Side, *, first: bool = True
) -> list[str]:
    """Pump both ways until neither side has anything to say; the lines in the order they were written."""
    out: list[str] = []
    to_client = server.data_to_send() if first else b""
    for _ in range(10_000):
        if to_client:
            out += _lines("S", to_client)
            cli.handle(client.receive_data(to_client))
            cli.handle(client.resume())
        to_server = client.data_to_send()
        if to_server:
            out += _lines("C", to_server)
            srv.handle(server.receive_data(to_server))
        to_client = server.data_to_send()
        if not to_client and not to_server:
            break
    return out


def pair(
    server_groups: list[RoutingGroup], client_groups: list[RoutingGroup], *, server_ext: bool, client_ext: bool,
    server_chunk: int = 993, client_chunk: int = 993, keep: bool = False,
) -> tuple[SmtpServerSession, Side, SmtpClientSession, Side]:  # fmt: skip
    srv, cli = Side(LinkStateDB(server_groups)), Side(LinkStateDB(client_groups))
    summary: Callable[[Side], Callable[[], object]] = lambda side: lambda: side.db.state().summary()  # noqa: E731
    server = SmtpServerSession(SERVER[0], SECRET, "bh2.rg2.example", srv.frame_source, SERVER[1],
                               chunk_raw_bytes=server_chunk,
                               get_summary=summary(srv) if server_ext else None)  # type: ignore[arg-type]  # fmt: skip
    client = SmtpClientSession(CLIENT[0], SECRET, "bh1.rg1.example", cli.frame_source, CLIENT[1],
                               chunk_raw_bytes=client_chunk, keep=keep,
                               get_summary=summary(cli) if client_ext else None)  # type: ignore[arg-type]  # fmt: skip
    return server, srv, client, cli


def seed_equal() -> list[str]:
    s, srv, c, cli = pair([group(1)], [group(1)], server_ext=False, client_ext=False)
    return converse(s, srv, c, cli)


def seed_different() -> list[str]:
    s, srv, c, cli = pair([group(2)], [group(1)], server_ext=False, client_ext=False, server_chunk=100,
                          client_chunk=150)  # fmt: skip
    return converse(s, srv, c, cli)


def seed_client_extended_server() -> list[str]:
    """A client without the extensions (exchange = "full") and a server that offers them: the seed's dialogue."""
    s, srv, c, cli = pair([group(1)], [group(1)], server_ext=True, client_ext=False)
    return converse(s, srv, c, cli)


def _three(changed: int, version: Version) -> list[RoutingGroup]:
    return [group(n, version if n == changed else Version(1, 0, 0)) for n in (1, 2, 3)]


def delta_equal() -> list[str]:
    s, srv, c, cli = pair(_three(0, Version()), _three(0, Version()), server_ext=True, client_ext=True)
    return converse(s, srv, c, cli)


def delta_round() -> list[str]:
    """The client holds group 1 newer, the server group 2: one round moves each, the check finds them equal."""
    s, srv, c, cli = pair(_three(2, Version(1, 1, 0)), _three(1, Version(1, 1, 0)), server_ext=True, client_ext=True,
                          server_chunk=100, client_chunk=150)  # fmt: skip
    return converse(s, srv, c, cli)


def delta_push() -> list[str]:
    """A kept session: after an agreed round the client's group 1 changes; it pushes it, then checks."""
    s, srv, c, cli = pair(_three(0, Version()), _three(0, Version()), server_ext=True, client_ext=True, keep=True)
    converse(s, srv, c, cli)
    assert c.kept
    mark = cli.db.seq
    cli.db.put(replace(group(1, Version(1, 1, 0)), smtp_address="rg1.example"))
    push = cli.db.sections_frame(cli.db.changed_since(mark) or ())
    out = _lines("C", b"")
    cli.handle(c.again(push))
    out += converse(s, srv, c, cli, first=False)
    return out


TRANSCRIPTS: dict[str, Callable[[], list[str]]] = {
    "seed, equal digests": seed_equal,
    "seed, different digests": seed_different,
    "seed client, server with the extensions": seed_client_extended_server,
    "delta, equal digests": delta_equal,
    "delta, one round": delta_round,
    "delta, push on a kept session": delta_push,
}


def main() -> None:
    for name, make in TRANSCRIPTS.items():
        print(f"--- {name}\n```")
        print("\n".join(make()))
        print("```\n")


if __name__ == "__main__":
    main()
