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

from linkstate.core import routing
from linkstate.core.directory import build_orginfo, tombstone
from linkstate.core.lsdb import LinkStateDB
from linkstate.core.routing import (
    DIAL_MAX_COST,
    ConnectorRef,
    MessageClass,
    PinnedIndex,
    Route,
    Router,
    RouteStatus,
    RoutingError,
    SpaceRef,
    connector_pinned,
    match_rank,
    parse_destination,
    pinned_connectors,
)
from linkstate.core.topology import parse_topology
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
from tests.core.topology_helpers import dump, example

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


def test_the_most_specific_smtp_space_wins_whatever_its_cost() -> None:
    table = org([ext(1, "*", 1), ext(2, "*.com", 2), ext(3, "*.Contoso.COM", 3), ext(4, "Mail.Contoso.com", 4),
                 ext(5, "*.mail.contoso.com", 5)])  # fmt: skip
    router = Router()
    expected = {"u@mail.contoso.com": 4, "u@x.mail.contoso.com": 5, "u@contoso.com": 2, "u@x.contoso.com": 3,
                "u@fabrikam.com": 2, "u@contoso.net": 1, "u@com": 1}  # fmt: skip
    for to, k in expected.items():
        r = router.route(table, sid(0), to=to)
        assert (via(r), r.cost) == (cid(k), k), to


def test_a_wildcard_space_needs_a_label_before_its_suffix() -> None:
    table = org([ext(1, "*.contoso.com", 1)])
    assert Router().route(table, sid(0), to="u@contoso.com") == Route(status=RouteStatus.UNREACHABLE)
    assert Router().route(table, sid(0), to="u@a.b.contoso.com").cost == 1


def test_address_space_types_are_matched_without_regard_to_case() -> None:
    table = org([ext(1, "*.example.com", 1, type_="smtp"), ext(2, "c=US;*", 1, type_="x400", type="X400")])
    assert via(Router().route(table, sid(0), to="u@a.example.com")) == cid(1)
    assert via(Router().route(table, sid(0), to="c=us;a= ;p=Org")) == cid(2)


def test_x400_and_x500_spaces_rank_by_literal_text_and_stay_within_their_type() -> None:
    x400 = {"type_": "X400", "type": "X400"}
    table = org([ext(1, "c=US;*", 1, **x400), ext(2, "c=US;a= ;p=Org;*", 9, **x400),
                 ext(3, "*", 1, type_="X500", type="X400"), ext(4, "/o=Org/*", 2, type_="X500")])  # fmt: skip
    router = Router()
    assert via(router.route(table, sid(0), to="c=US;a= ;p=Org;o=Site")) == cid(2)
    assert via(router.route(table, sid(0), to="c=US;a= ;p=Other")) == cid(1)
    assert router.route(table, sid(0), to="c=GB;a= ;p=Org") == Route(status=RouteStatus.UNREACHABLE)
    assert via(router.route(table, sid(0), to="/o=Org/ou=Site")) == cid(4)
    assert via(router.route(table, sid(0), to="/o=Other")) == cid(3)
    assert router.route(org([ext(3, "*", 1, type_="X500")]), sid(0), to="c=US;a= ;p=Org") == Route(
        status=RouteStatus.UNREACHABLE)  # fmt: skip


def test_a_server_listed_in_two_sections_sends_from_the_first_by_guid() -> None:
    table = org([rgc(1, 2, 1)], [rgc(2, 2, 5)], [])
    doubled = OrgInfo((table.routing_groups[0], replace(table.routing_groups[1], members=(Member(sid(0)),)),
                       table.routing_groups[2]))  # fmt: skip
    assert Router().route(doubled, sid(0), to_group=gid(2)).cost == 1


# ------------------------------------------------------------------------------------------ lookup errors


def test_a_lookup_needs_exactly_one_destination() -> None:
    router, table = Router(), org([])
    text = "give exactly one destination: an address, a server or a routing group"
    several: list[dict[str, Any]] = [{}, {"to": "a.org", "to_group": gid(0)}, {"to": "a.org", "to_server": sid(0)},
                                     {"to": "a.org", "to_server": sid(0), "to_group": gid(0)}]  # fmt: skip
    for kwargs in several:
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


# ------------------------------------------------------------------------------------------ message classes


def restricted(**kw: Any) -> OrgInfo:
    """Group 0: "*" over connector 1 (cost 1, restricted by `kw`) and over connector 2 (cost 9, unrestricted)."""
    return org([ext(1, "*", 1, **kw), ext(2, "*", 9)])


def takes(table: OrgInfo, router: Router | None = None, to: str = "u@a.org", **msg: Any) -> bool:
    """Whether the restricted connector 1 carries the message (else the unrestricted 2 does)."""
    r = (router or Router()).route(table, sid(0), to=to, msg=MessageClass(**msg))
    assert r.status == RouteStatus.ROUTE and via(r) in (cid(1), cid(2))
    return via(r) == cid(1)


@pytest.mark.parametrize(
    ("mask", "allowed"),
    [(0, {"high", "normal", "low"}), (0x1, {"normal", "low"}), (0x2, {"high", "low"}), (0x4, {"high", "normal"}),
     (0x6, {"high"}), (0x7, set())],
)  # fmt: skip
def test_the_priority_mask_names_the_disallowed_classes(mask: int, allowed: set[str]) -> None:
    table = restricted(priority=mask)
    assert {p for p in ("high", "normal", "low") if takes(table, priority=p)} == allowed
    assert takes(table) == ("normal" in allowed)  # a message is normal unless told


