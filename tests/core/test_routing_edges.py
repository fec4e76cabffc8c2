"""Route selection at its edges, with exact values: address-space ranks and parsing, `RoutingError` texts, message
class restrictions at their limits, connector and bridgehead states, next hops and their pseudo-random choices (checked
against the documented blake2b formula), ties and stickiness, leaf-rule pinning, route tables and the graph cache.

The tables are built by hand (no directory) so each test names exactly the connectors it needs; without a topology a
group or server is labelled by its GUID and a bridgehead by its FQDN.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import pytest

from linkstate.core.directory import build_orginfo, tombstone
from linkstate.core.lsdb import LinkStateDB
from linkstate.core.routing import (
    MessageClass,
    PinnedIndex,
    Route,
    Router,
    RouteStatus,
    RoutingError,
    connector_pinned,
    match_rank,
    parse_destination,
    pinned_connectors,
)
from proto.model import (
    AddressSpace,
    Bridgehead,
    BridgeheadState,
    Connector,
    ConnectorState,
    Member,
    OrgInfo,
    RoutingGroup,
)
from tests.core.topology_helpers import example

AVAIL = BridgeheadState.CONN_AVAIL
NOT_AVAIL = BridgeheadState.CONN_NOT_AVAILABLE
NOT_STARTED = BridgeheadState.CONN_NOT_STARTED
DOWN = ConnectorState.DOWN


def gid(i: int) -> str:
    return f"{i:02d}" + "a" * 30


def sid(i: int, j: int = 0) -> str:
    return f"{i:02d}{j:02d}" + "b" * 28


def cid(k: int) -> str:
    return f"{k:02d}" + "c" * 30


def bh(fqdn: str, state: BridgeheadState = AVAIL) -> Bridgehead:
    return Bridgehead(hashlib.sha256(fqdn.encode()).hexdigest()[:32], state, fqdn)


OUT = (bh("out.example"),)


def rgc(k: int, dst: int, cost: int, bhs: tuple[Bridgehead, ...] = (), **kw: Any) -> Connector:
    return Connector(guid=cid(k), type="RGC", address_spaces=(AddressSpace("RG", gid(dst), cost),), bridgeheads=bhs,
                     **kw)  # fmt: skip


def ext(k: int, address: str, cost: int, type_: str = "SMTP", **kw: Any) -> Connector:
    """An external connector with one address space (a smart host and one source bridgehead unless told)."""
    kw.setdefault("bridgeheads", OUT)
    kw.setdefault("target_address", "relay.example")
    kw.setdefault("type", "SMTP")
    return Connector(guid=cid(k), address_spaces=(AddressSpace(type_, address, cost),), **kw)


def org(*groups: list[Connector], servers: int = 1) -> OrgInfo:
    """Group i holds servers sid(i, 0..servers-1) and the connectors groups[i]."""
    return OrgInfo(
        tuple(RoutingGroup(guid=gid(i), master=sid(i), members=tuple(Member(sid(i, j)) for j in range(servers)),
                           connectors=tuple(conns)) for i, conns in enumerate(groups))
    )  # fmt: skip


def hash_int(*parts: str) -> int:
    """The documented pseudo-random draw: blake2b over the parts (unit-separated), 8 bytes, big-endian."""
    return int.from_bytes(hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest(), "big")


def via(r: Route) -> str | None:
    """The GUID of the connector owning the matched address space."""
    return r.address_space.connector.guid if r.address_space else None


# ------------------------------------------------------------------------------------------ address spaces


def test_smtp_ranks_are_exact_per_kind_of_pattern() -> None:
    assert match_rank("SMTP", "*", "a.b.com") == (0, 0, 0)
    assert match_rank("SMTP", "*.b.com", "a.b.com") == (1, 2, 6)  # the suffix ".b.com": two dots, six characters
    assert match_rank("SMTP", "*.com", "a.b.com") == (1, 1, 4)
    assert match_rank("SMTP", "a.b.com", "a.b.com") == (2, 3, 7)  # three labels, seven characters
    assert match_rank("SMTP", "A.B.Com", "a.b.COM") == (2, 3, 7)  # case-insensitive both ways
    assert match_rank("SMTP", "*.B.COM", "X.b.com") == (1, 2, 6)


def test_smtp_patterns_that_do_not_match() -> None:
    assert match_rank("SMTP", "*.com", "com") is None  # "*.x" needs a label before x
    assert match_rank("SMTP", "*.com", "xcom") is None  # ... and a dot
    assert match_rank("SMTP", "*.com", "a.com.net") is None
    assert match_rank("SMTP", "b.com", "a.b.com") is None  # an exact pattern is only that domain
    assert match_rank("SMTP", "a.b.com", "b.com") is None
    assert match_rank("SMTP", "**", "a.com") is None


def test_x400_and_x500_ranks_count_literal_text_and_ignore_case() -> None:
    assert match_rank("X400", "c=US;a= ;p=Org;*", "C=us;A= ;P=ORG;o=Site") == (1, 15, 16)
    assert match_rank("X400", "*", "c=US;a= ;p=Org") == (1, 0, 1)
    assert match_rank("X400", "C=US;A= ;P=ORG", "c=us;a= ;p=org") == (2, 14, 14)
    assert match_rank("X500", "/o=Org/ou=*/cn=x", "/O=ORG/OU=Site/CN=X") == (1, 15, 16)
    assert match_rank("X500", "/O=Org", "/o=org") == (2, 6, 6)
    assert match_rank("X400", "c=US;a= ;p=Org;*", "c=GB;a= ;p=Org;o=Site") is None
    assert match_rank("X500", "/o=Org", "/o=Org/ou=Site") is None


def test_smtp_destinations_are_reduced_to_their_lower_case_domain() -> None:
    assert parse_destination("  User@Mail.Example.COM.  ") == ("SMTP", "mail.example.com")
    assert parse_destination("example.org") == ("SMTP", "example.org")
    assert parse_destination("u@Mail.BOX.") == ("SMTP", "mail.box")  # only the trailing dots go
    assert parse_destination("a@b@c.org") == ("SMTP", "c.org")  # the last @ separates the domain
    assert parse_destination("x=y.org") == ("SMTP", "x=y.org")  # "=" alone is not X.400
    assert parse_destination("x;y.org") == ("SMTP", "x;y.org")  # nor ";" alone


def test_x400_and_x500_destinations_keep_their_text() -> None:
    assert parse_destination(" /o=Org/ou=Site ") == ("X500", "/o=Org/ou=Site")
    assert parse_destination("\tc=US;a= ;p=Org\n") == ("X400", "c=US;a= ;p=Org")


@pytest.mark.parametrize(
    ("to", "message"),
    [
        ("", "empty destination"),
        ("   ", "empty destination"),
        ("user@", "not an address or domain: 'user@'"),
        (" a@b..c ", "not an address or domain: 'a@b..c'"),
        ("a@.b", "not an address or domain: 'a@.b'"),
        ("a@b c", "not an address or domain: 'a@b c'"),
        ("@", "not an address or domain: '@'"),
        (".", "not an address or domain: '.'"),
    ],
)
def test_malformed_destinations_say_why(to: str, message: str) -> None:
    with pytest.raises(RoutingError) as err:
        parse_destination(to)
    assert str(err.value) == message


# ------------------------------------------------------------------------------------------ lookup errors


def test_a_lookup_needs_exactly_one_destination() -> None:
    router, table = Router(), org([])
    text = "give exactly one destination: an address, a server or a routing group"
    for kwargs in ({}, {"to": "a.org", "to_group": gid(0)}, {"to": "a.org", "to_server": sid(0), "to_group": gid(0)}):
        with pytest.raises(RoutingError) as err:
            router.route(table, sid(0), **kwargs)
        assert str(err.value) == text


def test_lookup_errors_name_the_bad_input() -> None:
    router, table = Router(), org([])
    cases: list[tuple[dict[str, Any], str]] = [
        ({"from_server": "nobody", "to": "a.org"}, "unknown server 'nobody'"),
        ({"from_server": sid(0), "to_server": "nobody"}, "unknown server 'nobody'"),
        ({"from_server": sid(0), "to_group": "Atlantis"}, "unknown routing group 'Atlantis'"),
        ({"from_server": sid(0), "to": "a.org", "msg": MessageClass(priority="urgent")},
         "priority must be high, normal or low, not 'urgent'"),
        ({"from_server": sid(0), "to": "a.org", "msg": MessageClass(priority="High")},
         "priority must be high, normal or low, not 'High'"),
    ]  # fmt: skip
    for kwargs, message in cases:
        with pytest.raises(RoutingError) as err:
            router.route(table, **kwargs)
        assert str(err.value) == message


def test_a_server_of_a_tombstoned_group_cannot_send() -> None:
    topo = example("seattle.toml")
    db = LinkStateDB.from_topology(topo)
    tokyo = db.section(topo.routing_group("Tokyo").guid)
    assert tokyo is not None
    db.put(tombstone(tokyo))
    router = Router(topo)
    text = "server 'TOK-S2' is not a member of any routing group in the table"
    with pytest.raises(RoutingError) as err:
        router.route(db, "TOK-S2", to_group="Seattle")
    assert str(err.value) == text
    with pytest.raises(RoutingError) as err:
        router.routes_from(db, "TOK-S2")
    assert str(err.value) == text
    assert router.route(db, "SEA-S2", to_server="TOK-S2") == Route(status=RouteStatus.UNREACHABLE)
    assert router.route(db, "SEA-S2", to_group="Tokyo") == Route(status=RouteStatus.UNREACHABLE)
    with pytest.raises(RoutingError) as err:
        router.routes_from(db, "nobody")
    assert str(err.value) == "unknown server 'nobody'"


# ------------------------------------------------------------------------------------------ routes between groups


def chain() -> OrgInfo:
    """0 -> 1 -> 2 (costs 3 and 4, bridgeheads named), 2 -> 0 (cost 1, any local server); group 3 on its own."""
    return org(
        [rgc(1, 1, 3, (bh("g0-bh.example"),))],
        [rgc(2, 2, 4, (bh("g1-bh.example"),))],
        [rgc(3, 0, 1)],
        [],
    )


def test_a_route_over_two_groups_names_its_first_connector_path_and_cost() -> None:
    r = Router().route(chain(), sid(0), to_group=gid(2))
    assert r == Route(status=RouteStatus.ROUTE, connector=r.connector, next_hop="g0-bh.example", cost=7,
                      path=(gid(0), gid(1), gid(2)), path_guids=(gid(0), gid(1), gid(2)))  # fmt: skip
    assert r.connector is not None and (r.connector.guid, r.connector.name) == (cid(1), None)
    back = Router().route(chain(), sid(2), to_server=sid(1))
    assert (back.status, back.cost, back.path_guids, back.next_hop) == (
        RouteStatus.ROUTE, 4, (gid(2), gid(0), gid(1)), f"any server in {gid(0)}")  # fmt: skip
    assert back.connector is not None and back.connector.guid == cid(3)


def test_inside_the_own_group_the_next_hop_is_the_destination_server_only() -> None:
    router, table = Router(), chain()
    mine = Route(status=RouteStatus.ROUTE, cost=0, path=(gid(1),), path_guids=(gid(1),))
    assert router.route(table, sid(1), to_group=gid(1)) == mine
    assert router.route(table, sid(1), to_server=sid(1)) == replace(mine, next_hop=sid(1))


def test_an_isolated_group_is_unreachable_and_a_group_behind_a_down_connector_queued() -> None:
    table = chain()
    router = Router(compat_e2k=True)
    assert router.route(table, sid(0), to_group=gid(3)) == Route(status=RouteStatus.UNREACHABLE)
    assert router.route(table, sid(3), to_group=gid(0)) == Route(status=RouteStatus.UNREACHABLE)
    g0 = [rgc(1, 1, 3, (bh("g0-bh.example"),), state=DOWN)]
    down = org(g0, *[list(rg.connectors) for rg in table.routing_groups[1:]])
    assert router.route(down, sid(0), to_group=gid(2)) == Route(status=RouteStatus.QUEUED)
    assert router.route(down, sid(2), to_group=gid(1)) == Route(status=RouteStatus.QUEUED)
    assert router.route(down, sid(1), to_group=gid(0)).cost == 5


def test_a_tombstoned_group_asked_by_guid_is_unreachable_not_unknown() -> None:
    table = chain()
    dead = OrgInfo((*table.routing_groups[:3], tombstone(table.routing_groups[3])))
    assert Router().route(dead, sid(0), to_group=gid(3)) == Route(status=RouteStatus.UNREACHABLE)
    assert Router().route(dead, sid(0), to_group=gid(2)).cost == 7


def test_a_connector_to_an_unknown_or_tombstoned_group_is_no_edge_and_no_address_space() -> None:
    table = org([rgc(1, 1, 3), rgc(2, 7, 1), rgc(4, 2, 1)], [], [])
    dead = OrgInfo((*table.routing_groups[:2], tombstone(table.routing_groups[2])))
    router = Router()
    assert router.route(dead, sid(0), to_group=gid(1)).cost == 3
    assert router.route(dead, sid(0), to="a.org") == Route(status=RouteStatus.UNREACHABLE)
    assert len(router.graph_for(dead).edges) == 1


@pytest.mark.parametrize(
    ("conn", "usable"),
    [
        (rgc(1, 1, 3, (bh("x"),)), True),
        (rgc(1, 1, 3, (bh("x"),), state=DOWN), False),
        (rgc(1, 1, 3, (bh("x", NOT_AVAIL), bh("y", NOT_STARTED))), False),  # every bridgehead down
        (rgc(1, 1, 3, (bh("x", NOT_AVAIL), bh("y", AVAIL))), True),  # one is enough
        (rgc(1, 1, 3, (bh("x", NOT_STARTED),)), False),
        (rgc(1, 1, 3, state=DOWN), True),  # "any local server": never down
        (replace(rgc(1, 1, 3, (bh("x", NOT_AVAIL),), state=DOWN), type="EDK"), True),  # never down
        (replace(rgc(1, 1, 3, (bh("x"),), state=DOWN), type="SMTP"), False),  # an RG arrow: SMTP has state
        (replace(rgc(1, 1, 3, (), state=DOWN), type="SMTP"), False),
        (replace(rgc(1, 1, 3, (bh("x"),), state=DOWN), type="X400"), False),
    ],
)
def test_group_connector_usability(conn: Connector, usable: bool) -> None:
    router = Router(compat_e2k=True)
    r = router.route(org([conn, rgc(2, 2, 1)], [], [rgc(3, 1, 50)]), sid(0), to_group=gid(1))  # or 0 -> 2 -> 1
    assert r.status == RouteStatus.ROUTE and r.connector is not None
    assert (r.cost, r.connector.guid, len(r.path)) == ((3, cid(1), 2) if usable else (51, cid(2), 3))
    alone = router.route(org([conn], []), sid(0), to_group=gid(1))  # no alternate path
    assert alone.status == (RouteStatus.ROUTE if usable else RouteStatus.QUEUED)
    pinned = Router().route(org([conn], []), sid(0), to_group=gid(1))  # pinned: used whatever its state (G42)
    assert (pinned.status, pinned.cost) == (RouteStatus.ROUTE, 3)


@pytest.mark.parametrize(
    ("conn", "usable"),
    [
        (ext(1, "*", 1), True),
        (ext(1, "*", 1, state=DOWN), False),
        (ext(1, "*", 1, bridgeheads=(bh("x", NOT_AVAIL), bh("y", NOT_STARTED))), False),
        (ext(1, "*", 1, bridgeheads=(bh("x", NOT_STARTED), bh("y"))), True),
        (ext(1, "*", 1, bridgeheads=()), True),  # any server may send
        (ext(1, "*", 1, state=DOWN, target_address=""), True),  # DNS-routed SMTP: never down
        (ext(1, "*", 1, state=DOWN, target_address="", bridgeheads=(bh("x", NOT_AVAIL),)), True),
        (ext(1, "*", 1, state=DOWN, target_address="", type="X400"), False),
        (ext(1, "*", 1, state=DOWN, type="EDK"), True),
        (ext(1, "*", 1, state=DOWN, bridgeheads=(), type="RGC"), True),
        (ext(1, "*", 1, state=DOWN, type="RGC"), False),
    ],
)
def test_address_space_connector_usability(conn: Connector, usable: bool) -> None:
    r = Router().route(org([conn]), sid(0), to="u@a.org")
    if usable:
        assert (r.status, r.cost, via(r)) == (RouteStatus.ROUTE, 1, cid(1))
    else:
        assert r.status == RouteStatus.QUEUED and via(r) == cid(1) and r.cost is None
