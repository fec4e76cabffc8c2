"""Connection slots of one node: separate budgets per protocol, a reserve for authenticated peers, and bounds per
source address on connections that have not authenticated yet (issue 11, item 4; docs/SECURITY.md).

Owns: `ConnBudget`, the bookkeeping the service consults on every accept: `admit` says whether a new inbound
connection gets a slot and which unauthenticated connection, if any, makes room for it; `authenticated` and
`release` follow a connection's life. Outbound connections (the node's own) are counted but never refused.
First, per source address (all protocols together): at most `connection_burst` new connections at once, then
`connection_rate` per second (a token bucket); and from addresses that have not authenticated to this node lately
(strangers: not among the last MAX_ADDRESSES that did), all of them together, at most `unknown_address_burst`, then
`unknown_address_rate` per second — so a flood from many addresses costs a bounded share of the node while the
peers it knows keep getting in. Beyond either, a connection is refused before it costs anything else.
Then, per protocol (691, SMTP), for an inbound connection from address A:
  1. A already holds `max_per_address` unauthenticated connections: A's oldest one is evicted;
  2. otherwise, when `max_unauthenticated` are held, or all `max_connections` slots are, the oldest
     unauthenticated connection of the address that holds the most of them is evicted (so a crowd's newcomers
     displace the crowd, and a peer with one handshake under way is the last to go);
  3. when all `max_connections` slots would still be held (every one authenticated or the node's own), the new
     connection is refused and nothing is evicted.
So unauthenticated connections never hold more than `max_unauthenticated` slots (the remaining
`max_connections - max_unauthenticated` are kept for authenticated peers), one address never more than
`max_per_address` of them, and a newcomer is never locked out by connections that sit without authenticating: it
takes the place of one that has waited longer (which the absolute authentication deadline ends anyway).
Invariants: pure bookkeeping (no I/O, no clock: `now` is passed in); `release` is idempotent; an evicted connection no
longer counts; the per-address buckets are bounded (MAX_ADDRESSES; full buckets are forgotten first).
May import: the standard library and linkstate.core. The limits are the directory's `Settings` (docs/SECURITY.md).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from linkstate.core.ratelimit import TokenBucket
from linkstate.core.topology import Settings

MAX_ADDRESSES = 4096  # source addresses whose connection rate is remembered


@dataclass(frozen=True, slots=True)
class Admission:
    """`admitted`, and the connection to evict first to make room (None: no eviction); `reason` for the log."""

    admitted: bool
    evict: int | None = None
    reason: str = ""


@dataclass
class _Proto:
    conns: set[int] = field(default_factory=set)
    unauthenticated: OrderedDict[int, str] = field(default_factory=OrderedDict)  # conn -> address, oldest first
    per_address: dict[str, int] = field(default_factory=dict)  # address -> unauthenticated connections


class ConnBudget:
    def __init__(self, limits: Settings | None = None) -> None:
        self.limits = limits or Settings()
        self._protos: dict[str, _Proto] = {}
        self._proto_of: dict[int, str] = {}
        self._rates: OrderedDict[str, TokenBucket] = OrderedDict()  # address -> new connections it may open
        self._known: OrderedDict[str, None] = OrderedDict()  # addresses that authenticated lately, oldest first
        self._strangers: TokenBucket | None = None  # new connections from all the other addresses

    def configure(self, limits: Settings) -> None:
        """New limits (a directory reload): the rate buckets start again under them; held connections stay."""
        self.limits = limits
        self._rates.clear()
        self._strangers = None

    def held(self, proto: str) -> int:
        p = self._protos.get(proto)
        return len(p.conns) if p else 0

    def unauthenticated(self, proto: str) -> int:
        p = self._protos.get(proto)
        return len(p.unauthenticated) if p else 0

    def admit(self, conn: int, proto: str, address: str, now: float = 0.0) -> Admission:
        """Decide for a new inbound connection (module docstring); an admitted one is counted, unauthenticated."""
        lim = self.limits
        if not self._rate_ok(address, now):
            where = address or "one address"
            return Admission(False, None, f"more than {lim.connection_rate:g} new connections a second from {where}")
        if address not in self._known and not self._stranger_ok(now):
            rate = f"{lim.unknown_address_rate:g}"
            return Admission(False, None, f"more than {rate} new connections a second from unknown addresses")
        p = self._protos.setdefault(proto, _Proto())
        evict: int | None = None
        reason = ""
        if p.per_address.get(address, 0) >= lim.max_per_address:
            evict = next(c for c, a in p.unauthenticated.items() if a == address)
            reason = f"more than {lim.max_per_address} unauthenticated connections from {address or 'one address'}"
        elif len(p.unauthenticated) >= lim.max_unauthenticated:
            evict = self._victim(p)
            reason = f"more than {lim.max_unauthenticated} unauthenticated {proto} connections"
        elif len(p.conns) >= lim.max_connections and p.unauthenticated:
            evict = self._victim(p)
            reason = f"all {lim.max_connections} {proto} connection slots are held"
        if len(p.conns) - (evict is not None) >= lim.max_connections:  # (the node's own connections count too)
            return Admission(False, None, f"all {lim.max_connections} {proto} connection slots are held")
        if evict is not None:
            self.release(evict)
        p.conns.add(conn)
        p.unauthenticated[conn] = address
        p.per_address[address] = p.per_address.get(address, 0) + 1
        self._proto_of[conn] = proto
        return Admission(True, evict, reason)

    @staticmethod
    def _victim(p: _Proto) -> int:
        """The oldest unauthenticated connection of the address holding the most of them."""
        crowded = max(p.per_address, key=lambda a: p.per_address[a])
        return next(c for c, a in p.unauthenticated.items() if a == crowded)

    def _stranger_ok(self, now: float) -> bool:
        if self._strangers is None:
            self._strangers = TokenBucket(self.limits.unknown_address_rate, self.limits.unknown_address_burst, now)
        return self._strangers.take(now)

    def _rate_ok(self, address: str, now: float) -> bool:
        bucket = self._rates.get(address)
        if bucket is None:
            if len(self._rates) >= MAX_ADDRESSES:
                self._forget_rates(now)
            bucket = self._rates[address] = TokenBucket(self.limits.connection_rate, self.limits.connection_burst, now)
        self._rates.move_to_end(address)
        return bucket.take(now)

    def _forget_rates(self, now: float) -> None:
        """Drop the buckets that have refilled (they hold nothing a fresh one would not), else the oldest used."""
        for address in [a for a, b in self._rates.items() if b.full(now)]:
            del self._rates[address]
        while len(self._rates) >= MAX_ADDRESSES:
            self._rates.popitem(last=False)

    def outbound(self, conn: int, proto: str) -> None:
        """Count one of the node's own connections (never refused: the core bounds how many it opens)."""
        self._protos.setdefault(proto, _Proto()).conns.add(conn)
        self._proto_of[conn] = proto

    def authenticated(self, conn: int) -> None:
        """The connection authenticated: it leaves the unauthenticated budget (its slot is from the reserve now), and
        its address is known from now on."""
        proto = self._proto_of.get(conn)
        if proto is None:
            return
        address = self._protos[proto].unauthenticated.get(conn)
        self._forget_unauthenticated(self._protos[proto], conn)
        if address is not None:
            self._known[address] = None
            self._known.move_to_end(address)
            if len(self._known) > MAX_ADDRESSES:
                self._known.popitem(last=False)

    def release(self, conn: int) -> None:
        proto = self._proto_of.pop(conn, None)
        if proto is None:
            return
        p = self._protos[proto]
        p.conns.discard(conn)
        self._forget_unauthenticated(p, conn)

    @staticmethod
    def _forget_unauthenticated(p: _Proto, conn: int) -> None:
        address = p.unauthenticated.pop(conn, None)
        if address is None:
            return
        left = p.per_address[address] - 1
        if left:
            p.per_address[address] = left
        else:
            del p.per_address[address]
