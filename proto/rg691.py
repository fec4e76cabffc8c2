"""TCP 691 framing inside a routing group (DECISIONS §2): the banner and the `{len8} VERB payload` frames.

Owns: the banner line, frame encoding, payload layouts of every verb (typed messages), and `Framer`, an
incremental parser that takes bytes in any split and yields whole messages. An `ORGINFO` frame is byte for
byte the OrgInfo frame of proto.encode (its VERB is the `ORGINFO` tag), so it is decoded with proto.codec.
The section-level delta (docs/PROTOCOL.md §2.5): capability words after `ATTACH` and `ATTACH_ACK OK` (`DELTA`;
decoded by every node, so a member offering them can attach to any master), and, decoded only by a framer with
`extensions` (a node that offers them), the `DELTA <digest> <ORGINFO frame>` push and `REPLY <digest> RESEND`.
Invariants: a frame's header is exactly `{` + 8 lowercase hex + `}` and counts every byte after the `}`; the
body starts with one space then the verb; nothing else may precede a frame once the banner has been read.
Limits are checked before buffering a body. Payload words are printable ASCII and `{len}` strings hold no CR, LF
or NUL and at most `limits.max_string` bytes (what the encoder accepts: no decoded message can make a later encode
fail). The banner verdict (a line of at most MAX_BANNER bytes, LF included) is the same for every split of the
bytes. Errors are `DecodeError(offset, reason)` with the offset in the connection's byte stream.
May import: the standard library and proto.*.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from proto.codec import DEFAULT_LIMITS, Decoded, Limits
from proto.encode import lstr
from proto.errors import DecodeError, EncodeError
from proto.sectioncache import SectionCache, decode_strict_cached

BANNER_PREFIX = b"691 Available "
MAX_BANNER = 512
HEADER_LEN = 10  # {xxxxxxxx}

VERBS = (
    "AUTH",
    "ATTACH",
    "ATTACH_ACK",
    "SIMPLE_POLL",
    "POLL_RESPONSE",
    "ORGINFO",
    "REPLY",
    "ACK",
    "STATE",
    "DETACH",
    "INJECT",
    "DUMP",
    "ROUTE",
    "DELTA",
)
CAP_DELTA = "DELTA"  # the capability word: this node takes and sends section-level deltas on 691
CAPABILITIES = (CAP_DELTA,)
_WIRE_VERB = {"SIMPLE_POLL": "Simple_Poll"}  # the seed's spelling (L9100); matched case-insensitively
_HEX32 = re.compile(rb"[0-9a-f]{32}")
_HEXNUM = re.compile(rb"[0-9a-f]+")
_WORD = re.compile(rb"[\x21-\x7e]+")
_FORBIDDEN = re.compile(rb"[\r\n\x00]")


def banner(fqdn: str, version: str) -> bytes:
    """`691 Available <fqdn> linkstate Routing Engine <version>` + CRLF."""
    return f"691 Available {fqdn} linkstate Routing Engine {version}\r\n".encode("ascii", "replace")


def frame(verb: str, payload: bytes = b"") -> bytes:
    """`{len8} VERB[ payload]` with len8 counting every byte after `}`."""
    wire = _WIRE_VERB.get(verb, verb).encode()
    body = b" " + wire + (b" " + payload if payload else b"")
    return b"{%08x}" % len(body) + body


# --- typed messages ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthHello:
    kind: str  # MEMBER | CLIENT | BRIDGEHEAD
    guid: str
    nonce: str


@dataclass(frozen=True, slots=True)
class AuthChallenge:
    guid: str
    nonce: str
    proof: str


@dataclass(frozen=True, slots=True)
class AuthProof:
    proof: str


@dataclass(frozen=True, slots=True)
class AuthResult:
    ok: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Attach:
    member: str
    routing_group: str
    master: str  # the master the member believes in
    digest: str
    major: int
    minor: int
    user: int
    version_guid: str
    caps: tuple[str, ...] = ()  # what the member offers (CAPABILITIES), after the version GUID


@dataclass(frozen=True, slots=True)
class AttachAck:
    ok: bool
    digest: str = "0" * 32
    attached: int = 0
    servers: int = 0
    quorum: bool = False
    reason: str = ""
    caps: tuple[str, ...] = ()  # what the master takes of what the member offered


@dataclass(frozen=True, slots=True)
class SimplePoll:
    digest: str


@dataclass(frozen=True, slots=True)
class PollResponse:
    same: bool
    digest: str


@dataclass(frozen=True, slots=True)
class OrgInfoFrame:
    raw: bytes  # the whole frame, header included
    decoded: Decoded


@dataclass(frozen=True, slots=True)
class Delta:
    """A push of the sections that changed (`raw`: an ORGINFO frame holding only them, its digest its own MD5),
    and `target`, the digest of the sender's whole table after them (docs/PROTOCOL.md §2.5)."""

    target: str
    raw: bytes
    decoded: Decoded


