"""One TCP 691 connection as a state machine: banner, mutual authentication, then verbs.

Owns: the per-connection table `TRANSITIONS[(state, input)] -> (action, {outcome: next state})` (the shape of
linkstate.core.machine) and the framing of one connection (a proto.rg691.Framer). Inputs are the peer's banner,
each AUTH step, any other verb, and a frame that does not parse. Authentication comes before anything else
(DECISIONS §2): in every state before AUTHENTICATED only the next `AUTH` step is accepted; anything else closes the
connection.
Invariants: a session never raises; protocol faults become `Fault` results carrying the Exchange event ID, its
`Cause` and a one-line reason, after which the session is CLOSED and ignores further input (h11's local/remote
error split).
The state changes only through the table. Randomness (nonces) is passed in by the caller.

States (responder = the side that accepted, initiator = the side that connected):
  responder:  AWAIT_HELLO --HELLO ok/ CHALLENGE--> AWAIT_PROOF --PROOF ok/ OK--> AUTHENTICATED
  initiator:  AWAIT_BANNER --banner/ HELLO--> AWAIT_CHALLENGE --CHALLENGE ok/ PROOF--> AWAIT_RESULT
              --OK--> AUTHENTICATED
  AUTHENTICATED --any verb--> AUTHENTICATED (handed to the role)
  any state:  bad frame, wrong step, a step that is refused (bad nonce, bad proof, FAIL) --> CLOSED

May import: the standard library, proto, linkstate.core.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from linkstate.core import auth
from linkstate.core.events import Cause
from linkstate.core.machine import Outcome, Table
from proto import rg691
from proto.codec import DEFAULT_LIMITS, Limits
from proto.errors import DecodeError
from proto.sectioncache import SectionCache

PRE_AUTH_MAX_FRAME = 4096


class PeerKind(enum.StrEnum):
    """What the connecting side says it is in AUTH HELLO (MEMBER, CLIENT, BRIDGEHEAD), and SERVER for the side
    that accepted, as its initiator sees it."""

    MEMBER = "MEMBER"
    CLIENT = "CLIENT"
    BRIDGEHEAD = "BRIDGEHEAD"
    SERVER = "SERVER"


class S(enum.Enum):
    AWAIT_BANNER = "await-banner"
    AWAIT_HELLO = "await-hello"
    AWAIT_CHALLENGE = "await-challenge"
    AWAIT_PROOF = "await-proof"
    AWAIT_RESULT = "await-result"
    AUTHENTICATED = "authenticated"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Fault:
    """The session failed: log `event_id` (961/962 before authentication completed, None after) and close."""

    reason: str
    event_id: int | None = None
    cause: Cause = Cause.PROTOCOL


@dataclass(frozen=True, slots=True)
class Authenticated:
    """Authentication succeeded both ways: log 995 (members, bridgeheads) or 996 (client nodes)."""

    peer_guid: str
    peer_kind: PeerKind

    @property
    def event_id(self) -> int:
        return 996 if self.peer_kind is PeerKind.CLIENT else 995


Result = rg691.Message | Fault | Authenticated


class Input(enum.Enum):
    """What a 691 connection can bring: the peer's banner, an AUTH step, another verb, or an unparsable frame."""

    __hash__ = object.__hash__  # members are singletons compared by identity: the table lookup hashes in C
    BANNER = "banner"
    HELLO = "hello"
    CHALLENGE = "challenge"
    PROOF = "proof"
    RESULT = "result"
    VERB = "verb"
    BAD_FRAME = "bad-frame"


_MESSAGE_INPUTS: dict[type, Input] = {
    rg691.AuthHello: Input.HELLO,
    rg691.AuthChallenge: Input.CHALLENGE,
    rg691.AuthProof: Input.PROOF,
    rg691.AuthResult: Input.RESULT,
}


@dataclass(slots=True)
class _In:
    kind: Input
    msg: rg691.Message | None = None
    error: str = ""


