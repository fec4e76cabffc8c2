"""The negotiated X-LINK2STATE extensions between sessions wired in memory (docs/PROTOCOL.md §3.11): delta rounds,
the window, push on a kept session, the fallbacks, the server's bounds, and the seed's bytes when a side lacks them."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linkstate.core.link2state_client import ClientState, SmtpClientSession
from linkstate.core.link2state_server import ServerState, SmtpServerSession
from linkstate.core.link2state_session import Done, Event, OrgInfoReceived, SessionFailed
from linkstate.core.lsdb import LinkStateDB
from proto import link2state as l2s
from proto.codec import decode_strict
from proto.encode import frame_from_sections
from proto.model import Member, RoutingGroup, Version
from tests.core.test_link2state_session import CLIENT_GUID, Raw, authed
from tests.proto.transcripts import Side, converse, group, pair


def org(n: int, bump: dict[int, Version] | None = None) -> list[RoutingGroup]:
    """n groups with uuid-like GUIDs (spread over the buckets as real ones are)."""
    bump = bump or {}
    return [
        RoutingGroup(
            guid=uuid.uuid5(uuid.NAMESPACE_OID, f"g{i}").hex,
            master=f"{i:032x}",
            version=bump.get(i, Version(1, 0, 0)),
            smtp_address=f"rg{i}.example",
            members=(Member(f"{i + 7000:032x}"),),
        )
        for i in range(n)
    ]


def events_of(side_events: list[Event], kind: type) -> list[Event]:
    return [e for e in side_events if isinstance(e, kind)]


class Wire:
    """Both sessions, their tables, and every event; checks the window on every write."""

    def __init__(self, server: SmtpServerSession, srv: Side, client: SmtpClientSession, cli: Side) -> None:
        self.server, self.srv, self.client, self.cli = server, srv, client, cli
        self.s_events: list[Event] = []
        self.c_events: list[Event] = []
        self.bytes = 0
        self.in_flight = {"S": 0, "C": 0}

    def _count(self, who: str, data: bytes) -> None:
        """Chunks a side sent minus the MOREs that acknowledge them: never more than its window."""
        other = "C" if who == "S" else "S"
        for line in data.split(b"\r\n")[:-1]:
            body = line.removeprefix(b"250 ").removeprefix(b"X-LINK2STATE ")
            if body.startswith((b"FIRST CHUNK=", b"NEXT CHUNK=")):
                self.in_flight[who] += 1
            elif body.startswith(b"LAST CHUNK="):
                self.in_flight[who] = 0  # the last chunk needs no MORE: the stream is over
            elif body == b"MORE" and self.in_flight[other]:
                self.in_flight[other] -= 1
        window = (self.server if who == "S" else self.client).window
        assert self.in_flight[who] <= window, (who, self.in_flight, window)

    def run(self, first: bool = True) -> None:
        to_client = self.server.data_to_send() if first else b""
        for _ in range(100_000):
            if to_client:
                self._count("S", to_client)
                self.bytes += len(to_client)
                evs = self.client.receive_data(to_client)
                self.cli.handle(evs)
                self.c_events += evs
                evs = self.client.resume()
                self.cli.handle(evs)
                self.c_events += evs
            to_server = self.client.data_to_send()
            if to_server:
                self._count("C", to_server)
                self.bytes += len(to_server)
                evs = self.server.receive_data(to_server)
                self.srv.handle(evs)
                self.s_events += evs
            to_client = self.server.data_to_send()
            if not to_client and not to_server:
                return


def wired(server_groups: list[RoutingGroup], client_groups: list[RoutingGroup], **kw: object) -> Wire:
    opts: dict[str, object] = {"server_ext": True, "client_ext": True} | kw
    return Wire(*pair(server_groups, client_groups, **opts))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ delta rounds


def test_a_round_moves_only_what_differs_and_the_tables_end_equal() -> None:
    w = wired(org(300, {17: Version(1, 1, 0)}), org(300, {200: Version(2, 0, 0), 201: Version(1, 0, 5)}))
    full = len(w.srv.db.frame()) + len(w.cli.db.frame())
    w.run()
    assert w.srv.db.digest == w.cli.db.digest
    assert w.srv.db.section(org(1)[0].guid) is not None
    assert w.srv.db.version_of(org(300)[200].guid) == Version(2, 0, 0)
    assert w.cli.db.version_of(org(300)[17].guid) == Version(1, 1, 0)
    assert w.bytes < full / 10  # three sections moved, not two tables
    (done,) = events_of(w.c_events, Done)
    assert done == Done(exchanged=True, agreed=True) and w.client.rounds == 1
    assert not events_of(w.s_events + w.c_events, SessionFailed)


def test_equal_tables_end_at_once() -> None:
    w = wired(org(50), org(50))
    w.run()
    assert events_of(w.c_events, Done) == [Done(exchanged=False, agreed=True)]
    assert not events_of(w.s_events + w.c_events, OrgInfoReceived)


def test_large_tables_compare_at_depth_two() -> None:
    w = wired(org(1500, {3: Version(5)}), org(1500))
    w.run()
    assert w.srv.db.digest == w.cli.db.digest
    assert w.bytes < len(w.srv.db.frame()) / 20


def test_split_brain_copies_travel_both_ways_and_each_side_keeps_the_same_one() -> None:
    base = org(20)
    mine = replace(base[4], version_guid="1" * 32, smtp_address="mine.example")
    theirs = replace(base[4], version_guid="2" * 32, smtp_address="theirs.example")
    w = wired([*base[:4], theirs, *base[5:]], [*base[:4], mine, *base[5:]])
    w.run()
    assert w.srv.db.digest == w.cli.db.digest
    assert w.cli.db.section(base[4].guid) == theirs  # the higher version GUID wins on both sides


def test_pipelined_chunks_never_pass_the_window_both_ways() -> None:
    """Small chunks: each side's frame is many chunks; the Wire asserts the window on every write."""
    w = wired(org(60, {i: Version(3) for i in range(0, 60, 3)}), org(60, {i: Version(3) for i in range(1, 60, 3)}),
              server_chunk=64, client_chunk=64)  # fmt: skip
    w.run()
    assert w.server.window == w.client.window == l2s.DEFAULT_WINDOW
    assert w.server.chunks_out > 3 * l2s.DEFAULT_WINDOW and w.client.chunks_out > 3 * l2s.DEFAULT_WINDOW
    assert w.srv.db.digest == w.cli.db.digest


