"""The directory: an organization's topology, loaded and validated from TOML (requirements G30, DECISIONS §5).

Owns: the frozen directory model (`Topology`, `RoutingGroupSpec`, `ServerSpec`, `ConnectorSpec`,
`Settings`, ...), the TOML parser `parse_topology(text, source, read_file=...)`, and every validation rule. It
reads no file: the caller hands it the text, and a `read_file` for the files the text names (`secret_file`);
linkstate.service.topofile reads both from disk. A file with any problem raises one `TopologyError` listing
**all** of them, each with its key path (`connectors[3].cost`, indices from 0) and, where it can be found, its
line.

GUIDs (DECISIONS §5): every object's GUID is
`uuid.uuid5(uuid.NAMESPACE_OID, f"linkstate:{org}:{kind}:{name}").hex` unless the file gives one (32 hex
digits or the hyphenated form; stored as 32 lowercase hex). Kinds: `routing_group`, `server`, `connector`,
`vs` (a server's SMTP virtual server = its bridgehead GUID) and `version`
(`derive_guid(org, "version", f"{rg}:{epoch}")`, the default version GUID of a group's section).
Every node derives the same GUIDs from the same file.

Invariants: a `Topology` that exists is valid: names and GUIDs are unique per kind, every reference resolves,
every group has exactly one master inside it, costs are 1..100, connectors obey R6/R48 (`_check_connector`).
May import: the standard library (tomllib, uuid, re) and proto.link2state (the chunk-size bound).
"""

from __future__ import annotations

import errno
import ipaddress
import re
import tomllib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from proto.codec import DEFAULT_LIMITS
from proto.link2state import MAX_CHUNK_RAW

FileReader = Callable[[str], bytes]  # the bytes of a file a topology names; raises OSError
_T = TypeVar("_T")

Guid = str

CONNECTOR_TYPES = ("routing_group", "smtp", "x400")
SCOPES = ("organization", "routing_group")
PRIORITIES = ("high", "normal", "low")
LEAF_RULES = ("general", "seed")
EXCHANGES = ("delta", "full")  # `exchange`: our extensions when the peer has them too, or the seed's exchange only
DEFAULT_EXCHANGE = "delta"  # (the test suite can run with "full": `pytest --exchange full`, tests/conftest.py)
ADDRESS_TYPES = ("SMTP", "X400", "X500")
DEFAULT_ADMIN_GROUP = "First Administrative Group"

_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
_HYPHENATED = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_SMTP_SPACE = re.compile(rf"\*|\*\.{_DOMAIN.pattern}|{_DOMAIN.pattern}")
_SMART_HOST = re.compile(rf"(\[\d{{1,3}}(?:\.\d{{1,3}}){{3}}\]|{_LABEL}(?:\.{_LABEL})+)(?::(\d{{1,5}}))?")
DEFAULT_NEXT_HOP_PORTS = {"smtp": 25, "x400": 102}  # SMTP; X.400 over TCP (RFC 1006)
_BAD_CHARS = re.compile(r"[\r\n\x00]")
_TOML_LINE = re.compile(r"at line (\d+)")