@dataclass(frozen=True, slots=True)
class Reply:
    digest: str
    follows: bool  # True when the member's revised ORGINFO follows in the next frame
    resend: bool = False  # after a DELTA the member still differs from its target: send the whole table


@dataclass(frozen=True, slots=True)
class Ack:
    digest: str


@dataclass(frozen=True, slots=True)
class StateReport:
    """One observed state: `BH <connector> <vs guid> <CONN_…>`, `SERVICE <server> <status string>`, or from an
    operator's tool `FAULT <connector> <CONN_…|CLEAR>` (force this bridgehead's state, or stop forcing it)."""

    kind: str  # BH | SERVICE | FAULT
    subject: str  # connector GUID (BH) or server GUID (SERVICE)
    item: str  # bridgehead VS GUID (BH) or "" (SERVICE)
    value: str  # bridgehead state token or service-status string


@dataclass(frozen=True, slots=True)
class Detach:
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Inject:
    routing_group: str


@dataclass(frozen=True, slots=True)
class Dump:
    """Request (no fields) or, from a node, its local view; an ORGINFO frame follows a response."""

    response: bool = False
    node: str = ""
    routing_group: str = ""
    role: str = ""
    master: str = ""
    attached: bool = False
    quorum: bool = False
    attached_count: int = 0
    servers: int = 0


ROUTE_KINDS = ("ADDRESS", "SERVER", "GROUP")
ROUTE_PRIORITIES = ("high", "normal", "low")
ROUTE_STATUSES = ("route", "queued", "unreachable")


@dataclass(frozen=True, slots=True)
class RouteQuery:
    """`ROUTE ASK`: where would `server` (a GUID) send a message to `destination` — an address (ADDRESS), or a
    server's or group's GUID (SERVER, GROUP) — for this message class. Answered from the node's own router."""

    server: str
    kind: str
    destination: str
    sender: str = ""
    size: int | None = None
    priority: str = "normal"
    referral: bool = False


@dataclass(frozen=True, slots=True)
class RouteAnswer:
    """`ROUTE ANSWER`: the node's answer (`connector`, `space_connector`: GUIDs, "" for none; `path`: the groups'
    GUIDs from the sender's)."""

    status: str
    connector: str = ""
    cost: int | None = None
    next_hop: str = ""
    path: tuple[str, ...] = ()
    space_type: str = ""
    space_address: str = ""
    space_cost: int | None = None
    space_connector: str = ""


Message = (
    AuthHello
    | AuthChallenge
    | AuthProof
    | AuthResult
    | Attach
    | AttachAck
    | SimplePoll
    | PollResponse
    | OrgInfoFrame
    | Delta
    | Reply
    | Ack
    | StateReport
    | Detach
    | Inject
    | Dump
    | RouteQuery
    | RouteAnswer
)


# --- encoding ---------------------------------------------------------------------------------------------


def _yn(flag: bool) -> str:
    return "YES" if flag else "NO"


def _check_hex32(*values: str) -> None:
    for v in values:
        if not _HEX32.fullmatch(v.encode("ascii", "replace")):
            raise EncodeError(f"not a 32-hex GUID or digest: {v!r}")


def encode_message(msg: Message) -> bytes:
    """The frame of one typed message (`OrgInfoFrame` is sent as its raw bytes)."""
    enc = _ENCODERS.get(type(msg))
    if enc is None:
        raise EncodeError(f"cannot encode {type(msg).__name__}")
    return enc(msg)