def test_a_server_keeping_its_own_copy_ends_the_session_without_a_full_exchange() -> None:
    """The server refuses the client's newer copy of one section (a master and its own group): the second round
    would move the same section again, so the session ends, agreed on nothing, with no whole packet sent."""
    own = org(30)[9].guid
    w = wired(org(30), org(30, {9: Version(7)}))
    merge = w.srv.handle
    w.srv.handle = lambda evs: merge([e for e in evs if not isinstance(e, OrgInfoReceived)] + [  # type: ignore[method-assign]
        OrgInfoReceived(_without(e.frame, own), e.peer_guid) for e in evs if isinstance(e, OrgInfoReceived)])
    w.run()
    assert events_of(w.c_events, Done) == [Done(exchanged=True, agreed=False)]
    assert w.client.rounds == 1 and w.bytes < len(w.srv.db.frame())


def _without(frame: bytes, guid: str) -> bytes:
    kept = [g for g in decode_strict(frame).orginfo.routing_groups if g.guid != guid]
    return LinkStateDB(kept).sections_frame(g.guid for g in kept)


def test_a_difference_the_summaries_cannot_explain_falls_back_to_the_seed_exchange() -> None:
    """The client's summary claims a digest its sections do not have: no bucket differs, so the seed's full
    exchange settles it (windowed), and the client's table then takes the server's newer section."""
    w = wired(org(40, {5: Version(9)}), org(40))
    real = w.client.get_summary
    assert real is not None

    def lying() -> object:
        s = real()
        fake = w.srv.db.state().summary()
        return replace_summary(fake, digest=s.digest)

    w.client.get_summary = lying  # type: ignore[assignment]
    w.run()
    assert w.cli.db.version_of(org(40)[5].guid) == Version(9)
    assert w.client.state in (ClientState.QUITTING, ClientState.CLOSED, ClientState.KEPT)
    assert any(isinstance(e, Done) and e.exchanged for e in w.c_events)


def replace_summary(s: object, digest: str) -> object:
    from proto.summary import Summary

    assert isinstance(s, Summary)
    return Summary(s.guids, s.versions, s.raws, digest)


# ------------------------------------------------------------------------------------------------ kept sessions, push