# --------------------------------------------------------------------------------------------------- problems


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a topology: where (key path, line if known) and what."""

    path: str
    message: str
    line: int | None = None

    def format(self, source: str = "") -> str:
        where = f"{source}:{self.line}: " if source and self.line else (f"{source}: " if source else "")
        key = f"{self.path}: " if self.path else ""
        return f"{where}{key}{self.message}"


class TopologyError(Exception):
    """A topology file with problems; `problems` lists every one, in file order where known."""

    def __init__(self, problems: list[Problem], source: str = "") -> None:
        self.problems = problems
        self.source = source
        super().__init__("\n".join(p.format(source) for p in problems))


class TopologyUnreadable(TopologyError):
    """The file itself could not be read: one problem whose message names the file (`cannot read F: why`)."""

    def __init__(self, message: str, source: str) -> None:
        super().__init__([Problem("", message)], source)
        self.message = message


EMPTY_TOPOLOGY = "the file is empty: a topology needs [organization], [[routing_groups]] and [[servers]]"


# --------------------------------------------------------------------------------------------------- model


def derive_guid(org: str, kind: str, name: str) -> Guid:
    """The GUID every node derives for an object (module docstring)."""
    return uuid.uuid5(uuid.NAMESPACE_OID, f"linkstate:{org}:{kind}:{name}").hex


def hyphenated(guid: Guid) -> str:
    """`A2A0F896-D197-B849-9955-7850AC796258` from the compact form (no byte swapping, G6)."""
    return str(uuid.UUID(hex=guid)).upper()


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Timers and switches (seconds unscaled; `scaled()` divides by `time_scale`)."""

    poll_interval: float = 300
    state_delay: float = 600
    attach_timeout: float = 30
    reconnect_min: float = 1
    reconnect_max: float = 60
    smtp_command_timeout: float = 60
    master_settle: float = 300
    bh_probe_interval: float = 60
    bh_fail_threshold: int = 3
    chunk_raw_bytes: int = MAX_CHUNK_RAW  # the most raw bytes a 1,024-byte X-LINK2STATE line can carry (993)
    check_connector_restrictions: bool = False
    compat_e2k: bool = False
    exchange: str = "delta"  # EXCHANGES; "full" (or compat_e2k) keeps the seed's exchange byte for byte
    leaf_rule: str = "general"
    time_scale: float = 1.0
    # Resource bounds against hostile peers (docs/SECURITY.md); sizes in bytes, none of them scaled.
    max_table_bytes: int = 4 * 1024 * 1024  # the table a node merges into (and the largest frame it decodes)
    max_unknown_sections: int = 256  # sections of groups the directory does not know (tombstones included) ...
    max_unknown_bytes: int = 1024 * 1024  # ... and their encoded bytes
    max_version_jump: int = 1 << 32  # a received major may exceed the one held by at most this much
    max_output_bytes: int = 8 * 1024 * 1024  # unwritten output per connection before the peer is dropped
    max_connections: int = 256  # per protocol (691, SMTP)
    max_unauthenticated: int = 192  # per protocol; the rest of max_connections is kept for authenticated peers
    max_per_address: int = 16  # unauthenticated connections per source address and protocol
    connection_rate: float = 20.0  # new connections per second per source address, after a burst of ...
    connection_burst: int = 64
    unknown_address_rate: float = 200.0  # ... and from all addresses that have not authenticated lately, together
    unknown_address_burst: int = 400
    dump_rate: float = 2.0  # DUMP answers per second per connection, after a burst of dump_burst
    dump_burst: int = 8

    @property
    def delta(self) -> bool:
        """Whether this node offers and uses the negotiated extensions (pipelined chunks, section-level delta,
        docs/PROTOCOL.md §2.5 and §3.11): `exchange = "delta"` and not `compat_e2k`."""
        return self.exchange == "delta" and not self.compat_e2k

    def scaled(self, name: str) -> float:
        """A timer in real seconds: its configured value divided by `time_scale`."""
        if name not in _TIMERS:
            raise KeyError(f"not a timer setting: {name}")
        return float(getattr(self, name)) / self.time_scale

    def backoff(self, attempt: int, cap: str, draw: float) -> float:
        """The delay before retry number `attempt` (from 0): `reconnect_min` doubling up to the timer `cap`, times a
        jitter factor in [0.5, 1) from `draw` in [0, 1). Shared by members reconnecting to their master and
        bridgeheads retrying a remote bridgehead; the exponent is bounded, so no number of failures overflows."""
        base: float = min(self.scaled(cap), self.scaled("reconnect_min") * float(2 ** min(max(attempt, 0), 30)))
        return base * (0.5 + 0.5 * draw)


_TIMERS = frozenset(
    {
        "poll_interval",
        "state_delay",
        "attach_timeout",
        "reconnect_min",
        "reconnect_max",
        "smtp_command_timeout",
        "master_settle",
        "bh_probe_interval",
    }
)


@dataclass(frozen=True, slots=True)
class AddressSpaceSpec:
    type: str  # SMTP, X400, X500 (upper case)
    address: str
    cost: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Restrictions:
    """Delivery (R14) and content (R16) restrictions of a connector."""

    accept_by_default: bool = True
    accept: tuple[str, ...] = ()
    reject: tuple[str, ...] = ()
    max_size_kb: int | None = None
    allowed_priorities: tuple[str, ...] = PRIORITIES


METRICS_PORT_OFFSET = 20000


def default_metrics_port(port_691: int) -> int:
    """The metrics port of a server whose entry names none: its 691 port + 20000 (691 -> 20691; the dev ports
    `cluster up` picks, 6910+n -> 26910+n), or - 20000 when that would pass 65535. A local cluster's dev ports
    are 2525+n (SMTP) and 6910+n (691), below 11295 for any cluster whose dev ports do not collide themselves
    (fewer than 4385 servers), while derived metrics ports start at 20691: they never meet."""
    port = port_691 + METRICS_PORT_OFFSET
    return port if port <= 65535 else port_691 - METRICS_PORT_OFFSET