def _enc_auth(msg: Message) -> bytes:
    if isinstance(msg, AuthHello):
        _check_hex32(msg.guid, msg.nonce)
        return frame("AUTH", f"HELLO {msg.kind} {msg.guid} {msg.nonce}".encode())
    if isinstance(msg, AuthChallenge):
        _check_hex32(msg.guid, msg.nonce)
        return frame("AUTH", f"CHALLENGE {msg.guid} {msg.nonce} {msg.proof}".encode())
    if isinstance(msg, AuthProof):
        return frame("AUTH", f"PROOF {msg.proof}".encode())
    assert isinstance(msg, AuthResult)
    return frame("AUTH", b"OK" if msg.ok else f"FAIL {lstr(msg.reason)}".encode())


def _enc_attach(msg: Message) -> bytes:
    assert isinstance(msg, Attach)
    _check_hex32(msg.member, msg.routing_group, msg.master, msg.digest, msg.version_guid)
    return frame(
        "ATTACH",
        f"{msg.member} {msg.routing_group} {msg.master} {msg.digest} {msg.major:x} {msg.minor:x} "
        f"{msg.user:x} {msg.version_guid}{_caps(msg.caps)}".encode(),
    )


def _caps(caps: tuple[str, ...]) -> str:
    for cap in caps:
        if cap not in CAPABILITIES:
            raise EncodeError(f"unknown capability {cap!r}")
    return "".join(" " + cap for cap in caps)


def _enc_attach_ack(msg: Message) -> bytes:
    assert isinstance(msg, AttachAck)
    if not msg.ok:
        return frame("ATTACH_ACK", f"REFUSED {lstr(msg.reason)}".encode())
    _check_hex32(msg.digest)
    return frame(
        "ATTACH_ACK",
        f"OK {msg.digest} {msg.attached:x} {msg.servers:x} {_yn(msg.quorum)}{_caps(msg.caps)}".encode(),
    )


def _enc_simple(msg: Message) -> bytes:
    if isinstance(msg, SimplePoll):
        _check_hex32(msg.digest)
        return frame("SIMPLE_POLL", msg.digest.encode())
    if isinstance(msg, PollResponse):
        _check_hex32(msg.digest)
        return frame("POLL_RESPONSE", f"{'SAME' if msg.same else 'DIFFERENT'} {msg.digest}".encode())
    if isinstance(msg, Reply):
        _check_hex32(msg.digest)
        word = "RESEND" if msg.resend else "FOLLOWS" if msg.follows else "DONE"
        return frame("REPLY", f"{msg.digest} {word}".encode())
    if isinstance(msg, Ack):
        _check_hex32(msg.digest)
        return frame("ACK", msg.digest.encode())
    if isinstance(msg, Detach):
        return frame("DETACH", lstr(msg.reason).encode())
    assert isinstance(msg, Inject)
    _check_hex32(msg.routing_group)
    return frame("INJECT", msg.routing_group.encode())


def _enc_state(msg: Message) -> bytes:
    assert isinstance(msg, StateReport)
    if msg.kind == "BH":
        _check_hex32(msg.subject, msg.item)
        return frame("STATE", f"BH {msg.subject} {msg.item} {msg.value}".encode())
    if msg.kind == "SERVICE":
        _check_hex32(msg.subject)
        return frame("STATE", f"SERVICE {msg.subject} {lstr(msg.value)}".encode())
    if msg.kind == "FAULT":
        _check_hex32(msg.subject)
        return frame("STATE", f"FAULT {msg.subject} {msg.value}".encode())
    raise EncodeError(f"unknown STATE kind {msg.kind!r}")


def _enc_dump(msg: Message) -> bytes:
    assert isinstance(msg, Dump)
    if not msg.response:
        return frame("DUMP")
    _check_hex32(msg.node, msg.routing_group, msg.master)
    return frame(
        "DUMP",
        f"VIEW {msg.node} {msg.routing_group} {msg.role} {msg.master} {_yn(msg.attached)} "
        f"{_yn(msg.quorum)} {msg.attached_count:x} {msg.servers:x}".encode(),
    )


def _opt(value: int | str | None) -> str:
    """An optional number (hex) or GUID: `-` when absent."""
    if value is None or value == "":
        return "-"
    return f"{value:x}" if isinstance(value, int) else value