def test_the_size_limit_is_in_kilobytes_and_inclusive() -> None:
    table = restricted(max_size=10)
    assert takes(table, size=10 * 1024)
    assert not takes(table, size=10 * 1024 + 1)
    assert takes(table, size=0) and takes(table)  # no size: no limit applies
    assert takes(restricted(max_size=0), size=0) and not takes(restricted(max_size=0), size=1)
    assert takes(restricted(), size=1 << 40)  # no limit on the connector


def test_public_folder_referrals_only_over_connectors_that_allow_them() -> None:
    assert not takes(restricted(no_pf_referrals=1), referral=True)
    assert takes(restricted(no_pf_referrals=1), referral=False)
    assert takes(restricted(no_pf_referrals=0), referral=True)


def test_a_routing_group_scoped_connector_serves_only_its_own_group() -> None:
    local = ext(1, "*", 1, scope=1)
    table = org([rgc(3, 1, 5)], [local, ext(2, "*", 9)])
    router = Router()
    assert via(router.route(table, sid(1), to="u@a.org")) == cid(1)
    assert via(router.route(table, sid(0), to="u@a.org")) == cid(2)
    wide = org([rgc(3, 1, 5)], [replace(local, scope=0), ext(2, "*", 9)])
    assert via(router.route(wide, sid(0), to="u@a.org")) == cid(1)
    r = router.route(org([rgc(3, 1, 5)], [local]), sid(0), to="u@a.org")
    assert r == Route(status=RouteStatus.UNREACHABLE)  # the only matching space is out of scope: as if none matched


def test_a_scoped_group_connector_still_carries_other_groups_mail_through() -> None:
    scoped = rgc(4, 2, 1, scope=1, max_size=1000)  # restricted (a size limit), scope routing group: 1 -> 2
    table = org([rgc(3, 1, 1)], [scoped, rgc(5, 2, 50)], [])
    r = Router().route(table, sid(0), to_group=gid(2), msg=MessageClass(size=10))
    assert (r.cost, r.path_guids) == (2, (gid(0), gid(1), gid(2)))


SENDER = "CN=Alice,CN=Users,DC=example,DC=com"


def test_reject_lists_stop_the_named_sender_in_any_case() -> None:
    table = restricted(reject=("cn=alice,cn=users,dc=example,dc=com",))
    router = Router(check_restrictions=True)
    assert not takes(table, router, sender=SENDER)
    assert not takes(table, router, sender=SENDER.upper())
    assert takes(table, router, sender="CN=Bob,CN=Users,DC=example,DC=com")
    assert takes(table, router)  # no sender: restrictions are not looked at
    assert takes(table, Router(check_restrictions=False), sender=SENDER)


def test_accept_lists_let_only_the_named_senders_through() -> None:
    table = restricted(accept_by_default=0, accept=(SENDER.upper(),))
    router = Router(check_restrictions=True)
    assert takes(table, router, sender=SENDER)
    assert not takes(table, router, sender="CN=Bob,CN=Users,DC=example,DC=com")
    assert takes(table, router)
    assert takes(table, Router(check_restrictions=False), sender="CN=Bob")
    closed = restricted(accept_by_default=0)
    assert not takes(closed, router, sender=SENDER)
    assert takes(restricted(accept=("CN=Bob",)), router, sender=SENDER)  # accepted by default: the list is moot


@pytest.mark.parametrize(
    ("limits", "msg"),
    [
        ({"priority": 0x4}, MessageClass(priority="low")),
        ({"max_size": 1}, MessageClass(size=1025)),
        ({"no_pf_referrals": 1}, MessageClass(referral=True)),
        ({"reject": (SENDER,)}, MessageClass(sender=SENDER)),
        ({"accept_by_default": 0}, MessageClass(sender=SENDER)),
        ({"accept_by_default": 0, "accept": ("CN=Bob",)}, MessageClass(sender=SENDER)),
    ],
)
def test_a_restricted_group_connector_is_left_out_for_that_message_only(limits: dict[str, Any],
                                                                        msg: MessageClass) -> None:  # fmt: skip
    table = org([rgc(1, 1, 1, **limits), rgc(2, 2, 1)], [], [rgc(3, 1, 1)])  # 0 -> 1 direct (1) or via 2 (2)
    router = Router(check_restrictions=True)
    plain = router.route(table, sid(0), to_group=gid(1))
    assert (plain.cost, plain.path_guids) == (1, (gid(0), gid(1)))
    r = router.route(table, sid(0), to_group=gid(1), msg=msg)
    assert (r.cost, r.path_guids) == (2, (gid(0), gid(2), gid(1)))
    assert router.routes_from(table, sid(0), msg).route(gid(1)) == replace(r, next_hop=None)
    assert router.routes_from(table, sid(0)).route(gid(1)) == replace(plain, next_hop=None)


def test_an_excluded_connector_is_never_chosen_among_equal_costs() -> None:
    table = org([rgc(1, 1, 5, max_size=1), rgc(2, 1, 5), rgc(3, 1, 5, max_size=1)], [], servers=12)
    for j in range(12):
        r = Router().route(table, sid(0, j), to_group=gid(1), msg=MessageClass(size=2048))
        assert r.connector is not None and r.connector.guid == cid(2)
    small = {Router().route(table, sid(0, j), to_group=gid(1)).connector for j in range(12)}
    assert {c.guid for c in small if c} == {cid(1), cid(2), cid(3)}  # without the size, the tie spreads