@dataclass(frozen=True, slots=True)
class RoutingGroupSpec:
    name: str
    guid: Guid
    master: str  # server name


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSpec:
    name: str
    guid: Guid
    routing_group: str
    vs_guid: Guid
    fqdn: str
    address: str | None = None
    port_691: int | None = None
    port_smtp: int | None = None
    metrics_port: int | None = None
    suppress_state_changes: bool = False
    legacy: bool = False

    def metrics(self, port_691: int | None = None) -> int:
        """The port of this server's /metrics and /health: `metrics_port`, else derived from the 691 port it
        listens on (`port_691`, default its own or 691): see `default_metrics_port`."""
        if self.metrics_port is not None:
            return self.metrics_port
        return default_metrics_port(port_691 if port_691 is not None else (self.port_691 or 691))


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectorSpec:
    name: str
    guid: Guid
    type: str  # routing_group | smtp | x400
    routing_group: str
    cost: int
    connected_routing_group: str | None = None
    source_bridgeheads: tuple[str, ...] = ()  # empty = "any local server" (RGC only)
    remote_bridgeheads: tuple[str, ...] = ()
    address_spaces: tuple[AddressSpaceSpec, ...] = ()
    scope: str = "organization"
    restrictions: Restrictions = field(default_factory=Restrictions)
    no_pf_referrals: bool = False
    dns_routed: bool = False
    smart_host: str | None = None  # smtp: the smart host; x400: the next-hop MTA. FQDN or [IPv4], optional :port
    legacy: bool = False

    @property
    def any_local_server(self) -> bool:
        return not self.source_bridgeheads

    @property
    def next_hop(self) -> tuple[str, int] | None:
        """(host, port) the source bridgeheads send through and probe: the smart host or next-hop MTA (G40)."""
        m = _SMART_HOST.fullmatch(self.smart_host or "")
        if m is None:
            return None
        port = int(m.group(2)) if m.group(2) else DEFAULT_NEXT_HOP_PORTS.get(self.type, 25)
        return m.group(1).strip("[]"), port


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """A distribution group: its DN and members (server/user DNs or names of other groups)."""

    name: str
    dn: str
    members: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Topology:
    """A validated organization. Lookups raise `KeyError` on unknown names."""

    organization: str
    admin_group: str
    domain: str | None
    settings: Settings
    routing_groups: tuple[RoutingGroupSpec, ...]
    servers: tuple[ServerSpec, ...]
    connectors: tuple[ConnectorSpec, ...]
    groups: tuple[GroupSpec, ...] = ()
    secret: bytes = field(default=b"", repr=False)
    source: str = ""
    _index: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False, compare=False, hash=False)
    _derived: dict[str, object] = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        idx: dict[str, dict[str, Any]] = {}
        for kind, items in (("rg", self.routing_groups), ("server", self.servers), ("conn", self.connectors)):
            idx[kind] = {i.name: i for i in items}
            idx[kind + "_guid"] = {i.guid: i for i in items}
        idx["vs"] = {s.vs_guid: s for s in self.servers}
        idx["group"] = {g.name: g for g in self.groups}
        self._index.update(idx)

    def derived(self, key: str, build: Callable[[Topology], _T]) -> _T:
        """`build(self)`, computed once and kept with this topology: a value that depends on the directory alone
        (the initial link-state table) lives exactly as long as the directory it was built from."""
        if key not in self._derived:
            self._derived[key] = build(self)
        return cast(_T, self._derived[key])

    # by name / GUID
    def routing_group(self, name: str) -> RoutingGroupSpec:
        return self._get("rg", name)  # type: ignore[no-any-return]

    def server(self, name: str) -> ServerSpec:
        return self._get("server", name)  # type: ignore[no-any-return]

    def connector(self, name: str) -> ConnectorSpec:
        return self._get("conn", name)  # type: ignore[no-any-return]

    def routing_group_by_guid(self, guid: Guid) -> RoutingGroupSpec | None:
        return self._index["rg_guid"].get(guid)

    def server_by_guid(self, guid: Guid) -> ServerSpec | None:
        return self._index["server_guid"].get(guid) or self._index["vs"].get(guid)

    def connector_by_guid(self, guid: Guid) -> ConnectorSpec | None:
        return self._index["conn_guid"].get(guid)

    def group(self, name: str) -> GroupSpec | None:
        return self._index["group"].get(name)

    def _get(self, kind: str, name: str) -> Any:
        try:
            return self._index[kind][name]
        except KeyError:
            label = {"rg": "routing group", "server": "server", "conn": "connector"}[kind]
            raise KeyError(f"unknown {label} {name!r}") from None

    # relations
    def servers_in(self, rg: str) -> tuple[ServerSpec, ...]:
        return tuple(s for s in self.servers if s.routing_group == rg)

    def master_of(self, rg: str) -> ServerSpec:
        return self.server(self.routing_group(rg).master)

    def connectors_from(self, rg: str) -> tuple[ConnectorSpec, ...]:
        return tuple(c for c in self.connectors if c.routing_group == rg)

    def connectors_to(self, rg: str) -> tuple[ConnectorSpec, ...]:
        return tuple(c for c in self.connectors if c.connected_routing_group == rg)

    def bridgehead_of(self, server: str) -> Guid:
        """The bridgehead (SMTP virtual server) GUID of a server."""
        return self.server(server).vs_guid

    def is_master(self, server: str) -> bool:
        return self.routing_group(self.server(server).routing_group).master == server

    def group_of(self, server: str) -> RoutingGroupSpec:
        return self.routing_group(self.server(server).routing_group)

    def version_guid(self, rg: str, epoch: int = 0) -> Guid:
        return derive_guid(self.organization, "version", f"{rg}:{epoch}")

    def resolve_dn(self, entry: str) -> str:
        """A restriction entry: a group name becomes its DN, anything else is already a DN."""
        g = self.group(entry)
        return g.dn if g else entry

    def memberships(self, dn: str) -> frozenset[str]:
        """`dn` plus the DNs of every group containing it, directly or through nested groups (lower case)."""
        found = {dn.lower()}
        changed = True
        while changed:
            changed = False
            for g in self.groups:
                key = g.dn.lower()
                if key not in found and any(self.resolve_dn(m).lower() in found for m in g.members):
                    found.add(key)
                    changed = True
        return frozenset(found)


# --------------------------------------------------------------------------------------------------- reader