@dataclass(kw_only=True)
class Session691:
    """One 691 connection, either side (module docstring): `receive(bytes)` returns what the peer's bytes caused
    (messages for the role once authenticated, `Authenticated`, or a final `Fault`); `send`/`send_raw` queue
    messages once authenticated; `pending` holds the bytes to write (`take_pending()`)."""

    initiator: bool
    local_guid: str
    secret: bytes
    nonce: Callable[[], str]
    kind: PeerKind = PeerKind.MEMBER  # what the initiator says it is: MEMBER | CLIENT | BRIDGEHEAD
    fqdn: str = "localhost"
    version: str = "0.1.0"
    limits: Limits = DEFAULT_LIMITS
    sections: SectionCache | None = None  # the owner's decode cache for ORGINFO frames (proto.sectioncache)
    extensions: bool = False  # the node offers the delta extension: DELTA frames and REPLY RESEND decode
    state: S = S.AWAIT_HELLO
    peer_guid: str = ""
    peer_kind: PeerKind | None = None  # known once the peer's AUTH step says it
    pending: list[bytes] = field(default_factory=list)
    _framer: rg691.Framer = field(init=False)
    _my_nonce: str = ""
    _peer_nonce: str = ""

    def __post_init__(self) -> None:
        # before authentication only AUTH frames are legitimate: a few hundred bytes, never a table
        pre_auth = replace(self.limits, max_frame=min(self.limits.max_frame, PRE_AUTH_MAX_FRAME))
        self._framer = rg691.Framer(expect_banner=self.initiator, limits=pre_auth, sections=self.sections,
                                    extensions=self.extensions)  # fmt: skip
        if self.initiator:
            self.state = S.AWAIT_BANNER
        else:
            self.state = S.AWAIT_HELLO
            self.pending.append(rg691.banner(self.fqdn, self.version))

    # -- public ---------------------------------------------------------------------------------------------

    @property
    def authenticated(self) -> bool:
        return self.state is S.AUTHENTICATED

    @property
    def banner(self) -> str:
        """The peer's `691 Available …` line (the connecting side only; empty until it has arrived)."""
        raw = self._framer.banner
        return raw.decode("ascii", "replace") if raw is not None else ""

    @property
    def closed(self) -> bool:
        return self.state is S.CLOSED

    def send(self, msg: rg691.Message) -> None:
        """Queue a message; only allowed once authenticated (the roles never write before)."""
        if self.state is S.AUTHENTICATED:
            self.pending.append(rg691.encode_message(msg))

    def send_raw(self, frame: bytes) -> None:
        if self.state is S.AUTHENTICATED:
            self.pending.append(frame)

    def take_pending(self) -> bytes:
        out = b"".join(self.pending)
        self.pending.clear()
        return out

    def receive(self, data: bytes) -> list[Result]:
        """Feed bytes; returns the messages for the role (after auth), `Authenticated`, or one final `Fault`."""
        if self.state is S.CLOSED:
            return []
        results: list[Result] = []
        try:
            self._framer.feed(data)
            msgs = self._framer.messages()
        except DecodeError as exc:
            self._dispatch(_In(Input.BAD_FRAME, error=str(exc)), results)
            return results
        if self.state is S.AWAIT_BANNER and self._framer.banner is not None:
            self._dispatch(_In(Input.BANNER), results)
        for msg in msgs:
            self._dispatch(_In(_MESSAGE_INPUTS.get(type(msg), Input.VERB), msg), results)
            if self.closed:
                break
        return results

    # -- internals ------------------------------------------------------------------------------------------

    def _dispatch(self, inp: _In, results: list[Result]) -> None:
        action, outcomes = TRANSITIONS[(self.state, inp.kind)]
        self.state = outcomes[action(self, inp, results)]

    def _auth_event(self) -> int:
        kind = self.kind if self.initiator else self.peer_kind
        return 962 if kind is PeerKind.CLIENT else 961

    @staticmethod
    def _fault(
        results: list[Result], reason: str, event_id: int | None = None, cause: Cause = Cause.PROTOCOL
    ) -> Outcome:
        results.append(Fault(reason, event_id, cause))
        return Outcome.REFUSED

    # -- actions: each returns how its step went; TRANSITIONS says where that leads ----------------------------

    def _start_initiator(self, inp: _In, results: list[Result]) -> Outcome:
        self._my_nonce = self.nonce()
        self.pending.append(rg691.encode_message(rg691.AuthHello(self.kind, self.local_guid, self._my_nonce)))
        return Outcome.OK

    def _on_hello(self, inp: _In, results: list[Result]) -> Outcome:
        msg = inp.msg
        assert isinstance(msg, rg691.AuthHello)
        if not auth.valid_nonce(msg.nonce):
            return self._fault(results, "malformed nonce in AUTH HELLO", 961, Cause.DECODE)
        self.peer_guid, self.peer_kind, self._peer_nonce = msg.guid, PeerKind(msg.kind), msg.nonce
        self._my_nonce = self.nonce()
        proof = auth.proof(self.secret, auth.RESPONDER, msg.nonce, self._my_nonce, msg.guid, self.local_guid)
        self.pending.append(rg691.encode_message(rg691.AuthChallenge(self.local_guid, self._my_nonce, proof)))
        return Outcome.OK

    def _on_challenge(self, inp: _In, results: list[Result]) -> Outcome:
        msg = inp.msg
        assert isinstance(msg, rg691.AuthChallenge)
        ok = auth.valid_nonce(msg.nonce) and auth.check(
            self.secret, auth.RESPONDER, msg.proof, self._my_nonce, msg.nonce, self.local_guid, msg.guid
        )
        if not ok:
            reason = "the server's authentication proof is wrong (secret mismatch?)"
            return self._fault(results, reason, self._auth_event(), Cause.AUTH)
        self.peer_guid, self._peer_nonce = msg.guid, msg.nonce
        proof = auth.proof(self.secret, auth.INITIATOR, self._my_nonce, msg.nonce, self.local_guid, msg.guid)
        self.pending.append(rg691.encode_message(rg691.AuthProof(proof)))
        return Outcome.OK

    def _on_proof(self, inp: _In, results: list[Result]) -> Outcome:
        msg = inp.msg
        assert isinstance(msg, rg691.AuthProof)
        ok = auth.check(
            self.secret,
            auth.INITIATOR,
            msg.proof,
            self._peer_nonce,
            self._my_nonce,
            self.peer_guid,
            self.local_guid,
        )
        if not ok:
            self.pending.append(rg691.encode_message(rg691.AuthResult(False, "authentication failed")))
            reason = f"peer {self.peer_guid} failed authentication (secret mismatch?)"
            return self._fault(results, reason, self._auth_event(), Cause.AUTH)
        self.pending.append(rg691.encode_message(rg691.AuthResult(True)))
        return self._authenticated_now(results)

    def _on_result(self, inp: _In, results: list[Result]) -> Outcome:
        msg = inp.msg
        assert isinstance(msg, rg691.AuthResult)
        if not msg.ok:
            return self._fault(results, f"refused by the server: {msg.reason}", self._auth_event(), Cause.AUTH)
        self.peer_kind = PeerKind.SERVER
        return self._authenticated_now(results)

    def _authenticated_now(self, results: list[Result]) -> Outcome:
        self._framer.limits = self.limits  # tables may flow from now on
        assert self.peer_kind is not None  # set by the HELLO (responder) or the RESULT (initiator) before this
        results.append(Authenticated(self.peer_guid, self.peer_kind))
        return Outcome.OK

    def _deliver(self, inp: _In, results: list[Result]) -> Outcome:
        assert inp.msg is not None
        results.append(inp.msg)
        return Outcome.OK

    def _out_of_order(self, inp: _In, results: list[Result]) -> Outcome:
        name = type(inp.msg).__name__ if inp.msg is not None else inp.kind.value
        return self._fault(results, f"{name} before authentication (state {self.state.value})", self._auth_event())

    def _after_authentication(self, inp: _In, results: list[Result]) -> Outcome:
        return self._fault(results, f"unexpected {type(inp.msg).__name__} after authentication")

    def _bad_frame(self, inp: _In, results: list[Result]) -> Outcome:
        event_id = self._auth_event() if not self.authenticated else None
        return self._fault(results, f"bad frame: {inp.error}", event_id, Cause.DECODE)

    def _ignore(self, inp: _In, results: list[Result]) -> Outcome:
        return Outcome.OK