def _enc_route(msg: Message) -> bytes:
    if isinstance(msg, RouteQuery):
        _check_hex32(msg.server)
        if msg.kind not in ROUTE_KINDS or msg.priority not in ROUTE_PRIORITIES:
            raise EncodeError(f"bad ROUTE query: kind {msg.kind!r}, priority {msg.priority!r}")
        kind = "REFERRAL" if msg.referral else "NORMAL"
        return frame("ROUTE", f"ASK {msg.server} {msg.kind} {lstr(msg.destination)} {lstr(msg.sender)} "
                              f"{_opt(msg.size)} {msg.priority} {kind}".encode())  # fmt: skip
    assert isinstance(msg, RouteAnswer)
    if msg.status not in ROUTE_STATUSES:
        raise EncodeError(f"bad ROUTE status {msg.status!r}")
    _check_hex32(*(g for g in (msg.connector, msg.space_connector, *msg.path) if g))
    path = " ".join((f"{len(msg.path):x}", *msg.path))
    return frame("ROUTE", f"ANSWER {msg.status} {_opt(msg.connector)} {_opt(msg.cost)} {lstr(msg.next_hop)} {path} "
                          f"{lstr(msg.space_type)} {lstr(msg.space_address)} {_opt(msg.space_cost)} "
                          f"{_opt(msg.space_connector)}".encode())  # fmt: skip


def _enc_orginfo(msg: Message) -> bytes:
    assert isinstance(msg, OrgInfoFrame)
    return msg.raw


def _enc_delta(msg: Message) -> bytes:
    assert isinstance(msg, Delta)
    _check_hex32(msg.target)
    return frame("DELTA", msg.target.encode() + b" " + msg.raw)


def delta_frame(target: str, sections_frame: bytes) -> bytes:
    """The bytes of a `DELTA` push (what `encode_message` writes for a `Delta`, without decoding the sections)."""
    _check_hex32(target)
    return frame("DELTA", target.encode() + b" " + sections_frame)


_ENCODERS = {
    AuthHello: _enc_auth,
    AuthChallenge: _enc_auth,
    AuthProof: _enc_auth,
    AuthResult: _enc_auth,
    Attach: _enc_attach,
    AttachAck: _enc_attach_ack,
    SimplePoll: _enc_simple,
    PollResponse: _enc_simple,
    Reply: _enc_simple,
    Ack: _enc_simple,
    Detach: _enc_simple,
    Inject: _enc_simple,
    StateReport: _enc_state,
    Dump: _enc_dump,
    RouteQuery: _enc_route,
    RouteAnswer: _enc_route,
    OrgInfoFrame: _enc_orginfo,
    Delta: _enc_delta,
}


# --- decoding ---------------------------------------------------------------------------------------------