class _Table:
    """Typed access to one TOML table; records problems and unknown keys under a key path."""

    def __init__(self, data: Any, path: str, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems
        self.ok = isinstance(data, dict)
        self.data: dict[str, Any] = data if isinstance(data, dict) else {}
        self.seen: set[str] = set()
        if not self.ok:
            self.error("", f"must be a table, got {_tname(data)}")

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, message: str) -> None:
        self.problems.append(Problem(self.key(name) if name else self.path, message))

    def raw(self, name: str) -> Any:
        self.seen.add(name)
        return self.data.get(name)

    def get(self, name: str, kind: type, default: Any = None, *, required: bool = False) -> Any:
        value = self.raw(name)
        if value is None:
            if required:
                self.error(name, "is required")
            return default
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.error(name, f"must be {_KIND_NAMES.get(kind, kind.__name__)}, got {_tname(value)}")
            return default
        if isinstance(value, str) and _BAD_CHARS.search(value):
            self.error(name, "may not contain CR, LF or NUL")
            return default
        return value

    def text(self, name: str, default: str | None = None, *, required: bool = False) -> Any:
        value = self.get(name, str, default, required=required)
        if value == "" and required:
            self.error(name, "may not be empty")
            return default
        return value

    def choice(self, name: str, options: tuple[str, ...], default: str) -> str:
        value = self.get(name, str, default)
        if value not in options:
            self.error(name, f"must be one of {', '.join(options)}, got {value!r}")
            return default
        return str(value)

    def int_range(self, name: str, lo: int, hi: int, default: int | None, *, required: bool = False) -> Any:
        value = self.get(name, int, default, required=required)
        if isinstance(value, int) and not lo <= value <= hi:
            self.error(name, f"must be between {lo} and {hi}, got {value}")
            return default
        return value

    def strings(self, name: str) -> tuple[str, ...]:
        value = self.get(name, list, [])
        out: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item or _BAD_CHARS.search(item):
                self.error(f"{name}[{i}]", f"must be a non-empty string without CR/LF/NUL, got {item!r}")
            else:
                out.append(item)
        return tuple(out)

    def tables(self, name: str) -> Iterator[_Table]:
        value = self.get(name, list, [])
        for i, item in enumerate(value):
            yield _Table(item, f"{self.key(name)}[{i}]", self.problems)

    def finish(self, allowed: frozenset[str] | None = None) -> None:
        known = self.seen if allowed is None else allowed
        for name in self.data:
            if name not in known:
                self.error(name, "unknown key")


_KIND_NAMES: dict[type, str] = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
                                list: "an array", dict: "a table"}  # fmt: skip


def _tname(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}
    return names.get(type(value), type(value).__name__)


def _guid_value(t: _Table, name: str, default: Guid) -> Guid:
    value = t.get(name, str)
    if value is None:
        return default
    if _HEX32.fullmatch(value) or _HYPHENATED.fullmatch(value):
        return str(value).replace("-", "").lower()
    t.error(name, f"is not a GUID (32 hex digits or the hyphenated form): {value!r}")
    return default


# --------------------------------------------------------------------------------------------------- sections


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _read_org(root: _Table, read_file: FileReader | None) -> tuple[str, str, str | None, bytes]:
    if root.raw("organization") is None:
        root.problems.append(Problem("organization", "the [organization] table is required"))
        return "Example", DEFAULT_ADMIN_GROUP, None, b""
    org = _Table(root.raw("organization"), "organization", root.problems)
    name = org.text("name", "Example", required=True)
    admin = org.text("admin_group", DEFAULT_ADMIN_GROUP)
    domain = org.text("domain")
    if domain is not None and not _DOMAIN.fullmatch(domain):
        org.error("domain", f"is not a domain name: {domain!r}")
    secret = _read_secret(org, read_file)
    org.finish()
    return name, admin, domain, secret


def _read_secret(org: _Table, read_file: FileReader | None) -> bytes:
    inline = org.text("secret")
    path = org.text("secret_file")
    if inline is not None and path is not None:
        org.error("secret", "give either secret or secret_file, not both")
    if inline is not None:
        return str(inline).encode()
    if path is None:
        org.error("secret_file", "is required (or an inline secret)")
        return b""
    if read_file is None:
        org.error("secret_file", f"cannot read {path}: this topology was given as text, without its files")
        return b""
    try:
        data: bytes = read_file(str(path)).strip()
    except OSError as exc:
        org.error("secret_file", f"cannot read {path}: {file_error(exc)}")
        return b""
    if not data:
        org.error("secret_file", f"{path} is empty")
    return data


_SETTING_RANGES: dict[str, tuple[float, float]] = {
    "poll_interval": (0.001, 86400),
    "state_delay": (0, 86400),
    "attach_timeout": (0.001, 3600),
    "reconnect_min": (0.001, 3600),
    "reconnect_max": (0.001, 86400),
    "smtp_command_timeout": (0.001, 3600),
    "master_settle": (0, 86400),
    "bh_probe_interval": (0.001, 86400),
    "time_scale": (1e-6, 1e6),
}