def test_a_kept_session_pushes_the_changed_sections_then_checks() -> None:
    w = wired(org(100), org(100), keep=True)
    w.run()
    assert w.client.kept and w.server.state is ServerState.IDLE
    mark = w.cli.db.seq
    changed = replace(org(100)[42], version=Version(1, 1, 0), smtp_address="moved.example")
    w.cli.db.put(changed)
    push = w.cli.db.sections_frame(w.cli.db.changed_since(mark) or ())
    before = w.bytes
    w.c_events += w.client.again(push)
    w.run(first=False)
    assert w.srv.db.section(changed.guid) == changed and w.srv.db.digest == w.cli.db.digest
    assert w.c_events[-1] == Done(exchanged=True, agreed=True) and w.client.kept
    assert w.bytes - before < 2 * len(push) + 600  # the section, PUSH=, MORE, 200 Done and the check


def test_a_kept_session_runs_a_delta_round_without_a_push_and_keeps_alive() -> None:
    w = wired(org(20), org(20), keep=True)
    w.run()
    w.c_events += w.client.noop()
    w.run(first=False)
    assert w.client.kept
    w.srv.db.put(replace(org(20)[3], version=Version(4)))
    w.c_events += w.client.again(None)
    w.run(first=False)
    assert w.cli.db.version_of(org(20)[3].guid) == Version(4) and w.client.kept


def test_a_server_closing_a_kept_session_is_no_failure() -> None:
    w = wired(org(5), org(5), keep=True)
    w.run()
    assert w.client.receive_data(b"421 4.4.2 idle\r\n") == [] and w.client.closed
    w2 = wired(org(5), org(5), keep=True)
    w2.run()
    assert w2.client.receive_data(b"") == [] and w2.client.closed


def test_keep_needs_a_server_with_the_extensions() -> None:
    w = wired(org(5), org(5), keep=True, server_ext=False)
    w.run()
    assert w.client.state is ClientState.CLOSED  # QUIT, as the seed's dialogue ends


# ------------------------------------------------------------------------------------------------ the seed's bytes


def test_a_client_with_the_extensions_speaks_the_seeds_dialogue_to_a_server_without_them() -> None:
    """A server without them advertises nothing new: the client's bytes are the seed's, byte for byte."""
    tables = ([group(2)], [group(1)])
    seed = wired(*tables, server_ext=False, client_ext=False, server_chunk=100, client_chunk=150)
    ours = wired(*tables, server_ext=False, client_ext=True, server_chunk=100, client_chunk=150)
    for w in (seed, ours):
        w.lines = []  # type: ignore[attr-defined]
    seed_lines = converse(seed.server, seed.srv, seed.client, seed.cli)
    our_lines = converse(ours.server, ours.srv, ours.client, ours.cli)
    assert our_lines == seed_lines


def test_extension_items_are_unknown_keywords_to_a_server_without_them() -> None:
    raw = authed()
    for item in (b"WINDOW=4", b"DELTA=" + b"0" * 32, b"LIST=0", b"GET=" + b"0" * 32, b"PUSH=" + b"0" * 32):
        reply = raw.line(b"X-LINK2STATE " + item)
        assert reply.startswith(b"501 5.5.4 unknown X-LINK2STATE keyword")


# ------------------------------------------------------------------------------------------------ the server's bounds


def delta_server() -> Raw:
    return authed(delta=True, chunk_raw_bytes=60)


def test_the_servers_delta_round_refuses_bad_items_and_keeps_serving() -> None:
    raw = delta_server()
    assert b"TREE=*" in raw.line(b"X-LINK2STATE DELTA=" + b"f" * 32)
    assert raw.line(b"X-LINK2STATE LIST=zz").startswith(b"501 5.5.4 bad bucket prefix")
    assert raw.srv.state is ServerState.IDLE  # the round is dropped
    assert raw.line(b"X-LINK2STATE LIST=0").startswith(b"503 5.5.1")  # no round: no LIST
    assert raw.line(b"X-LINK2STATE DELTA=nothex").startswith(b"501 5.5.4")
    assert raw.line(b"X-LINK2STATE WINDOW=0").startswith(b"501 5.5.4")
    assert raw.line(b"X-LINK2STATE WINDOW=9999") == b"250 X-LINK2STATE WINDOW=64\r\n"
    assert raw.line(b"X-LINK2STATE TREE=*").startswith(b"501 5.5.4 TREE is a reply")
    assert raw.line(b"NOOP") == b"250 2.0.0 OK\r\n"