def test_restrictions_drop_a_space_before_specificity_is_decided() -> None:
    table = org([ext(1, "*.a.org", 1, max_size=1), ext(2, "*", 9)])
    router = Router()
    assert via(router.route(table, sid(0), to="u@x.a.org")) == cid(1)
    assert via(router.route(table, sid(0), to="u@x.a.org", msg=MessageClass(size=4096))) == cid(2)


# ------------------------------------------------------------------------------------------ next hops (R52)


def test_a_member_hands_over_to_a_pseudo_random_available_bridgehead() -> None:
    bhs = (bh("b1.example"), bh("b2.example", NOT_AVAIL), bh("b3.example"), bh("b4.example", NOT_STARTED),
           bh("b5.example"))  # fmt: skip
    live = ["b1.example", "b3.example", "b5.example"]
    table = org([ext(1, "*", 1, bridgeheads=bhs)])
    hops = set()
    for seed in ("", "a", "b"):
        for key in ("", "m1", "m2", "m3"):
            r = Router(seed=seed).route(table, sid(0), to="u@a.org", message_key=key)
            assert r.next_hop == live[hash_int(seed, sid(0), cid(1), "SMTP:a.org", key) % 3]
            hops.add(r.next_hop)
    assert hops == set(live)


def test_a_never_down_connector_with_every_bridgehead_down_still_names_one_of_them() -> None:
    bhs = (bh("b1.example", NOT_AVAIL), bh("b2.example", NOT_STARTED), bh("b3.example", NOT_AVAIL))
    table = org([ext(1, "*", 1, bridgeheads=bhs, target_address="")])  # DNS-routed: never down
    for key in ("", "k1", "k2", "k3", "k4"):
        r = Router(seed="s").route(table, sid(0), to="u@a.org", message_key=key)
        assert r.status == RouteStatus.ROUTE
        assert r.next_hop == bhs[hash_int("s", sid(0), cid(1), "SMTP:a.org", key) % 3].fqdn


def test_a_group_hop_picks_a_source_bridgehead_by_the_destination_group() -> None:
    bhs = (bh("b1.example"), bh("b2.example"))
    table = org([rgc(1, 1, 2, bhs)], [])
    for seed in ("x", "y", "z"):
        r = Router(seed=seed).route(table, sid(0), to_server=sid(1))
        assert r.next_hop == bhs[hash_int(seed, sid(0), cid(1), gid(1), "") % 2].fqdn


def test_any_server_may_send_then_the_remote_side_is_named() -> None:
    targets = ("r1.example", "r2.example", "r3.example")
    cases = [
        (org([ext(1, "*", 1, bridgeheads=(), target_address="relay.example")]), "relay.example"),
        (org([ext(1, "*", 1, bridgeheads=(), target_address="")]), "DNS"),
        (org([ext(1, "*", 1, bridgeheads=(), target_address="_placeholder")]), "DNS"),
        (org([rgc(1, 1, 2)], []), f"any server in {gid(1)}"),
    ]
    for table, hop in cases:
        to = {"to_group": gid(1)} if len(table.routing_groups) == 2 else {"to": "u@a.org"}
        assert Router().route(table, sid(0), **to).next_hop == hop  # type: ignore[arg-type]
    remote = org([rgc(1, 1, 2, target_bridgeheads=targets)], [])
    seen = set()
    for key in ("", "k1", "k2", "k3", "k4", "k5"):
        r = Router(seed="s").route(remote, sid(0), to_group=gid(1), message_key=key)
        assert r.next_hop == targets[hash_int("s", sid(0), cid(1), gid(1), key, "remote") % 3]
        seen.add(r.next_hop)
    assert len(seen) > 1


def test_an_available_source_bridgehead_sends_itself_every_time() -> None:
    data = {"routing_groups": [{"name": "G", "master": "s1"}],
            "servers": [{"name": f"s{i}", "routing_group": "G"} for i in (1, 2, 3, 4)],
            "connectors": [{"name": "Out", "type": "smtp", "routing_group": "G", "cost": 1,
                            "smart_host": "relay.example", "source_bridgeheads": ["s1", "s2", "s3"],
                            "address_spaces": [{"address": "*", "cost": 1}]}],
            "organization": {"name": "O", "secret": "x"}}  # fmt: skip
    topo = parse_topology(dump(data))
    up, s1_down = build_orginfo(topo), build_orginfo(topo, ["s1"])
    router = Router(topo)
    for key in ("", "a", "b", "c", "d", "e"):
        assert router.route(up, "s1", to="u@a.org", message_key=key).next_hop == "relay.example"
        assert router.route(s1_down, "s1", to="u@a.org", message_key=key).next_hop in ("s2", "s3")
    assert {router.route(up, "s4", to="u@a.org", message_key=k).next_hop for k in "abcdefgh"} == {"s1", "s2", "s3"}


def test_a_sending_bridgehead_names_the_remote_bridgehead_by_server_name() -> None:
    topo = example("seattle.toml")
    router = Router(topo)
    r = router.route(build_orginfo(topo), "SEA-BH1", to_group="London")
    assert (r.next_hop, r.cost, r.path) == ("LON-BH1", 10, ("Seattle", "London"))
    assert router.route(build_orginfo(topo), "SEA-S2", to_group="London").next_hop == "SEA-BH1"