def _read_settings(root: _Table) -> Settings:
    t = _Table(root.raw("settings") or {}, "settings", root.problems)
    values: dict[str, Any] = {}
    for name, (lo, hi) in _SETTING_RANGES.items():
        v = t.get(name, float)
        if v is not None and not lo <= v <= hi:
            t.error(name, f"must be between {lo:g} and {hi:g} seconds, got {v:g}")
        elif v is not None:
            values[name] = v
    values["bh_fail_threshold"] = t.int_range("bh_fail_threshold", 1, 1000, 3)
    values["chunk_raw_bytes"] = t.int_range("chunk_raw_bytes", 64, MAX_CHUNK_RAW, MAX_CHUNK_RAW)
    for flag in ("check_connector_restrictions", "compat_e2k"):
        values[flag] = t.get(flag, bool, False)
    values["leaf_rule"] = t.choice("leaf_rule", LEAF_RULES, "general")
    values["exchange"] = t.choice("exchange", EXCHANGES, DEFAULT_EXCHANGE)
    values.setdefault("master_settle", values.get("poll_interval", 300.0))
    _read_bounds(t, values)
    t.finish()
    s = Settings(**values)
    if s.reconnect_min > s.reconnect_max:
        t.error("reconnect_min", f"must not exceed reconnect_max ({s.reconnect_max:g})")
    for name, problem in _bound_problems(s):
        t.error(name, problem)
    return s


_MIB = 1024 * 1024
MAX_DECODE_FRAME = DEFAULT_LIMITS.max_frame  # what every node's decoder accepts at most (docs/PROTOCOL.md §1.4)
_BOUND_RANGES: dict[str, tuple[int, int]] = {
    "max_table_bytes": (64 * 1024, MAX_DECODE_FRAME),
    "max_unknown_sections": (0, 100_000),
    "max_unknown_bytes": (0, MAX_DECODE_FRAME),
    "max_version_jump": (1, 1 << 63),
    "max_output_bytes": (128 * 1024, 1024 * _MIB),
    "max_connections": (2, 65_536),
    "max_unauthenticated": (1, 65_535),
    "max_per_address": (1, 65_535),
    "connection_burst": (1, 1_000_000),
    "unknown_address_burst": (1, 1_000_000),
    "dump_burst": (1, 10_000),
}
_RATE_RANGES: dict[str, tuple[float, float]] = {
    "dump_rate": (0.001, 10_000),
    "connection_rate": (0.001, 1_000_000),
    "unknown_address_rate": (0.001, 1_000_000),
}


def _read_bounds(t: _Table, values: dict[str, Any]) -> None:
    defaults = Settings()
    for name, (lo, hi) in _BOUND_RANGES.items():
        values[name] = t.int_range(name, lo, hi, getattr(defaults, name))
    for name, (flo, fhi) in _RATE_RANGES.items():
        rate = t.get(name, float)
        if rate is not None and not flo <= rate <= fhi:
            t.error(name, f"must be between {flo:g} and {fhi:g} per second, got {rate:g}")
        elif rate is not None:
            values[name] = float(rate)


def _bound_problems(s: Settings) -> Iterator[tuple[str, str]]:
    """Bounds that only make sense together (docs/SECURITY.md)."""
    if s.max_output_bytes < 2 * s.max_table_bytes:
        yield "max_output_bytes", f"must be at least twice max_table_bytes ({2 * s.max_table_bytes})"
    if s.max_unknown_bytes > s.max_table_bytes // 2:
        yield "max_unknown_bytes", f"must not exceed half of max_table_bytes ({s.max_table_bytes // 2})"
    if s.max_unauthenticated >= s.max_connections:
        reserve = "the rest is the reserve for authenticated peers"
        yield "max_unauthenticated", f"must be below max_connections ({s.max_connections}): {reserve}"
    if s.max_per_address > s.max_unauthenticated:
        yield "max_per_address", f"must not exceed max_unauthenticated ({s.max_unauthenticated})"


def _read_routing_groups(root: _Table, org: str) -> list[tuple[RoutingGroupSpec, str]]:
    out = []
    for t in root.tables("routing_groups"):
        name = t.text("name", required=True)
        master = t.text("master", required=True)
        guid = _guid_value(t, "guid", derive_guid(org, "routing_group", name or ""))
        t.finish()
        if t.ok and name:
            out.append((RoutingGroupSpec(name, guid, master or ""), t.path))
    return out


def _read_servers(root: _Table, org: str, domain: str | None) -> list[tuple[ServerSpec, str]]:
    out = []
    for t in root.tables("servers"):
        name = t.text("name", required=True) or ""
        rg = t.text("routing_group", required=True) or ""
        address = t.text("address")
        if address is not None and not _is_ipv4(address):
            t.error("address", f"is not an IPv4 address (four numbers 0-255, e.g. 127.0.1.1): {address!r}")
        fqdn = t.text("fqdn") or (f"{name}.{domain}" if domain else name)
        if not _DOMAIN.fullmatch(fqdn) and name:
            t.error("fqdn", f"is not a host name: {fqdn!r}")
        spec = ServerSpec(
            name=name,
            guid=_guid_value(t, "guid", derive_guid(org, "server", name)),
            routing_group=rg,
            vs_guid=_guid_value(t, "vs_guid", derive_guid(org, "vs", name)),
            fqdn=fqdn,
            address=address,
            port_691=t.int_range("port_691", 1, 65535, None),
            port_smtp=t.int_range("port_smtp", 1, 65535, None),
            metrics_port=t.int_range("metrics_port", 1, 65535, None),
            suppress_state_changes=t.get("suppress_state_changes", bool, False),
            legacy=t.get("legacy", bool, False),
        )
        t.finish()
        if t.ok and name:
            out.append((spec, t.path))
    return out