class _Tokens:
    """Space-separated payload tokens with `{len}` strings read by count.

    Words are printable ASCII; strings hold no CR, LF or NUL and at most `max_string` bytes: the lexical rules of
    docs/PROTOCOL.md §1.2, the same the encoder enforces, so nothing decoded here can make a later encode fail.
    """

    def __init__(self, payload: bytes, base: int, max_string: int = DEFAULT_LIMITS.max_string) -> None:
        self.data = payload
        self.pos = 0
        self.base = base
        self.max_string = max_string

    def fail(self, reason: str) -> DecodeError:
        return DecodeError(self.base + self.pos, reason)

    def word(self) -> str:
        if self.pos > len(self.data) or (self.pos and self.data[self.pos - 1 : self.pos] != b" "):
            raise self.fail("missing field")
        end = self.data.find(b" ", self.pos)
        end = len(self.data) if end < 0 else end
        tok = self.data[self.pos : end]
        if not tok:
            raise self.fail("empty field")
        if not _WORD.fullmatch(tok):
            raise self.fail(f"a field holds a byte that is not printable ASCII: {tok[:40]!r}")
        self.pos = end + 1
        return tok.decode("ascii")

    def hex32(self) -> str:
        start = self.pos
        w = self.word()
        if not _HEX32.fullmatch(w.encode()):
            raise DecodeError(self.base + start, f"expected 32 lowercase hex digits, got {w[:40]!r}")
        return w

    def num(self) -> int:
        start = self.pos
        w = self.word()
        if not _HEXNUM.fullmatch(w.encode()) or len(w) > 16:
            raise DecodeError(self.base + start, f"expected a hex number, got {w[:40]!r}")
        return int(w, 16)

    def yes_no(self) -> bool:
        start = self.pos
        w = self.word()
        if w not in ("YES", "NO"):
            raise DecodeError(self.base + start, f"expected YES or NO, got {w[:40]!r}")
        return w == "YES"

    def string(self) -> str:
        d = self.data
        if d[self.pos : self.pos + 1] != b"{":
            raise self.fail("expected a {length} string")
        close = d.find(b"}", self.pos, self.pos + 10)
        if close < 0:
            raise self.fail("unterminated string length")
        digits = d[self.pos + 1 : close]
        if digits and not _HEXNUM.fullmatch(digits):
            raise self.fail("bad string length")
        n = int(digits, 16) if digits else 0
        if n > self.max_string:
            raise self.fail(f"string of {n} bytes exceeds the {self.max_string} limit")
        start = close + 1
        if start + n > len(d):
            raise self.fail("string runs past the frame")
        raw = d[start : start + n]
        bad = _FORBIDDEN.search(raw)
        if bad is not None:
            raise DecodeError(self.base + start + bad.start(), "string holds a CR, LF or NUL")
        value = raw.decode("utf-8", "replace")
        self.pos = start + n + 1
        return value

    def choice(self, options: tuple[str, ...]) -> str:
        start = self.pos
        w = self.word()
        if w not in options:
            raise DecodeError(self.base + start, f"expected one of {', '.join(options)}, got {w[:40]!r}")
        return w

    def opt_num(self) -> int | None:
        if self.data[self.pos : self.pos + 2] in (b"-", b"- "):
            self.word()
            return None
        return self.num()

    def opt_hex32(self) -> str:
        if self.data[self.pos : self.pos + 2] in (b"-", b"- "):
            self.word()
            return ""
        return self.hex32()

    def end(self) -> None:
        if self.pos < len(self.data):
            raise self.fail("unexpected trailing data")

    def caps(self) -> tuple[str, ...]:
        """Capability words up to the end (unknown ones are skipped: a newer peer may offer more)."""
        words = []
        while self.pos < len(self.data):
            words.append(self.word())
            if len(words) > 16:
                raise self.fail("more than 16 capability words")
        return tuple(w for w in words if w in CAPABILITIES)


def _dec_auth(t: _Tokens) -> Message:
    sub = t.word()
    if sub == "HELLO":
        kind = t.word()
        if kind not in ("MEMBER", "CLIENT", "BRIDGEHEAD"):
            raise t.fail(f"unknown AUTH kind {kind[:20]!r}")
        msg: Message = AuthHello(kind, t.hex32(), t.hex32())
    elif sub == "CHALLENGE":
        msg = AuthChallenge(t.hex32(), t.hex32(), t.word())
    elif sub == "PROOF":
        msg = AuthProof(t.word())
    elif sub == "OK":
        msg = AuthResult(True)
    elif sub == "FAIL":
        msg = AuthResult(False, t.string())
    else:
        raise t.fail(f"unknown AUTH step {sub[:20]!r}")
    t.end()
    return msg


def _dec_attach(t: _Tokens) -> Message:
    return Attach(t.hex32(), t.hex32(), t.hex32(), t.hex32(), t.num(), t.num(), t.num(), t.hex32(), t.caps())


def _dec_attach_ack(t: _Tokens) -> Message:
    sub = t.word()
    if sub == "REFUSED":
        msg: Message = AttachAck(False, reason=t.string())
    elif sub == "OK":
        msg = AttachAck(True, t.hex32(), t.num(), t.num(), t.yes_no(), caps=t.caps())
    else:
        raise t.fail(f"expected OK or REFUSED, got {sub[:20]!r}")
    t.end()
    return msg


def _dec_poll(t: _Tokens) -> Message:
    msg = SimplePoll(t.hex32())
    t.end()
    return msg


def _dec_poll_response(t: _Tokens) -> Message:
    sub = t.word()
    if sub not in ("SAME", "DIFFERENT"):
        raise t.fail(f"expected SAME or DIFFERENT, got {sub[:20]!r}")
    msg = PollResponse(sub == "SAME", t.hex32())
    t.end()
    return msg


def _dec_reply(t: _Tokens, extensions: bool = False) -> Message:
    digest = t.hex32()
    sub = t.word()
    if sub not in (("FOLLOWS", "DONE", "RESEND") if extensions else ("FOLLOWS", "DONE")):
        raise t.fail(f"expected FOLLOWS or DONE, got {sub[:20]!r}")
    t.end()
    return Reply(digest, sub == "FOLLOWS", sub == "RESEND")