# ------------------------------------------------------------------------------------------ ties (R53–R55)


def test_equal_costs_split_by_a_hash_of_the_server_guid_over_the_sorted_connectors() -> None:
    table = org([ext(3, "*", 2), ext(1, "*", 2), ext(2, "*", 2), ext(4, "*", 3)], servers=12)
    picks = []
    for j in range(12):
        r = Router().route(table, sid(0, j), to="u@a.org")
        assert r.cost == 2 and via(r) == [cid(1), cid(2), cid(3)][hash_int(sid(0, j)) % 3]
        picks.append(via(r))
    assert set(picks) == {cid(1), cid(2), cid(3)}


def server_choosing(first: str, table: OrgInfo, servers: int = 12) -> str:
    for j in range(servers):
        if via(Router().route(table, sid(0, j), to="u@a.org")) == first:
            return sid(0, j)
    raise AssertionError("no server chooses " + first)


def pair(cost1: int = 2, state1: ConnectorState = ConnectorState.UP) -> OrgInfo:
    """Two "*" connectors (1 and 2, cost 2 unless told), twelve servers; a new table object each call (a router
    keeps its answers per table object, so each lookup here is asked of a new table, as after a real update)."""
    return org([ext(1, "*", cost1, state=state1), ext(2, "*", 2)], servers=12)


def test_a_tie_choice_is_sticky_per_destination_and_sender() -> None:
    me = server_choosing(cid(1), pair())
    router = Router()
    assert via(router.route(pair(), me, to="u@a.org")) == cid(1)
    assert via(router.route(pair(state1=DOWN), me, to="u@a.org")) == cid(2)
    assert via(router.route(pair(), me, to="u@a.org")) == cid(2)  # no failback at equal cost (R55)
    assert via(router.route(pair(), me, to="u@a.org", message_key="other")) == cid(2)
    assert via(router.route(pair(), me, to="u@b.org")) == cid(1)  # another destination chose for itself
    assert via(router.route(pair(), me, to="u@a.org", msg=MessageClass(sender=SENDER))) == cid(1)
    assert via(Router().route(pair(), me, to="u@a.org")) == cid(1)  # a fresh router has no history


def test_a_cheaper_connector_wins_back_a_sticky_destination() -> None:
    me = server_choosing(cid(1), pair())
    router = Router()
    router.route(pair(state1=DOWN), me, to="u@a.org")
    assert via(router.route(pair(), me, to="u@a.org")) == cid(2)
    assert via(router.route(pair(cost1=1), me, to="u@a.org")) == cid(1)  # R54
    assert via(router.route(pair(), me, to="u@a.org")) == cid(1)  # and stays


def test_ties_between_group_connectors_are_sticky_too() -> None:
    def table(state: ConnectorState = ConnectorState.UP) -> OrgInfo:
        return org([rgc(1, 1, 2, (bh("x"),), state=state), rgc(2, 1, 2, (bh("y"),))], [], servers=12)

    me = next(sid(0, j) for j in range(12) if hash_int(sid(0, j)) % 2 == 0)  # chooses cid(1)
    router = Router()
    first = [router.route(t, me, to_group=gid(1)).connector for t in (table(), table(DOWN), table())]
    assert [c.guid if c else None for c in first] == [cid(1), cid(2), cid(2)]


def test_a_reloaded_directory_keeps_the_sticky_choices_and_the_seed() -> None:
    bhs = (bh("b1.x"), bh("b2.x"), bh("b3.x"))
    up = org([ext(1, "*", 2, bridgeheads=bhs), ext(2, "*", 2)], servers=12)
    me = server_choosing(cid(1), up)
    router = Router(seed="q")
    router.route(up, me, to="u@a.org")
    router.route(pair(state1=DOWN), me, to="u@a.org")
    topo = example("net-star.toml")
    fresh = router.with_topology(topo)
    assert fresh.topology is topo and fresh.seed == "q" and fresh.check_restrictions  # the directory's settings
    assert via(fresh.route(org([ext(1, "*", 2, bridgeheads=bhs), ext(2, "*", 2)], servers=12), me,
                           to="u@a.org")) == cid(2)  # fmt: skip
    keys = ("1", "2", "3", "4", "5", "6")
    hops = [fresh.route(up, me, to="u@b.org", message_key=k).next_hop for k in keys]
    assert hops == [Router(seed="q").route(up, me, to="u@b.org", message_key=k).next_hop for k in keys]
    assert hops != [Router().route(up, me, to="u@b.org", message_key=k).next_hop for k in keys]


# ------------------------------------------------------------------------------------------ pinning (G42, R28)


def four_chain() -> OrgInfo:
    """0 <-> 1 <-> 2 <-> 3: connectors 1 (0->1), 2 (1->0), 3 (1->2), 4 (2->1), 5 (2->3), 6 (3->2)."""
    return org([rgc(1, 1, 1, (bh("x"),))], [rgc(2, 0, 1, (bh("x"),)), rgc(3, 2, 1, (bh("x"),))],
               [rgc(4, 1, 1, (bh("x"),)), rgc(5, 3, 1, (bh("x"),))], [rgc(6, 2, 1, (bh("x"),))])  # fmt: skip


