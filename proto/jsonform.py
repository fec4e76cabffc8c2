"""The JSON form of an OrgInfo table: model <-> plain dicts (what `linkstate orginfo decode` prints).

Owns: `to_json` (a `Decoded` or an `OrgInfo` -> dict of JSON types) and `from_json` (dict -> `OrgInfo`, every
value checked, errors naming the JSON path), plus `carried_digest` for a frame that must keep its digest.
Layout: top-level `digest`, `computed_digest`, `length`, `warnings`, `routing_groups`; GUIDs as 32 lowercase
hex, numbers as JSON integers, `max_size`/`large_threshold` null when unlimited, `reserved3`/`reserved4` only
when non-empty. Invariant: `from_json(to_json(x)) == x` for every table the encoder accepts.
May import: the standard library and proto.*.
"""

from __future__ import annotations

import re
from typing import Any

from proto.decode import Decoded
from proto.encode import digest as canonical_digest
from proto.encode import encode
from proto.errors import ProtoError
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

__all__ = ["JsonFormError", "carried_digest", "from_json", "to_json"]

_GUID = re.compile(r"[0-9a-f]{32}")
_FORBIDDEN = re.compile(r"[\r\n\x00]")


class JsonFormError(ProtoError):
    """JSON that does not describe a table: `reason` at `path` (e.g. `$.routing_groups[0].master`)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{reason} at {path}")
        self.path = path
        self.reason = reason


# ---- model -> JSON ----------------------------------------------------------------------------------------


def _connector(c: Connector) -> dict[str, Any]:
    out: dict[str, Any] = {
        "guid": c.guid,
        "type": c.type,
        "source_address": c.source_address,
        "target_address": c.target_address,
        "dn": c.dn,
        "schedule": c.schedule,
        "scope": c.scope,
        "triggered": c.triggered,
        "priority": c.priority,
        "max_size": c.max_size,
        "large_threshold": c.large_threshold,
        "no_pf_referrals": c.no_pf_referrals,
        "accept_by_default": c.accept_by_default,
        "accept": list(c.accept),
        "reject": list(c.reject),
    }
    if c.reserved3:
        out["reserved3"] = list(c.reserved3)
    if c.reserved4:
        out["reserved4"] = list(c.reserved4)
    out["address_spaces"] = [{"type": a.type, "address": a.address, "cost": a.cost} for a in c.address_spaces]
    out["bridgeheads"] = [{"guid": b.guid, "state": b.state.value, "fqdn": b.fqdn} for b in c.bridgeheads]
    out["target_bridgeheads"] = list(c.target_bridgeheads)
    out["state"] = c.state.value
    return out


def _group(rg: RoutingGroup) -> dict[str, Any]:
    return {
        "guid": rg.guid,
        "master": rg.master,
        "version": {"major": rg.version.major, "minor": rg.version.minor, "user": rg.version.user},
        "version_guid": rg.version_guid,
        "addresses": {"smtp": rg.smtp_address, "x400": rg.x400_address, "x500": rg.x500_address},
        "members": [
            {
                "guid": m.guid,
                "connected": m.connected,
                "state_flags": m.state_flags,
                "build": m.build,
                "service_status": m.service_status,
            }
            for m in rg.members
        ],
        "connectors": [_connector(c) for c in rg.connectors],
    }


def to_json(obj: Decoded | OrgInfo) -> dict[str, Any]:
    """The JSON form. For a bare `OrgInfo` the frame fields describe its canonical encoding."""
    if isinstance(obj, Decoded):
        org = obj.orginfo
        head: dict[str, Any] = {
            "digest": obj.digest,
            "computed_digest": obj.computed_digest,
            "length": obj.length,
            "warnings": [{"offset": w.offset, "reason": w.reason} for w in obj.warnings],
        }
    else:
        org = obj
        d = canonical_digest(org)
        head = {"digest": d, "computed_digest": d, "length": len(encode(org, d)) - 10, "warnings": []}
    head["routing_groups"] = [_group(rg) for rg in org.routing_groups]
    return head


# ---- JSON -> model ----------------------------------------------------------------------------------------


class _Reader:
    """Typed access to one JSON object, with its path for errors."""

    def __init__(self, obj: Any, path: str, known: frozenset[str]) -> None:
        if not isinstance(obj, dict):
            raise JsonFormError(path, f"expected an object, got {_kind(obj)}")
        unknown = sorted(set(obj) - known)
        if unknown:
            raise JsonFormError(f"{path}.{unknown[0]}", "unknown key")
        self.obj = obj
        self.path = path

    def at(self, key: str) -> str:
        return f"{self.path}.{key}"

    def raw(self, key: str, default: Any = ...) -> Any:
        if key not in self.obj:
            if default is ...:
                raise JsonFormError(self.at(key), "missing key")
            return default
        return self.obj[key]

    def guid(self, key: str, default: Any = ...) -> str:
        return _guid(self.raw(key, default), self.at(key))

    def num(self, key: str, default: Any = ...) -> int:
        return _uint(self.raw(key, default), self.at(key))

    def text(self, key: str, default: Any = ...) -> str:
        return _str(self.raw(key, default), self.at(key))

    def flag(self, key: str, default: Any = ...) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise JsonFormError(self.at(key), f"expected true or false, got {_kind(value)}")
        return value

    def limit(self, key: str) -> int | None:
        value = self.raw(key, None)
        if value is None:
            return None
        n = _uint(value, self.at(key))
        if n >= UNLIMITED:
            raise JsonFormError(self.at(key), f"must be null (unlimited) or below {UNLIMITED}, got {n}")
        return n

    def items(self, key: str) -> list[tuple[Any, str]]:
        value = self.raw(key, [])
        if not isinstance(value, list):
            raise JsonFormError(self.at(key), f"expected a list, got {_kind(value)}")
        return [(item, f"{self.at(key)}[{i}]") for i, item in enumerate(value)]

    def texts(self, key: str) -> tuple[str, ...]:
        return tuple(_str(item, path) for item, path in self.items(key))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list"}.get(
        type(value), "an object"
    )


def _guid(value: Any, path: str) -> str:
    if not isinstance(value, str) or not _GUID.fullmatch(value.lower()):
        raise JsonFormError(path, f"expected a GUID (32 hex digits), got {value!r}")
    return value.lower()


def _uint(value: Any, path: str) -> int:
    if type(value) is not int or value < 0:
        raise JsonFormError(path, f"expected a non-negative integer, got {value!r}")
    if value >= 2**64:
        raise JsonFormError(path, f"integer too large (at most 16 hex digits on the wire), got {value}")
    return value


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise JsonFormError(path, f"expected a string, got {_kind(value)}")
    if _FORBIDDEN.search(value):
        raise JsonFormError(path, "string may not contain CR, LF or NUL")
    try:
        value.encode("utf-8", "surrogateescape")
    except UnicodeError:
        raise JsonFormError(path, "string is not encodable as UTF-8") from None
    return value


def _enum(value: Any, path: str, kind: type[BridgeheadState] | type[ConnectorState]) -> Any:
    if not isinstance(value, str):
        raise JsonFormError(path, f"expected a string, got {_kind(value)}")
    name = value.upper()
    if kind is BridgeheadState and name.startswith("VS_"):
        name = name[3:]
    try:
        return kind(name)
    except ValueError:
        allowed = ", ".join(e.value for e in kind)
        raise JsonFormError(path, f"expected one of {allowed}, got {value!r}") from None


_TOP = frozenset({"digest", "computed_digest", "length", "warnings", "routing_groups"})
_RG = frozenset(
    {"guid", "master", "version", "version_guid", "addresses", "members", "connectors"}
)
_VERSION = frozenset({"major", "minor", "user"})
_ADDRESSES = frozenset({"smtp", "x400", "x500"})
_MEMBER = frozenset({"guid", "connected", "state_flags", "build", "service_status"})
_CONNECTOR = frozenset(
    {
        "guid", "type", "source_address", "target_address", "dn", "schedule", "scope", "triggered",
        "priority", "max_size", "large_threshold", "no_pf_referrals", "accept_by_default", "accept",
        "reject", "reserved3", "reserved4", "address_spaces", "bridgeheads", "target_bridgeheads", "state",
    }
)  # fmt: skip
_ARROW = frozenset({"type", "address", "cost"})
_BH = frozenset({"guid", "state", "fqdn"})


def _member(obj: Any, path: str) -> Member:
    r = _Reader(obj, path, _MEMBER)
    return Member(
        guid=r.guid("guid"),
        connected=r.flag("connected", True),
        state_flags=r.num("state_flags", 1),
        build=r.num("build", 0x1AAE),
        service_status=r.text("service_status", "0701000000000101"),
    )


def _connector_from(obj: Any, path: str) -> Connector:
    r = _Reader(obj, path, _CONNECTOR)
    arrows = []
    for item, p in r.items("address_spaces"):
        a = _Reader(item, p, _ARROW)
        arrows.append(AddressSpace(a.text("type"), a.text("address"), a.num("cost")))
    bhs = []
    for item, p in r.items("bridgeheads"):
        b = _Reader(item, p, _BH)
        bhs.append(Bridgehead(b.guid("guid"), _enum(b.raw("state"), b.at("state"), BridgeheadState), b.text("fqdn")))
    _unique([(b.guid, p) for b, (_, p) in zip(bhs, r.items("bridgeheads"), strict=True)], "bridgehead")
    return Connector(
        guid=r.guid("guid"),
        type=r.text("type", "SMTP"),
        source_address=r.text("source_address", ""),
        target_address=r.text("target_address", ""),
        dn=r.text("dn", ""),
        schedule=r.num("schedule", 0),
        scope=r.num("scope", 0),
        triggered=r.num("triggered", 0),
        priority=r.num("priority", 0),
        max_size=r.limit("max_size"),
        large_threshold=r.limit("large_threshold"),
        no_pf_referrals=r.num("no_pf_referrals", 0),
        accept_by_default=r.num("accept_by_default", 1),
        accept=r.texts("accept"),
        reject=r.texts("reject"),
        reserved3=r.texts("reserved3"),
        reserved4=r.texts("reserved4"),
        address_spaces=tuple(arrows),
        bridgeheads=tuple(bhs),
        target_bridgeheads=r.texts("target_bridgeheads"),
        state=_enum(r.raw("state", "UP"), r.at("state"), ConnectorState),
    )


def _unique(guids: list[tuple[str, str]], what: str) -> None:
    seen: set[str] = set()
    for guid, path in guids:
        if guid in seen:
            raise JsonFormError(f"{path}.guid", f"duplicate {what} GUID {guid}")
        seen.add(guid)


def _group_from(obj: Any, path: str) -> RoutingGroup:
    r = _Reader(obj, path, _RG)
    v = _Reader(r.raw("version", {}), r.at("version"), _VERSION)
    a = _Reader(r.raw("addresses", {}), r.at("addresses"), _ADDRESSES)
    members = [_member(item, p) for item, p in r.items("members")]
    _unique([(m.guid, p) for m, (_, p) in zip(members, r.items("members"), strict=True)], "member")
    conns = [_connector_from(item, p) for item, p in r.items("connectors")]
    _unique([(c.guid, p) for c, (_, p) in zip(conns, r.items("connectors"), strict=True)], "connector")
    return RoutingGroup(
        guid=r.guid("guid"),
        master=r.guid("master"),
        version=Version(v.num("major", 0), v.num("minor", 0), v.num("user", 0)),
        version_guid=r.guid("version_guid", "0" * 32),
        smtp_address=a.text("smtp", ""),
        x400_address=a.text("x400", ""),
        x500_address=a.text("x500", ""),
        members=tuple(members),
        connectors=tuple(conns),
    )


def from_json(obj: Any) -> OrgInfo:
    """The table described by `obj` (the `to_json` layout; frame fields are ignored). Missing optional
    fields take the model's defaults; unknown keys, wrong types, bad GUIDs, duplicate GUIDs, negative or
    oversized numbers and strings holding CR/LF/NUL raise `JsonFormError` naming the path."""
    r = _Reader(obj, "$", _TOP)
    groups = [_group_from(item, p) for item, p in r.items("routing_groups")]
    _unique([(g.guid, p) for g, (_, p) in zip(groups, r.items("routing_groups"), strict=True)], "routing group")
    return OrgInfo(tuple(groups))


def carried_digest(obj: Any) -> str | None:
    """The `digest` field of a JSON form (the digest a frame carried), or None if absent."""
    r = _Reader(obj, "$", _TOP)
    value = r.raw("digest", None)
    return None if value is None else _guid(value, "$.digest")
