"""The reference decoder: canonical bytes -> model through the construct grammar of proto.orginfo.

Owns: `reference_decode` / `reference_decode_frame`, the slow but obviously-correct twin of
proto.decode.decode_strict. It is where construct containers become models (containers never leave proto/),
and where the rules the grammar does not express live: GUID order (routing groups, members, connectors,
bridgeheads strictly ascending) and `ffffffff` meaning "unlimited".
Invariants: accepts exactly what decode_strict accepts and gives the same table (property-tested); raises
nothing but `DecodeError`. Not for the hot path (see bench/README.md).
May import: the standard library, construct, and proto.*.
"""

from __future__ import annotations

import itertools
from typing import Any

from construct import ConstructError

from proto.errors import DecodeError
from proto.model import (
    UNLIMITED,
    AddressSpace,
    Bridgehead,
    BridgeheadState,
    Connector,
    ConnectorState,
    Member,
    OrgInfo,
    RoutingGroup,
    Version,
)
from proto.orginfo import FRAME

__all__ = ["reference_decode", "reference_decode_frame"]


def _ascending(guids: list[str], what: str) -> None:
    for a, b in itertools.pairwise(guids):
        if not a < b:
            raise DecodeError(0, f"{what} GUIDs not strictly ascending ({b} after {a})")


def _limit(value: int) -> int | None:
    return None if value == UNLIMITED else value


def _connector(c: Any) -> Connector:
    cfg = c.config
    bhs = tuple(Bridgehead(b.guid, BridgeheadState(b.state), b.fqdn) for b in cfg.bridgeheads)
    _ascending([b.guid for b in bhs], "bridgehead")
    return Connector(
        guid=c.guid,
        type=cfg.type,
        source_address=cfg.source_address,
        target_address=cfg.target_address,
        dn=cfg.dn,
        schedule=cfg.schedule,
        scope=cfg.scope,
        triggered=cfg.triggered,
        priority=cfg.priority,
        max_size=_limit(cfg.max_size),
        large_threshold=_limit(cfg.large_threshold),
        no_pf_referrals=cfg.no_pf_referrals,
        accept_by_default=cfg.accept_by_default,
        accept=tuple(i.dn for i in cfg.accept.dns),
        reject=tuple(i.dn for i in cfg.reject.dns),
        reserved3=tuple(i.dn for i in cfg.reserved3.dns),
        reserved4=tuple(i.dn for i in cfg.reserved4.dns),
        address_spaces=tuple(AddressSpace(a.type, a.address, a.cost) for a in cfg.address_spaces),
        bridgeheads=bhs,
        target_bridgeheads=tuple(t.fqdn for t in cfg.target_bridgeheads),
        state=ConnectorState(cfg.state),
    )


def _section(s: Any) -> RoutingGroup:
    members = tuple(
        Member(m.guid, m.connected == "YES", m.state_flags, m.build, m.service_status) for m in s.members
    )
    _ascending([m.guid for m in members], "member")
    conns = tuple(_connector(c) for c in s.connectors)
    _ascending([c.guid for c in conns], "connector")
    return RoutingGroup(
        guid=s.guid,
        master=s.master,
        version=Version(s.major, s.minor, s.user),
        version_guid=s.version_guid,
        smtp_address=s.smtp_address,
        x400_address=s.x400_address,
        x500_address=s.x500_address,
        members=members,
        connectors=conns,
    )


def reference_decode_frame(data: bytes) -> tuple[OrgInfo, str, int]:
    """(table, carried digest, declared length) of a canonical frame."""
    try:
        frame = FRAME.parse(bytes(data))
    except ConstructError as exc:
        reason = " ".join(str(exc).split())
        raise DecodeError(getattr(exc, "offset", 0), f"not a canonical OrgInfo frame: {reason}") from None
    except (ValueError, UnicodeError, IndexError, OverflowError) as exc:
        raise DecodeError(0, f"not a canonical OrgInfo frame: {type(exc).__name__}") from None
    groups = tuple(_section(s) for s in frame.body.sections)
    _ascending([g.guid for g in groups], "routing group")
    return OrgInfo(groups), frame.body.digest, frame.length


def reference_decode(data: bytes) -> OrgInfo:
    """The table of a canonical frame, parsed by the construct grammar."""
    return reference_decode_frame(data)[0]