def test_the_seed_leaf_rule_pins_only_connectors_touching_a_leaf_group() -> None:
    table = four_chain()
    everything = frozenset(cid(k) for k in range(1, 7))
    assert pinned_connectors(table) == everything
    assert pinned_connectors(table, "seed") == {cid(1), cid(2), cid(5), cid(6)}  # 1 <-> 2: neither end a leaf
    index = PinnedIndex(table)
    for k in range(1, 7):
        for rule in ("general", "seed"):
            expected = cid(k) in pinned_connectors(table, rule)
            assert connector_pinned(table, cid(k), rule) == index.pinned(cid(k), rule) == expected
    assert connector_pinned(table, cid(3)) and not connector_pinned(table, cid(3), "seed")
    assert not connector_pinned(table, cid(9))


def test_which_groups_are_leaves() -> None:
    ring = org([rgc(1, 1, 1)], [rgc(2, 2, 1)], [rgc(3, 0, 1)])  # one in, one out, but not the same neighbour
    assert pinned_connectors(ring) == {cid(1), cid(2), cid(3)}
    assert pinned_connectors(ring, "seed") == frozenset()
    source = org([rgc(1, 1, 1)], [rgc(2, 2, 1)], [rgc(3, 1, 1)])  # group 0 only sends: a leaf
    assert pinned_connectors(source, "seed") == {cid(1), cid(2), cid(3)}
    fan = org([rgc(1, 1, 1), rgc(2, 2, 1)], [rgc(3, 0, 1)], [rgc(4, 0, 1)])  # group 0: two out, two in
    assert pinned_connectors(fan) == {cid(1), cid(2), cid(3), cid(4)}
    assert pinned_connectors(fan, "seed") == {cid(1), cid(2), cid(3), cid(4)}  # 1 and 2 are leaves
    parallel = org([rgc(1, 1, 1), rgc(2, 1, 1)], [rgc(3, 0, 1)])  # group 0: two out (to the same group), one in
    assert pinned_connectors(parallel) == {cid(3)} and pinned_connectors(parallel, "seed") == frozenset()
    external = org([rgc(1, 1, 1), ext(2, "*", 1)], [rgc(3, 0, 1), ext(4, "*.net", 1)])  # no leaf has mail out
    assert pinned_connectors(external) == {cid(1), cid(3)} and pinned_connectors(external, "seed") == frozenset()


def test_the_leaf_rule_decides_whether_a_down_middle_connector_is_still_used() -> None:
    table = four_chain()
    groups = [list(rg.connectors) for rg in table.routing_groups]
    groups[1][1] = replace(groups[1][1], state=DOWN)  # 1 -> 2
    down = org(*groups)
    assert Router().route(down, sid(0), to_group=gid(3)).cost == 3
    assert Router(leaf_rule="seed").route(down, sid(0), to_group=gid(3)) == Route(status=RouteStatus.QUEUED)
    assert Router(compat_e2k=True).route(down, sid(0), to_group=gid(3)) == Route(status=RouteStatus.QUEUED)
    groups[0][0] = replace(groups[0][0], state=DOWN)  # 0 -> 1: a leaf's connector, pinned under both rules
    assert Router(leaf_rule="seed").route(org(*groups), sid(0), to_group=gid(1)).cost == 1


def middle_down() -> OrgInfo:
    """four_chain with 1 -> 2 DOWN: used only where it is pinned ("general", not compat_e2k)."""
    groups = [list(rg.connectors) for rg in four_chain().routing_groups]
    groups[1][1] = replace(groups[1][1], state=DOWN)
    return org(*groups)


def test_a_router_takes_the_leaf_rule_and_the_compat_mode_from_its_directory() -> None:
    topo = example("seattle.toml")  # leaf_rule "general", compat_e2k off
    assert Router(topo).route(middle_down(), sid(0), to_group=gid(3)).cost == 3
    seed = replace(topo, settings=replace(topo.settings, leaf_rule="seed"))
    e2k = replace(topo, settings=replace(topo.settings, compat_e2k=True))
    assert Router(seed).route(middle_down(), sid(0), to_group=gid(3)).status == RouteStatus.QUEUED
    assert Router(e2k).route(middle_down(), sid(0), to_group=gid(3)).status == RouteStatus.QUEUED
    assert Router(seed, leaf_rule="general").route(middle_down(), sid(0), to_group=gid(3)).cost == 3  # told wins
    assert Router(e2k, compat_e2k=False).route(middle_down(), sid(0), to_group=gid(3)).cost == 3


@pytest.mark.parametrize("call", [
    lambda t: Router(leaf_rule="Seed"),
    lambda t: Router(leaf_rule=""),
    lambda t: pinned_connectors(t, "leaf"),
    lambda t: connector_pinned(t, cid(3), "sede"),
    lambda t: PinnedIndex(t).pinned(cid(3), ""),
])  # fmt: skip
def test_a_leaf_rule_is_one_of_the_known_ones_wherever_it_is_named(call: Any) -> None:
    with pytest.raises(RoutingError, match=r"^unknown leaf rule '\w*' \(one of: general, seed\)$"):
        call(four_chain())


def test_unnamed_leaf_rules_are_the_general_one() -> None:
    table = four_chain()
    assert PinnedIndex(table).pinned(cid(3)) and not PinnedIndex(table).pinned(cid(3), "seed")
    assert Router().leaf_rule == Router(example("seattle.toml")).leaf_rule == "general"


