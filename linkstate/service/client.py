"""A WinRoute-style client node on TCP 691: connect, authenticate as CLIENT, send DUMP, read the answer.

Owns: `dump(host, port, secret)` (the node's local view and its decoded OrgInfo), `dump_frame(...)` (the
same plus the raw frame bytes, for `winroute --raw`), `command(...)` (an operator command: INJECT a tombstone,
STATE FAULT to force a bridgehead state; returns the node's digest), `ask_route(...)` (a route question the node
answers from its own router), and `ClientError`, the one typed failure.
Every failure is a `ClientError` whose `reason` is one line and whose `kind` says what went wrong:
  refused   nothing listens there (or the address cannot be reached);
  timeout   the whole exchange did not finish within `timeout` seconds;
  auth      mutual authentication failed (event 962 semantics: a client node against the routing service,
            most often a wrong organization secret) or the server closed during authentication;
  protocol  the server spoke something that is not the 691 protocol, or closed before answering.
Invariants: a fresh random client GUID and fresh nonces per call (`secrets`); nothing is sent before the
banner and the mutual authentication; the connection is always closed on return.
May import: the standard library, trio, proto, linkstate.core.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import trio

from linkstate.core.session691 import Authenticated, Fault, PeerKind, S, Session691
from proto import rg691
from proto.codec import Decoded

READ_SIZE = 65536
KINDS = ("refused", "timeout", "auth", "protocol")


class ClientError(Exception):
    """A failed DUMP: `reason` is one line for a person, `kind` one of KINDS."""

    def __init__(self, kind: str, reason: str, event_id: int | None = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.event_id = event_id


@dataclass(frozen=True, slots=True)
class DumpResult:
    """What a node answered to DUMP: its local view, its ORGINFO frame (raw + decoded) and its banner."""

    view: rg691.Dump
    frame: rg691.OrgInfoFrame
    banner: str

    @property
    def decoded(self) -> Decoded:
        return self.frame.decoded


async def dump(
    host: str, port: int, secret: bytes, *, timeout: float = 10, local_address: str | None = None
) -> tuple[rg691.Dump, Decoded]:
    """The local view and the decoded link-state table of the node at host:port."""
    result = await dump_frame(host, port, secret, timeout=timeout, local_address=local_address)
    return result.view, result.decoded


async def dump_frame(
    host: str, port: int, secret: bytes, *, timeout: float = 10, local_address: str | None = None
) -> DumpResult:
    """Like `dump`, keeping the raw ORGINFO frame and the server's banner (`local_address`: as for `command`)."""
    where = f"{host}:{port}"
    try:
        with trio.fail_after(timeout):
            try:
                stream = await trio.open_tcp_stream(host, port, local_address=local_address)
            except OSError as exc:
                raise ClientError("refused", f"cannot connect to {where}: {_os_reason(exc)}") from None
            async with stream:
                return await _exchange(stream, where, secret)
    except trio.TooSlowError:
        raise ClientError("timeout", f"{where} did not answer within {timeout:g} s") from None


async def command(
    host: str,
    port: int,
    secret: bytes,
    request: rg691.Message,
    *,
    timeout: float = 10,
    local_address: str | None = None,
) -> str:
    """Send one operator command (`Inject`, `StateReport("FAULT", …)`) and return the node's digest after it.

    `local_address` binds the connection's source address (a tool "running on" a server of a local cluster
    uses that server's address, so the node can refuse what R135 forbids). A refusal is a `ClientError` of
    kind `refused` carrying the node's reason.
    """
    answer = await _ask(host, port, secret, request, rg691.Ack, timeout=timeout, local_address=local_address)
    assert isinstance(answer, rg691.Ack)
    return answer.digest


async def ask_route(host: str, port: int, secret: bytes, query: rg691.RouteQuery, *, timeout: float = 10) -> (
    rg691.RouteAnswer
):
    """A route question (`ROUTE ASK`), answered by the node from its own router (`ROUTE ANSWER`)."""
    answer = await _ask(host, port, secret, query, rg691.RouteAnswer, timeout=timeout)
    assert isinstance(answer, rg691.RouteAnswer)
    return answer