Action = Callable[[Session691, _In, list[Result]], Outcome]


def _transitions() -> Table[S, Input, Action]:
    """(state, input) -> (action, {outcome: next state}); every pair covered, built row by row."""
    A, OK, REFUSED = Session691, Outcome.OK, Outcome.REFUSED  # table shorthand
    closes = {REFUSED: S.CLOSED}
    t: Table[S, Input, Action] = {}
    for s in S:  # by default an input is out of order: the connection closes
        for i in Input:
            t[(s, i)] = (A._out_of_order, closes)
        t[(s, Input.BAD_FRAME)] = (A._bad_frame, closes)
    t[(S.AWAIT_BANNER, Input.BANNER)] = (A._start_initiator, {OK: S.AWAIT_CHALLENGE})
    t[(S.AWAIT_HELLO, Input.HELLO)] = (A._on_hello, {OK: S.AWAIT_PROOF, REFUSED: S.CLOSED})
    t[(S.AWAIT_CHALLENGE, Input.CHALLENGE)] = (A._on_challenge, {OK: S.AWAIT_RESULT, REFUSED: S.CLOSED})
    t[(S.AWAIT_PROOF, Input.PROOF)] = (A._on_proof, {OK: S.AUTHENTICATED, REFUSED: S.CLOSED})
    t[(S.AWAIT_RESULT, Input.RESULT)] = (A._on_result, {OK: S.AUTHENTICATED, REFUSED: S.CLOSED})
    for i in (Input.BANNER, Input.HELLO, Input.CHALLENGE, Input.PROOF, Input.RESULT):
        t[(S.AUTHENTICATED, i)] = (A._after_authentication, closes)
    t[(S.AUTHENTICATED, Input.VERB)] = (A._deliver, {OK: S.AUTHENTICATED})
    for i in Input:  # receive() takes nothing once closed; the row is here so that the table is complete
        t[(S.CLOSED, i)] = (A._ignore, {OK: S.CLOSED})
    return t


TRANSITIONS = _transitions()
INITIAL = (S.AWAIT_BANNER, S.AWAIT_HELLO)  # the initiator's, the responder's
