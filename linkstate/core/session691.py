"""One TCP 691 connection as a state machine: banner, mutual authentication, then verbs.

Owns: the per-connection table `TRANSITIONS[(state, message type)] -> (handler, next state)` and the framing of
one connection (a proto.rg691.Framer). Authentication comes before anything else (DECISIONS §2): in every
state before AUTHENTICATED only the next `AUTH` step is accepted; anything else closes the connection.
Invariants: a session never raises; protocol faults become `Fault` results carrying the Exchange event ID and a
one-line reason, after which the session is CLOSED and ignores further input (h11's local/remote error split).
Randomness (nonces) is passed in by the caller.

States (responder = the side that accepted, initiator = the side that connected):
  responder:  AWAIT_HELLO --HELLO/ CHALLENGE--> AWAIT_PROOF --PROOF ok/ OK--> AUTHENTICATED
  initiator:  AWAIT_BANNER --banner/ HELLO--> AWAIT_CHALLENGE --CHALLENGE ok/ PROOF--> AWAIT_RESULT
              --OK--> AUTHENTICATED
  any state:  bad frame, wrong step, bad proof, FAIL --> CLOSED

May import: the standard library, proto, linkstate.core.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from linkstate.core import auth
from proto import rg691
from proto.codec import DEFAULT_LIMITS, Limits
from proto.errors import DecodeError

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
    """The session failed: log `event_id` (961/962 for authentication, None otherwise) and close."""

    reason: str
    event_id: int | None = None


@dataclass(frozen=True, slots=True)
class Authenticated:
    """Authentication succeeded both ways: log 995 (members, bridgeheads) or 996 (client nodes)."""

    peer_guid: str
    peer_kind: PeerKind

    @property
    def event_id(self) -> int:
        return 996 if self.peer_kind is PeerKind.CLIENT else 995


Result = rg691.Message | Fault | Authenticated

_HANDSHAKE = (rg691.AuthHello, rg691.AuthChallenge, rg691.AuthProof, rg691.AuthResult)


@dataclass(kw_only=True)
class Session691:
    """Bytes in -> results out; `pending` holds bytes to write."""

    initiator: bool
    local_guid: str
    secret: bytes
    nonce: Callable[[], str]
    kind: PeerKind = PeerKind.MEMBER  # what the initiator says it is: MEMBER | CLIENT | BRIDGEHEAD
    fqdn: str = "localhost"
    version: str = "0.1.0"
    limits: Limits = DEFAULT_LIMITS
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
        self._framer = rg691.Framer(expect_banner=self.initiator, limits=pre_auth)
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
        try:
            self._framer.feed(data)
            results: list[Result] = []
            for msg in self._messages():
                results.extend(self._step(msg))
                if self.closed:
                    break
            return results
        except DecodeError as exc:
            return [self._fault(f"bad frame: {exc}", self._auth_event() if not self.authenticated else None)]

    # -- internals ------------------------------------------------------------------------------------------

    def _messages(self) -> list[rg691.Message]:
        msgs = self._framer.messages()
        if self.state is S.AWAIT_BANNER and self._framer.banner is not None:
            self._start_initiator()
        return msgs

    def _start_initiator(self) -> None:
        self._my_nonce = self.nonce()
        self.pending.append(rg691.encode_message(rg691.AuthHello(self.kind, self.local_guid, self._my_nonce)))
        self.state = S.AWAIT_CHALLENGE

    def _auth_event(self) -> int:
        kind = self.kind if self.initiator else self.peer_kind
        return 962 if kind is PeerKind.CLIENT else 961

    def _fault(self, reason: str, event_id: int | None = None) -> Fault:
        self.state = S.CLOSED
        return Fault(reason, event_id)

    def _step(self, msg: rg691.Message) -> list[Result]:
        handler = TRANSITIONS.get((self.state, type(msg)))
        if handler is not None:
            return handler(self, msg)
        if self.state is S.AUTHENTICATED and not isinstance(msg, _HANDSHAKE):
            return [msg]
        name = type(msg).__name__
        if self.state is S.AUTHENTICATED:
            return [self._fault(f"unexpected {name} after authentication")]
        return [self._fault(f"{name} before authentication (state {self.state.value})", self._auth_event())]

    def _on_hello(self, msg: rg691.Message) -> list[Result]:
        assert isinstance(msg, rg691.AuthHello)
        if not auth.valid_nonce(msg.nonce):
            return [self._fault("malformed nonce in AUTH HELLO", 961)]
        self.peer_guid, self.peer_kind, self._peer_nonce = msg.guid, PeerKind(msg.kind), msg.nonce
        self._my_nonce = self.nonce()
        proof = auth.proof(self.secret, auth.RESPONDER, msg.nonce, self._my_nonce, msg.guid, self.local_guid)
        self.pending.append(rg691.encode_message(rg691.AuthChallenge(self.local_guid, self._my_nonce, proof)))
        self.state = S.AWAIT_PROOF
        return []

    def _on_challenge(self, msg: rg691.Message) -> list[Result]:
        assert isinstance(msg, rg691.AuthChallenge)
        ok = auth.valid_nonce(msg.nonce) and auth.check(
            self.secret, auth.RESPONDER, msg.proof, self._my_nonce, msg.nonce, self.local_guid, msg.guid
        )
        if not ok:
            return [
                self._fault(
                    "the server's authentication proof is wrong (secret mismatch?)", self._auth_event()
                )
            ]
        self.peer_guid, self._peer_nonce = msg.guid, msg.nonce
        proof = auth.proof(self.secret, auth.INITIATOR, self._my_nonce, msg.nonce, self.local_guid, msg.guid)
        self.pending.append(rg691.encode_message(rg691.AuthProof(proof)))
        self.state = S.AWAIT_RESULT
        return []

    def _on_proof(self, msg: rg691.Message) -> list[Result]:
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
            return [
                self._fault(
                    f"peer {self.peer_guid} failed authentication (secret mismatch?)", self._auth_event()
                )
            ]
        self.pending.append(rg691.encode_message(rg691.AuthResult(True)))
        self.state = S.AUTHENTICATED
        return self._authenticated_now()

    def _on_result(self, msg: rg691.Message) -> list[Result]:
        assert isinstance(msg, rg691.AuthResult)
        if not msg.ok:
            return [self._fault(f"refused by the server: {msg.reason}", self._auth_event())]
        self.state = S.AUTHENTICATED
        self.peer_kind = PeerKind.SERVER
        return self._authenticated_now()


    def _authenticated_now(self) -> list[Result]:
        self._framer.limits = self.limits  # tables may flow from now on
        assert self.peer_kind is not None  # set by the HELLO (responder) or the RESULT (initiator) before this
        return [Authenticated(self.peer_guid, self.peer_kind)]


Handler = Callable[[Session691, rg691.Message], list[Result]]

TRANSITIONS: dict[tuple[S, type], Handler] = {
    (S.AWAIT_HELLO, rg691.AuthHello): Session691._on_hello,
    (S.AWAIT_CHALLENGE, rg691.AuthChallenge): Session691._on_challenge,
    (S.AWAIT_PROOF, rg691.AuthProof): Session691._on_proof,
    (S.AWAIT_RESULT, rg691.AuthResult): Session691._on_result,
}