def test_a_pinned_index_searches_once_per_connector_and_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    searched: list[str] = []
    real = routing._pinned

    def counting(graph: Any, edge: Any, leaf_rule: str) -> bool:
        searched.append(f"{edge.conn.guid[:2]}/{leaf_rule}")
        return real(graph, edge, leaf_rule)

    monkeypatch.setattr(routing, "_pinned", counting)
    index = PinnedIndex(four_chain())
    answers = [index.pinned(cid(k), rule) for _ in range(3) for k in (3, 5) for rule in ("general", "seed")]
    assert answers == [True, False, True, True] * 3
    assert searched == ["03/general", "03/seed", "05/general", "05/seed"]


# ------------------------------------------------------------------------------------------ route tables, caches


def test_a_route_table_holds_every_groups_route_from_one_server() -> None:
    groups = [list(rg.connectors) for rg in chain().routing_groups]
    groups[1] = [replace(groups[1][0], state=DOWN)]  # 1 -> 2 down: 2 queued from 0
    table = Router(compat_e2k=True).routes_from(org(*groups), sid(0))
    assert len(table) == 4
    assert [table.cost(gid(i)) for i in range(4)] == [0, 3, None, None]
    assert table.route(gid(0)) == Route(status=RouteStatus.ROUTE, cost=0, path=(gid(0),), path_guids=(gid(0),))
    one = table.route(gid(1))
    assert (one.status, one.cost, one.path_guids) == (RouteStatus.ROUTE, 3, (gid(0), gid(1)))
    assert one.connector is not None and one.connector.guid == cid(1) and one.next_hop is None
    assert table.route(gid(2)) == Route(status=RouteStatus.QUEUED)
    assert table.route(gid(3)) == Route(status=RouteStatus.UNREACHABLE)
    assert table.route("f" * 32) == Route(status=RouteStatus.UNREACHABLE)
    assert table.path_guids(gid(2)) == table.path_guids(gid(3)) == ()
    full = Router().routes_from(chain(), sid(0))
    two = full.route(gid(2))
    assert (two.cost, two.path, two.path_guids) == (7, (gid(0), gid(1), gid(2)), (gid(0), gid(1), gid(2)))
    assert two.connector is not None and two.connector.guid == cid(1)  # the first connector, not the last


def test_answers_follow_each_table_however_many_are_asked() -> None:
    router = Router()
    up = [org([ext(1, "*", 1), ext(2, "*", 5)]) for _ in range(10)]
    down = [org([ext(1, "*", 1, state=DOWN), ext(2, "*", 5)]) for _ in range(10)]
    for a, b in zip(up, down, strict=True):  # equal tables as new objects: twenty graphs, the cache bounded
        assert router.route(a, sid(0), to="u@a.org").cost == 1
        assert router.route(b, sid(0), to="u@a.org").cost == 5
    assert router.route(up[0], sid(0), to="u@a.org").cost == 1
    assert len(router._graphs) <= 8


def test_a_router_keeps_the_graphs_of_its_recent_tables_and_its_answers() -> None:
    router = Router()
    tables = [org([ext(1, "*", cost)]) for cost in range(1, 8)]
    graphs = [router.graph_for(t) for t in tables]
    assert [router.graph_for(t) for t in tables] == graphs and all(
        router.graph_for(t) is g for t, g in zip(tables, graphs, strict=True))  # fmt: skip
    first = router.route(tables[0], sid(0), to="u@a.org")
    other = router.route(tables[0], sid(0), to="u@b.org")
    assert router.route(tables[0], sid(0), to="u@a.org") is first and first.cost == 1
    assert router.route(tables[0], sid(0), to="u@b.org") is other
    db = LinkStateDB.from_topology(example("seattle.toml"))
    assert router.graph_for(db) is router.graph_for(db)


def test_a_router_keeps_the_graphs_of_its_last_eight_tables_only() -> None:
    router = Router()
    tables = [org([ext(1, "*", cost)]) for cost in range(1, 10)]
    graphs = [router.graph_for(t) for t in tables[:8]]
    assert all(router.graph_for(t) is g for t, g in zip(tables, graphs, strict=False))  # eight kept
    router.graph_for(tables[8])  # a ninth: those are let go (a daemon's memory stays bounded)
    assert router.graph_for(tables[0]) is not graphs[0]
    assert len(router._graphs) == 2


def test_a_shortest_path_tree_is_computed_once_per_group_and_restriction_set(monkeypatch: pytest.MonkeyPatch) -> None:
    sources: list[int] = []
    real = routing._dijkstra

    def counting(graph: Any, src: int, excluded: frozenset[int]) -> Any:
        sources.append(src)
        return real(graph, src, excluded)

    monkeypatch.setattr(routing, "_dijkstra", counting)
    router, table = Router(), chain()
    costs = [router.route(table, sid(0), to_group=gid(i)).cost for i in (1, 2, 3)]
    assert router.routes_from(table, sid(0)).cost(gid(2)) == costs[1]
    router.route(table, sid(1), to_group=gid(0))
    router.route(table, sid(1), to_group=gid(2))
    assert sources == [0, 1]