def _read_address_spaces(t: _Table) -> tuple[AddressSpaceSpec, ...]:
    out = []
    for a in t.tables("address_spaces"):
        kind = str(a.text("type", "SMTP")).upper()
        address = a.text("address", required=True)
        cost = a.int_range("cost", 1, 100, 1)
        a.finish()
        if kind not in ADDRESS_TYPES:
            a.error("type", f"must be one of {', '.join(ADDRESS_TYPES)}, got {kind!r}")
        elif address is not None and not _ADDRESS_CHECKS[kind](address):
            a.error("address", f"is not a valid {kind} address space: {address!r}")
        elif a.ok and address is not None:
            out.append(AddressSpaceSpec(kind, address.lower() if kind == "SMTP" else address, cost))
    return tuple(out)


_ADDRESS_CHECKS: dict[str, Callable[[str], bool]] = {
    "SMTP": lambda a: bool(_SMTP_SPACE.fullmatch(a)),
    "X400": lambda a: "=" in a and " " not in a.strip() and not a.startswith(";"),
    "X500": lambda a: a.startswith("/") and len(a) > 1,
}


def _read_restrictions(t: _Table) -> Restrictions:
    prios = t.strings("allowed_priorities") if "allowed_priorities" in t.data else PRIORITIES
    for i, p in enumerate(prios):
        if p not in PRIORITIES:
            t.error(f"allowed_priorities[{i}]", f"must be one of {', '.join(PRIORITIES)}, got {p!r}")
    return Restrictions(
        accept_by_default=t.get("accept_by_default", bool, True),
        accept=t.strings("accept"),
        reject=t.strings("reject"),
        max_size_kb=t.int_range("max_size_kb", 1, 0xFFFFFFFE // 1024, None),
        allowed_priorities=tuple(p for p in PRIORITIES if p in prios),
    )


def _read_connectors(root: _Table, org: str) -> list[tuple[ConnectorSpec, str]]:
    out = []
    for t in root.tables("connectors"):
        name = t.text("name", required=True) or ""
        dns = t.get("dns_routed", bool, False)
        smart = t.text("smart_host")
        hop = _SMART_HOST.fullmatch(smart) if smart is not None else None
        if smart is not None and (hop is None or (hop.group(2) is not None and not 0 < int(hop.group(2)) < 65536)):
            t.error("smart_host", f"must be an FQDN or [IP], with an optional :port (1-65535), got {smart!r}")
        spec = ConnectorSpec(
            name=name,
            guid=_guid_value(t, "guid", derive_guid(org, "connector", name)),
            type=t.choice("type", CONNECTOR_TYPES, "routing_group"),
            routing_group=t.text("routing_group", "", required=True),
            cost=t.int_range("cost", 1, 100, 1, required=True),
            connected_routing_group=t.text("connected_routing_group"),
            source_bridgeheads=t.strings("source_bridgeheads"),
            remote_bridgeheads=t.strings("remote_bridgeheads"),
            address_spaces=_read_address_spaces(t),
            scope=t.choice("scope", SCOPES, "organization"),
            restrictions=_read_restrictions(t),
            no_pf_referrals=t.get("no_pf_referrals", bool, False),
            dns_routed=dns,
            smart_host=smart,
            legacy=t.get("legacy", bool, False),
        )
        t.finish()
        if t.ok and name:
            out.append((spec, t.path))
    return out


def _read_groups(root: _Table, org: str) -> list[tuple[GroupSpec, str]]:
    out = []
    for t in root.tables("groups"):
        name = t.text("name", required=True) or ""
        dn = t.text("dn") or f"CN={name},CN=Users,O={org}"
        spec = GroupSpec(name, dn, t.strings("members"))
        t.finish()
        if t.ok and name:
            out.append((spec, t.path))
    return out


# --------------------------------------------------------------------------------------------------- checks


def _unique(items: list[tuple[Any, str]], attr: str, kind: str, problems: list[Problem]) -> None:
    seen: dict[str, str] = {}
    for item, path in items:
        value = getattr(item, attr)
        if value in seen:
            problems.append(Problem(f"{path}.{attr}", f"duplicate {kind} {attr} {value!r} (also {seen[value]})"))
        else:
            seen[value] = path


def _check_groups(rgs: list[tuple[RoutingGroupSpec, str]], servers: dict[str, ServerSpec], p: list[Problem]) -> None:
    for rg, path in rgs:
        srv = servers.get(rg.master)
        if not rg.master:
            continue  # already reported: a group without a master
        if srv is None:
            p.append(Problem(f"{path}.master", f"unknown server {rg.master!r}"))
        elif srv.routing_group != rg.name:
            p.append(Problem(f"{path}.master", f"{rg.master!r} is in {srv.routing_group!r}, not in this group"))


def _check_servers(srv: list[tuple[ServerSpec, str]], rg_names: set[str], p: list[Problem]) -> None:
    for s, path in srv:
        if s.routing_group and s.routing_group not in rg_names:
            p.append(Problem(f"{path}.routing_group", f"unknown routing group {s.routing_group!r}"))
        own = {"port_691": s.port_691 or 691, "port_smtp": s.port_smtp or 25}
        for key, port in own.items():
            if s.metrics() == port:
                where = "metrics_port" if s.metrics_port is not None else "port_691"
                p.append(Problem(f"{path}.{where}", f"the metrics port {port} is also this server's {key}"))


def _check_bridgeheads(
    c: ConnectorSpec, path: str, servers: dict[str, ServerSpec], rg_names: set[str], p: list[Problem]
) -> None:
    for key, names, group in (
        ("source_bridgeheads", c.source_bridgeheads, c.routing_group),
        ("remote_bridgeheads", c.remote_bridgeheads, c.connected_routing_group),
    ):
        for i, n in enumerate(names):
            s = servers.get(n)
            if s is None:
                p.append(Problem(f"{path}.{key}[{i}]", f"unknown server {n!r}"))
            elif group is not None and group in rg_names and s.routing_group != group:
                p.append(Problem(f"{path}.{key}[{i}]", f"{n!r} is in {s.routing_group!r}, not in {group!r}"))
        if len(set(names)) != len(names):
            p.append(Problem(f"{path}.{key}", "lists a server twice"))


def _check_connector(
    c: ConnectorSpec, path: str, servers: dict[str, ServerSpec], rg_names: set[str], p: list[Problem]
) -> None:
    def bad(key: str, msg: str) -> None:
        p.append(Problem(f"{path}.{key}" if key else path, msg))

    if c.routing_group and c.routing_group not in rg_names:
        bad("routing_group", f"unknown routing group {c.routing_group!r}")
    target = c.connected_routing_group
    if target is not None and target not in rg_names:
        bad("connected_routing_group", f"unknown routing group {target!r}")
    if target is not None and target == c.routing_group:
        bad("connected_routing_group", "a connector cannot connect a routing group to itself")
    if target is not None and c.address_spaces:
        bad("address_spaces", "a connector to a routing group may not also have address spaces (R6)")
    if c.type == "routing_group" and target is None:
        bad("connected_routing_group", "is required for a routing_group connector")
    if c.type != "routing_group" and target is None and not c.address_spaces:
        bad("address_spaces", f"a {c.type} connector needs address spaces or a connected_routing_group")
    if c.type != "routing_group" and c.any_local_server:
        bad("source_bridgeheads", f"a {c.type} connector needs explicit source bridgeheads (R48)")
    if c.remote_bridgeheads and target is None:
        bad("remote_bridgeheads", "only a connector to a routing group has remote bridgeheads")
    if c.dns_routed and (c.smart_host or c.type != "smtp"):
        bad("dns_routed", "only an smtp connector without a smart_host can be DNS-routed")
    if c.smart_host and c.type == "routing_group":
        bad("smart_host", "only an smtp connector (its smart host) or an x400 connector (its next-hop MTA) has one")
    _check_bridgeheads(c, path, servers, rg_names, p)


def _check_guids(items: list[tuple[Any, str]], p: list[Problem]) -> None:
    seen: dict[str, str] = {}
    for item, path in items:
        for attr in ("guid", "vs_guid"):
            value = getattr(item, attr, None)
            if value is None:
                continue
            if value in seen:
                p.append(Problem(f"{path}.{attr}", f"duplicate GUID {value} (also {seen[value]})"))
            seen[value] = f"{path}.{attr}"


def _check_restriction_refs(
    conns: list[tuple[ConnectorSpec, str]], groups: list[tuple[GroupSpec, str]], p: list[Problem]
) -> None:
    for g, path in groups:
        for i, m in enumerate(g.members):
            if "=" not in m and m not in {x.name for x, _ in groups}:
                p.append(Problem(f"{path}.members[{i}]", f"neither a DN nor a known group: {m!r}"))
    names = {g.name for g, _ in groups}
    for c, path in conns:
        for key in ("accept", "reject"):
            for i, entry in enumerate(getattr(c.restrictions, key)):
                if "=" not in entry and entry not in names:
                    p.append(Problem(f"{path}.{key}[{i}]", f"neither a DN nor a known group: {entry!r}"))


# --------------------------------------------------------------------------------------------------- loading

_ROOT_KEYS = frozenset({"organization", "settings", "routing_groups", "servers", "connectors", "groups"})


def parse_topology(text: str, source: str = "<topology>", *, read_file: FileReader | None = None) -> Topology:
    """Validate TOML text; `source` names it in errors; `read_file(name)` gives the bytes of a file the text names
    (`secret_file`, relative to the topology's folder: the caller resolves it) or raises OSError."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_LINE.search(str(exc))
        raise TopologyError([Problem("", f"invalid TOML: {exc}", int(m.group(1)) if m else None)], source) from None
    if not data:
        raise TopologyError([Problem("", EMPTY_TOPOLOGY)], source)
    problems: list[Problem] = []
    topo = _build(_Table(data, "", problems), read_file, problems, source)
    if problems or topo is None:
        raise TopologyError(_locate_all(problems, text), source)
    return topo


_FILE_ERRORS = {errno.ENOENT: "no such file", errno.EACCES: "permission denied", errno.EISDIR: "is a directory",
                errno.ENOTDIR: "a folder on the path is a file"}  # fmt: skip


def file_error(exc: OSError) -> str:
    """Why a file could not be read, as the tail of one line: `no such file`, `permission denied`, ..."""
    if exc.errno in _FILE_ERRORS:
        return _FILE_ERRORS[exc.errno]
    return (exc.strerror or str(exc)).rstrip(".").lower()


def _build(root: _Table, read_file: FileReader | None, problems: list[Problem], source: str) -> Topology | None:
    org, admin, domain, secret = _read_org(root, read_file)
    settings = _read_settings(root)
    rgs = _read_routing_groups(root, org)
    srvs = _read_servers(root, org, domain)
    conns = _read_connectors(root, org)
    groups = _read_groups(root, org)
    root.finish(_ROOT_KEYS)
    _validate(rgs, srvs, conns, groups, problems)
    if problems:
        return None
    return Topology(
        organization=org,
        admin_group=admin,
        domain=domain,
        settings=settings,
        routing_groups=tuple(r for r, _ in rgs),
        servers=tuple(s for s, _ in srvs),
        connectors=tuple(c for c, _ in conns),
        groups=tuple(g for g, _ in groups),
        secret=secret,
        source=source,
    )


def _validate(
    rgs: list[tuple[RoutingGroupSpec, str]],
    srvs: list[tuple[ServerSpec, str]],
    conns: list[tuple[ConnectorSpec, str]],
    groups: list[tuple[GroupSpec, str]],
    p: list[Problem],
) -> None:
    for items, kind in ((rgs, "routing group"), (srvs, "server"), (conns, "connector"), (groups, "group")):
        _unique(items, "name", kind, p)
    _check_guids([*rgs, *srvs, *conns], p)
    if not rgs:
        p.append(Problem("routing_groups", "at least one routing group is required"))
    servers = {s.name: s for s, _ in srvs}
    rg_names = {r.name for r, _ in rgs}
    _check_groups(rgs, servers, p)
    _check_servers(srvs, rg_names, p)
    for c, path in conns:
        _check_connector(c, path, servers, rg_names, p)
    _check_restriction_refs(conns, groups, p)


# --------------------------------------------------------------------------------------------------- lines

_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\"-]+)\s*\]\]?")
_PATH_PART = re.compile(r"([A-Za-z0-9_]+)(?:\[(\d+)\])?")


def _locate_all(problems: list[Problem], text: str) -> list[Problem]:
    index = _LineIndex(text.splitlines())
    located = [Problem(p.path, p.message, p.line or index.locate(p.path)) for p in problems]
    return sorted(located, key=lambda p: (p.line is None, p.line or 0))


_KEY = re.compile(r"^\s*([A-Za-z0-9_]+)\s*=")


class _LineIndex:
    """Every `[table]`/`[[table]]` header and the first line of each key under it, from one pass over the file,
    so locating N problems costs N lookups instead of N scans (a file with 10,000 problems used to take 95 s)."""

    def __init__(self, lines: list[str]) -> None:
        self.headers: dict[str, list[int]] = {}  # table name -> line index of each of its headers, in order
        self.keys: dict[int, dict[str, int]] = {}  # header line index -> key -> 1-based line of its first use
        block: dict[str, int] | None = None
        for n, line in enumerate(lines):
            m = _HEADER.match(line)
            if m:
                self.headers.setdefault(m.group(1), []).append(n)
                block = self.keys[n] = {}
            elif block is not None and (k := _KEY.match(line)):
                block.setdefault(k.group(1), n + 1)

    def locate(self, path: str) -> int | None:
        """Best-effort line of a key path: the N-th `[[table]]` header, then the key inside that block."""
        parts = [m.groups() for m in _PATH_PART.finditer(path)]
        if not parts:
            return None
        table, index = parts[0]
        found = self.headers.get(table, [])
        n = int(index) if index is not None else 0
        if n >= len(found):
            return None
        start = found[n]
        if len(parts) < 2:
            return start + 1
        return self.keys[start].get(parts[1][0]) or start + 1


def unknown_master(exc: TopologyError, text: str, group: str) -> str | None:
    """The server a rejected file designates as master of `group` when that server does not exist (R81), else None.

    A node whose directory points its group's master at a deleted object must relinquish (event 958) even though
    the rest of the file is rejected (929); this finds that case among the file's problems.
    """
    for problem in exc.problems:
        m = re.fullmatch(r"routing_groups\[(\d+)\]\.master", problem.path)
        if m is None or not problem.message.startswith("unknown server"):
            continue
        try:
            groups = tomllib.loads(text).get("routing_groups", [])
            entry = groups[int(m.group(1))]
        except (ValueError, IndexError, TypeError, AttributeError, tomllib.TOMLDecodeError):
            return None
        if isinstance(entry, dict) and entry.get("name") == group:
            return str(entry.get("master"))
    return None