def test_get_keeps_only_guids_of_the_snapshot() -> None:
    raw = delta_server()
    raw.line(b"X-LINK2STATE DELTA=" + b"f" * 32)
    assert raw.line(b"X-LINK2STATE GET=" + b"e" * 32 + b" " + f"{0:032x}".encode()) == b"250 X-LINK2STATE MORE\r\n"
    reply = raw.line(b"X-LINK2STATE LAST CHUNK=" + frame_from_sections([]))
    frame = b"".join(ln.split(b"CHUNK=", 1)[1] for ln in reply.split(b"\r\n") if b"CHUNK=" in ln)
    while not reply.split(b"\r\n")[-2].startswith(b"250 X-LINK2STATE LAST"):
        reply = raw.line(b"X-LINK2STATE MORE")
        frame += b"".join(ln.split(b"CHUNK=", 1)[1] for ln in reply.split(b"\r\n") if b"CHUNK=" in ln)
    assert [g.guid for g in decode_strict(frame).orginfo.routing_groups] == [f"{0:032x}"]


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"X-LINK2STATE NEXT CHUNK=abc", b"503 5.5.1 CHUNK with no FIRST CHUNK before it"),  # MS05-021
        (b"X-LINK2STATE FIRST CHUNK={ffffffff} ORGINFO", b"501 5.5.4 declared length 4294967295 is over"),
        (b"X-LINK2STATE LAST CHUNK=zz", b"503 5.5.1 LAST CHUNK continues no FIRST CHUNK and is no whole frame"),
    ],
)
def test_the_sections_frame_of_a_round_is_bounded_like_any_packet(line: bytes, reply: bytes) -> None:
    for opening in (b"X-LINK2STATE DELTA=" + b"f" * 32, b"X-LINK2STATE PUSH=" + b"f" * 32):
        raw = delta_server()
        raw.line(opening)
        assert raw.line(line).startswith(reply)
        assert raw.srv.state is ServerState.IDLE and not events_of(raw.events, OrgInfoReceived)


def test_the_error_budget_still_closes_a_delta_round_abuser() -> None:
    raw = authed(delta=True, max_errors=3)
    for _ in range(2):
        raw.line(b"X-LINK2STATE DELTA=" + b"f" * 32)
        raw.line(b"X-LINK2STATE LIST=xyz")
    assert raw.line(b"X-LINK2STATE LIST=xyz").startswith(b"503")  # the third error
    assert raw.srv.closed


# ------------------------------------------------------------------------------------------------ the client is robust

EXT_REPLIES = [
    b"220 x\r\n",
    b"250-x\r\n250-X-LINK2STATE\r\n250-X-LINK2STATE-PIPELINING 8\r\n250-X-LINK2STATE-DELTA\r\n"
    b"250 X-EXPS LINKSTATE-HMAC-SHA256\r\n",
    b"334 " + b"5e" * 16 + b" " + b"0f" * 16 + b" " + b"0" * 64 + b"\r\n",
    b"235 ok\r\n",
    b"250 X-LINK2STATE WINDOW=8\r\n",
    b"250 X-LINK2STATE WINDOW=80\r\n",
    b"250 X-LINK2STATE TREE=* " + b" ".join([b"1:" + b"a" * 32] + [b"0:-"] * 15) + b"\r\n",
    b"250-X-LINK2STATE TREE=0 " + b" ".join([b"0:-"] * 16) + b"\r\n250 X-LINK2STATE TREE=1 x\r\n",
    b"250 X-LINK2STATE LIST=0 " + b"0" * 32 + b"/1.0.0/" + b"a" * 32 + b"\r\n",
    b"250-X-LINK2STATE LIST=0\r\n250 X-LINK2STATE TREE=* 0:-\r\n",
    b"250 X-LINK2STATE DONE_RESPONSE\r\n",
    b"250 X-LINK2STATE MORE\r\n",
    b"250 X-LINK2STATE LAST CHUNK={0000002b} ORGINFO " + b"7" * 32 + b"  \r\n",
    b"200 Done\r\n",
    b"250 X-LINK2STATE GET=" + b"0" * 32 + b"\r\n",
    b"500 no\r\n",
    b"",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(EXT_REPLIES), max_size=20), st.booleans())
def test_a_client_with_the_extensions_never_raises(replies: list[bytes], keep: bool) -> None:
    w = wired(org(3), org(3), keep=keep)
    c = w.client
    c.data_to_send()
    for r in replies:
        c.receive_data(r)
        c.resume()
        c.data_to_send()
    if c.kept:
        c.again(frame_from_sections([]))
        c.noop()
    assert CLIENT_GUID  # the session never raised