def test_a_queued_lookup_names_the_cheapest_most_specific_space() -> None:
    spaces = [ext(3, "*", 4, state=DOWN), ext(2, "*", 3, state=DOWN), ext(1, "*", 3, state=DOWN), ext(4, "*", 1)]
    r = Router().route(org([rgc(9, 1, 1), *spaces[:3]], [spaces[3]]), sid(0), to="u@a.org")
    assert r.status == RouteStatus.ROUTE and via(r) == cid(4)
    queued = Router().route(org([rgc(9, 1, 1), spaces[0], spaces[1]], [spaces[2]]), sid(0), to="u@a.org")
    assert queued == Route(status=RouteStatus.QUEUED, address_space=SpaceRef("SMTP", "*", 3, ConnectorRef(cid(1))))
    assert queued.to_json()["address_space"] == {"type": "SMTP", "address": "*", "cost": 3,
                                                 "connector": {"guid": cid(1), "name": None}}  # fmt: skip
    cut_off = Router().route(org([], [ext(1, "*", 2)]), sid(0), to="u@a.org")  # usable, but no path to its group
    assert cut_off == Route(status=RouteStatus.QUEUED, address_space=SpaceRef("SMTP", "*", 2, ConnectorRef(cid(1))))


def test_a_linkstate_db_is_looked_up_again_after_it_changes() -> None:
    topo = example("seattle.toml")
    db = LinkStateDB.from_topology(topo)
    router = Router(topo)
    before = router.route(db, "SEA-S2", to_group="Brussels")
    graph = router.graph_for(db)
    seattle = db.section(topo.routing_group("Seattle").guid)
    assert seattle is not None
    conns = tuple(replace(c, state=DOWN) if c.guid == topo.connector("Seattle-London").guid else c
                  for c in seattle.connectors)  # fmt: skip
    db.put(replace(seattle, connectors=conns, version=seattle.version.bump_minor()))
    after = router.route(db, "SEA-S2", to_group="Brussels")
    assert (before.cost, after.cost) == (20, 35) and router.graph_for(db) is not graph


def test_an_external_route_over_a_group_hop_in_full() -> None:
    table = org([rgc(1, 1, 2, (bh("g0.example"),))], [ext(2, "*", 3)])
    r = Router().route(table, sid(0), to="u@a.org")
    assert r == Route(status=RouteStatus.ROUTE, connector=ConnectorRef(cid(1)), next_hop="g0.example", cost=5,
                      path=(gid(0), gid(1)), path_guids=(gid(0), gid(1)),
                      address_space=SpaceRef("SMTP", "*", 3, ConnectorRef(cid(2))))  # fmt: skip
    assert r.to_json()["status"] == "route" and r.to_json()["path"] == [gid(0), gid(1)]
    assert Router().route(table, sid(1), to="u@a.org").next_hop == "out.example"  # its own group: the bridgehead


def test_costs_above_the_bucket_bound_route_the_same() -> None:
    table = org([rgc(1, 1, 2000), rgc(2, 2, 1500)], [rgc(3, 3, 1)], [rgc(4, 3, 1000)], [])  # 0->1->3 or 0->2->3
    router = Router()
    assert router.graph_for(table).max_cost == 2000
    r = router.route(table, sid(0), to_group=gid(3))
    assert (r.cost, r.path_guids) == (2001, (gid(0), gid(1), gid(3)))
    assert router.routes_from(table, sid(0)).cost(gid(2)) == 1500


def diamond(cost: int) -> OrgInfo:
    """0 -> 1 -> 3 and 0 -> 2 -> 3 at one cost, then 3 -> 4; 0's connector to 2 (cid 1) sorts before its connector to
    1 (cid 2), so 2 is reached first."""
    return org([rgc(1, 2, cost), rgc(2, 1, cost)], [rgc(3, 3, cost)], [rgc(4, 3, cost)], [rgc(5, 4, cost)], [])


def test_equal_cost_paths_are_the_same_whichever_shortest_path_algorithm_runs() -> None:
    """The bucket queue (costs up to DIAL_MAX_COST) and the heap (above) settle groups at one distance in the order
    they were reached: the same tree, so the same first connector and path, not one chosen by the costs' size."""
    small, big = diamond(1), diamond(DIAL_MAX_COST + 1)
    router = Router()
    assert router.graph_for(small).max_cost <= DIAL_MAX_COST < router.graph_for(big).max_cost
    for table in (small, big):
        r = router.route(table, sid(0), to_group=gid(4))
        assert r.path_guids == (gid(0), gid(2), gid(3), gid(4)) and r.connector == ConnectorRef(cid(1))
        assert router.routes_from(table, sid(0)).path_guids(gid(3)) == (gid(0), gid(2), gid(3))


def test_a_group_reached_again_more_cheaply_does_not_end_the_search() -> None:
    """0 reaches 1 directly (5,000) and, cheaper, over 2 (1,000 + 1,000); 1 leads on to 3 and 4. The heap (costs
    above DIAL_MAX_COST) later pops 1's first, stale entry: it must pass over it, not stop."""
    for scale in (1, 1000):  # the bucket queue, then the heap
        table = org([rgc(1, 1, 5 * scale), rgc(2, 2, scale)], [rgc(3, 3, 5 * scale)], [rgc(4, 1, scale)],
                    [rgc(5, 4, scale)], [])  # fmt: skip
        r = Router().route(table, sid(0), to_group=gid(4))
        assert (r.status, r.cost) == (RouteStatus.ROUTE, 8 * scale)
        assert r.path_guids == (gid(0), gid(2), gid(1), gid(3), gid(4)) and r.connector == ConnectorRef(cid(2))
        assert Router().routes_from(table, sid(0)).path_guids(gid(3)) == (gid(0), gid(2), gid(1), gid(3))


# ------------------------------------------------------------------------------------------ minor updates