def _dec_ack(t: _Tokens) -> Message:
    msg = Ack(t.hex32())
    t.end()
    return msg


def _dec_state(t: _Tokens) -> Message:
    kind = t.word()
    if kind == "BH":
        msg: Message = StateReport("BH", t.hex32(), t.hex32(), t.word())
    elif kind == "SERVICE":
        msg = StateReport("SERVICE", t.hex32(), "", t.string())
    elif kind == "FAULT":
        msg = StateReport("FAULT", t.hex32(), "", t.word())
    else:
        raise t.fail(f"unknown STATE kind {kind[:20]!r}")
    t.end()
    return msg


def _dec_detach(t: _Tokens) -> Message:
    msg = Detach(t.string() if t.data else "")
    t.end()
    return msg


def _dec_inject(t: _Tokens) -> Message:
    msg = Inject(t.hex32())
    t.end()
    return msg


def _dec_dump(t: _Tokens) -> Message:
    if not t.data:
        return Dump()
    if t.word() != "VIEW":
        raise t.fail("expected VIEW")
    node, rg, role, master = t.hex32(), t.hex32(), t.word(), t.hex32()
    msg = Dump(True, node, rg, role, master, t.yes_no(), t.yes_no(), t.num(), t.num())
    t.end()
    return msg


def _dec_route(t: _Tokens) -> Message:
    sub = t.choice(("ASK", "ANSWER"))
    if sub == "ASK":
        server, kind, destination, sender, size = t.hex32(), t.choice(ROUTE_KINDS), t.string(), t.string(), t.opt_num()
        referral = t.choice(ROUTE_PRIORITIES), t.choice(("NORMAL", "REFERRAL")) == "REFERRAL"
        msg: Message = RouteQuery(server, kind, destination, sender, size, referral[0], referral[1])
    else:
        status, connector, cost, hop = t.choice(ROUTE_STATUSES), t.opt_hex32(), t.opt_num(), t.string()
        count = t.num()
        if count > 1000:
            raise t.fail(f"a path of {count} groups")
        path = tuple(t.hex32() for _ in range(count))
        msg = RouteAnswer(status, connector, cost, hop, path, t.string(), t.string(), t.opt_num(), t.opt_hex32())
    t.end()
    return msg


_DECODERS = {
    "AUTH": _dec_auth,
    "ATTACH": _dec_attach,
    "ATTACH_ACK": _dec_attach_ack,
    "SIMPLE_POLL": _dec_poll,
    "POLL_RESPONSE": _dec_poll_response,
    "REPLY": _dec_reply,
    "ACK": _dec_ack,
    "STATE": _dec_state,
    "DETACH": _dec_detach,
    "INJECT": _dec_inject,
    "DUMP": _dec_dump,
    "ROUTE": _dec_route,
}


def decode_frame(
    raw: bytes, offset: int = 0, limits: Limits = DEFAULT_LIMITS, sections: SectionCache | None = None,
    extensions: bool = False,
) -> Message:  # fmt: skip
    """One whole frame (header included) -> typed message. `offset` is the frame's place in the stream; an ORGINFO
    frame is decoded through `sections` when given (the same result, re-decoding only sections it has not seen).
    `extensions`: the node offers the delta extension (DELTA frames, REPLY RESEND; module docstring)."""
    if len(raw) < HEADER_LEN + 2 or raw[0:1] != b"{" or raw[9:10] != b"}" or raw[10:11] != b" ":
        raise DecodeError(offset, "malformed frame header")
    end = raw.find(b" ", 11)
    verb_b = raw[11:] if end < 0 else raw[11:end]
    verb = verb_b.decode("ascii", "replace").upper()
    if verb == "ORGINFO":
        return OrgInfoFrame(raw, _orginfo(raw, offset, limits, sections))
    if verb == "DELTA" and extensions:
        return _dec_delta(raw, offset, limits, sections)
    if verb == "REPLY" and extensions:
        payload = b"" if end < 0 else raw[end + 1 :]
        return _dec_reply(_Tokens(payload, offset + (len(raw) - len(payload))), extensions=True)
    dec = _DECODERS.get(verb)
    if dec is None:
        raise DecodeError(offset + 11, f"unknown verb {verb_b[:20]!r}")
    payload = b"" if end < 0 else raw[end + 1 :]
    return dec(_Tokens(payload, offset + (len(raw) - len(payload)), limits.max_string))