async def _ask(
    host: str, port: int, secret: bytes, request: rg691.Message, expect: type, *, timeout: float,
    local_address: str | None = None,
) -> object:  # fmt: skip
    """One request, one answer of type `expect`: connect, authenticate as a CLIENT node, ask, read."""
    where = f"{host}:{port}"

    def until(result: object, seen: list[object]) -> object | None:
        if isinstance(result, expect):
            return result
        raise ClientError("protocol", f"unexpected {type(result).__name__} in answer to {type(request).__name__}")

    try:
        with trio.fail_after(timeout):
            try:
                stream = await trio.open_tcp_stream(host, port, local_address=local_address)
            except OSError as exc:
                raise ClientError("refused", f"cannot connect to {where}: {_os_reason(exc)}") from None
            async with stream:
                answer, _ = await _converse(stream, where, secret, request, until)
                return answer
    except trio.TooSlowError:
        raise ClientError("timeout", f"{where} did not answer within {timeout:g} s") from None


async def _converse(
    stream: trio.SocketStream,
    where: str,
    secret: bytes,
    request: rg691.Message,
    done: Callable[[object, list[object]], object | None],
) -> tuple[object, Session691]:
    """Banner, mutual authentication as a CLIENT node, `request`, then answers until `done` returns one."""
    session = Session691(
        initiator=True,
        local_guid=secrets.token_hex(16),
        secret=secret,
        nonce=lambda: secrets.token_hex(16),
        kind=PeerKind.CLIENT,
    )
    seen: list[object] = []
    while True:
        try:
            data = await stream.receive_some(READ_SIZE)
        except (trio.BrokenResourceError, OSError) as exc:
            raise ClientError("protocol", f"{where}: connection lost: {exc}") from None
        if not data:
            if session.state is S.AWAIT_BANNER:
                raise ClientError("protocol", f"{where} closed the connection before its 691 banner")
            if not session.authenticated:
                raise ClientError("auth", f"{where} closed the connection during authentication (wrong secret?)", 962)
            raise ClientError("protocol", f"{where} closed the connection before answering")
        for result in session.receive(bytes(data)):
            if isinstance(result, Fault):
                if result.event_id is not None and not result.reason.startswith("bad frame"):
                    raise ClientError("auth", f"authentication with {where} failed (event 962): {result.reason}", 962)
                raise ClientError("protocol", f"{where}: {result.reason}")
            if isinstance(result, Authenticated):
                session.send(request)
                continue
            if isinstance(result, rg691.Detach):
                raise ClientError("refused", f"{where} refused: {result.reason or 'no reason given'}")
            answer = done(result, seen)
            if answer is not None:
                return answer, session
            seen.append(result)
        pending = session.take_pending()
        if pending:
            try:
                await stream.send_all(pending)
            except (trio.BrokenResourceError, OSError) as exc:
                raise ClientError("protocol", f"{where}: connection lost: {exc}") from None


async def _exchange(stream: trio.SocketStream, where: str, secret: bytes) -> DumpResult:
    def done(result: object, seen: list[object]) -> object | None:
        if isinstance(result, rg691.Dump) and result.response and not seen:
            return None
        if isinstance(result, rg691.OrgInfoFrame) and seen and isinstance(seen[0], rg691.Dump):
            return seen[0], result
        raise ClientError("protocol", f"{where}: unexpected {type(result).__name__} in answer to DUMP")

    answer, session = await _converse(stream, where, secret, rg691.Dump(), done)
    assert isinstance(answer, tuple)
    view, frame = answer
    assert isinstance(view, rg691.Dump) and isinstance(frame, rg691.OrgInfoFrame)
    return DumpResult(view, frame, session.banner)


def _os_reason(exc: BaseException) -> str:
    """`Connection refused` rather than trio's `all attempts to connect … failed` wrapper."""
    inner = getattr(exc.__cause__, "exceptions", None)
    if inner:
        return _os_reason(inner[0])
    code = getattr(exc, "errno", None)
    if isinstance(code, int) and code > 0:
        return os.strerror(code)
    strerror = getattr(exc, "strerror", None)
    return str(strerror or exc or type(exc).__name__).rstrip(".")