def three_ways(first: Connector, dns: Connector | None = None, groups: int = 3) -> OrgInfo:
    """0 -> 1 over `first` (cost 1) or over 2 (cost 50); group 1 sends "*" over `dns`."""
    spaces = [dns] if dns else []
    extra: list[list[Connector]] = [[] for _ in range(groups - 3)]
    return org([first, rgc(2, 2, 25)], [rgc(5, 0, 1), *spaces], [rgc(3, 1, 25)], *extra)


def test_a_state_only_change_is_patched_and_answers_as_a_built_table() -> None:
    smtp_rg = replace(rgc(1, 1, 1, (bh("x"),)), type="SMTP")  # an SMTP connector between groups: it has state
    dns = ext(4, "*", 1, target_address="")  # DNS-routed: never down
    router = Router()
    before = three_ways(smtp_rg, dns)
    assert router.route(before, sid(0), to_group=gid(1)).cost == 1
    after = OrgInfo((replace(before.routing_groups[0], connectors=(replace(smtp_rg, state=DOWN), rgc(2, 2, 25))),
                     replace(before.routing_groups[1], connectors=(rgc(5, 0, 1), replace(dns, state=DOWN))),
                     before.routing_groups[2]))  # fmt: skip
    assert router.graph_for(after).groups is router.graph_for(before).groups  # patched, not built again
    assert router.route(after, sid(0), to_group=gid(1)).cost == 50
    assert router.route(after, sid(1), to="u@a.org").cost == 1
    assert Router().route(after, sid(0), to_group=gid(1)).cost == 50


def test_a_pinned_connector_going_down_in_a_patched_table_is_still_used() -> None:
    before = org([rgc(1, 1, 1, (bh("x"),))], [rgc(2, 0, 1, (bh("y"),))])
    router = Router()
    router.graph_for(before)
    after = OrgInfo((replace(before.routing_groups[0], connectors=(rgc(1, 1, 1, (bh("x", NOT_AVAIL),)),)),
                     before.routing_groups[1]))  # fmt: skip
    assert router.graph_for(after).groups is router.graph_for(before).groups
    assert router.route(after, sid(0), to_group=gid(1)).cost == 1
    assert Router(compat_e2k=True).route(after, sid(0), to_group=gid(1)) == Route(status=RouteStatus.QUEUED)


def test_changes_beyond_states_or_too_many_sections_are_built_again() -> None:
    base_table = three_ways(rgc(1, 1, 1), groups=70)
    rgs = base_table.routing_groups

    def patched(groups: tuple[RoutingGroup, ...]) -> bool:
        router = Router()
        old = router.graph_for(base_table)
        return router.graph_for(OrgInfo(groups)).groups is old.groups

    member = replace(rgs[1], members=(*rgs[1].members, Member(sid(1, 1))))
    assert not patched((rgs[0], member, *rgs[2:]))
    assert not patched((replace(rgs[0], connectors=rgs[0].connectors[:1]), *rgs[1:]))  # a connector removed
    assert not patched((rgs[0], tombstone(rgs[1]), *rgs[2:]))
    assert not patched((rgs[1], rgs[0], *rgs[2:]))  # reordered
    assert not patched(rgs[:-1])
    assert patched((rgs[0], replace(rgs[1], version=rgs[1].version.bump_minor()), *rgs[2:]))
    copies = tuple(replace(rg) for rg in rgs)  # equal sections, new objects: each counts as changed
    assert patched(copies[:64] + rgs[64:]) and not patched(copies[:65] + rgs[65:])
    router = Router()
    router.graph_for(base_table)
    assert router.route(OrgInfo((rgs[0], member, *rgs[2:])), sid(1, 1), to_group=gid(0)).cost == 1


def test_a_section_tombstoned_after_a_lookup_drops_the_connectors_into_it() -> None:
    live = three_ways(rgc(1, 1, 1))
    empty = replace(live.routing_groups[2], members=(), connectors=())  # nothing to lose but the group itself
    before = OrgInfo((*live.routing_groups[:2], empty))
    router = Router()
    assert router.route(before, sid(0), to_group=gid(2)).cost == 25
    after = OrgInfo((*live.routing_groups[:2], tombstone(empty)))
    assert router.route(after, sid(0), to_group=gid(2)) == Route(status=RouteStatus.UNREACHABLE)


def test_exact_and_wildcard_spaces_going_down_in_a_patched_table_queue() -> None:
    def table(state: ConnectorState) -> OrgInfo:
        return org([ext(1, "a.org", 1, state=state), ext(2, "*.b.org", 1, state=state)])

    router = Router()
    router.graph_for(table(ConnectorState.UP))
    down = table(DOWN)
    assert router.route(down, sid(0), to="u@a.org").status == RouteStatus.QUEUED
    assert router.route(down, sid(0), to="u@x.b.org").status == RouteStatus.QUEUED


def test_a_remote_bridgehead_is_named_by_its_server_whatever_the_case_of_its_fqdn() -> None:
    topo = example("seattle.toml")
    table = build_orginfo(topo)
    london = topo.connector("Seattle-London").guid
    groups = []
    for rg in table.routing_groups:
        conns = tuple(replace(c, target_bridgeheads=tuple(f.upper() for f in c.target_bridgeheads))
                      if c.guid == london else c for c in rg.connectors)  # fmt: skip
        groups.append(replace(rg, connectors=conns))
    upper = OrgInfo(tuple(groups))
    assert any(c.target_bridgeheads for rg in upper.routing_groups for c in rg.connectors if c.guid == london)
    assert Router(topo).route(upper, "SEA-BH1", to_group="London").next_hop == "LON-BH1"