def _orginfo(raw: bytes, offset: int, limits: Limits, sections: SectionCache | None) -> Decoded:
    try:
        return decode_strict_cached(raw, limits, sections)
    except DecodeError as exc:
        raise DecodeError(offset + exc.offset, exc.reason) from None


_DELTA_HEAD = len(b"{00000000} DELTA ") + 33  # the header, the verb, the target digest and its space


def _dec_delta(raw: bytes, offset: int, limits: Limits, sections: SectionCache | None) -> Message:
    target = raw[_DELTA_HEAD - 33 : _DELTA_HEAD - 1]
    if raw[11:17] != b"DELTA " or not _HEX32.fullmatch(target) or raw[_DELTA_HEAD - 1 : _DELTA_HEAD] != b" ":
        raise DecodeError(offset + 17, "expected DELTA <32 hex digits> <ORGINFO frame>")
    inner = raw[_DELTA_HEAD:]
    if inner[11:19] != b"ORGINFO ":
        raise DecodeError(offset + _DELTA_HEAD, "a DELTA push carries an ORGINFO frame")
    return Delta(target.decode(), inner, _orginfo(inner, offset + _DELTA_HEAD, limits, sections))


@dataclass
class Framer:
    """Incremental 691 parser: `feed(bytes)` then `messages()`; bytes may arrive in any split.

    With `expect_banner=True` (the connecting side) the first line must be the `691 Available …` banner,
    exposed as `banner`. Any error is raised as `DecodeError`; the framer must then be discarded (close the
    peer). ORGINFO frames are decoded through `sections`, the owner's decode cache, when one is given.
    """

    expect_banner: bool = False
    limits: Limits = DEFAULT_LIMITS
    sections: SectionCache | None = None
    extensions: bool = False  # decode the delta extension's frames (module docstring)
    banner: bytes | None = None
    _buf: bytearray = field(default_factory=bytearray)
    _consumed: int = 0  # stream offset of _buf[0]
    _need: int = 0  # body length of the frame being buffered, 0 when reading a header

    def feed(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) > self.limits.max_frame + HEADER_LEN + MAX_BANNER:
            raise DecodeError(self._consumed + len(self._buf), "peer sent more than one frame limit unread")

    def _take(self, n: int) -> bytes:
        out = bytes(self._buf[:n])
        del self._buf[:n]
        self._consumed += n
        return out

    def _read_banner(self) -> bool:
        """The banner line, LF included, is at most MAX_BANNER bytes: the same verdict for every split."""
        nl = self._buf.find(b"\n", 0, MAX_BANNER)
        if nl < 0:
            if len(self._buf) >= MAX_BANNER:
                raise DecodeError(self._consumed, f"no banner line within {MAX_BANNER} bytes")
            return False
        line = self._take(nl + 1)
        if not line.startswith(BANNER_PREFIX):
            raise DecodeError(0, f"not a 691 routing engine banner: {line[:40]!r}")
        self.banner = line.rstrip(b"\r\n")
        self.expect_banner = False
        return True

    def messages(self) -> list[Message]:
        out: list[Message] = []
        if self.expect_banner and not self._read_banner():
            return out
        while True:
            if not self._need:
                if len(self._buf) < HEADER_LEN:
                    if bytes(self._buf[:1]) not in (b"", b"{"):
                        raise DecodeError(self._consumed, "expected '{' at the start of a frame")
                    return out
                head = bytes(self._buf[:HEADER_LEN])
                if head[0:1] != b"{" or head[9:10] != b"}" or not _HEXNUM.fullmatch(head[1:9]):
                    raise DecodeError(self._consumed, f"malformed frame header {head!r}")
                need = int(head[1:9], 16)
                if need > self.limits.max_frame:
                    limit = self.limits.max_frame
                    raise DecodeError(self._consumed, f"frame of {need} bytes exceeds the {limit} limit")
                if need < 2:
                    raise DecodeError(self._consumed, "empty frame")
                self._need = need
            if len(self._buf) < HEADER_LEN + self._need:
                return out
            start = self._consumed
            raw = self._take(HEADER_LEN + self._need)
            self._need = 0
            out.append(decode_frame(raw, start, self.limits, self.sections, self.extensions))
