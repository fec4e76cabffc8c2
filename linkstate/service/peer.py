"""Scripted peers on TCP for the hostile-peer tests and bench/attack.py: they authenticate like a real server (with
the organization secret) and then send exactly what they are told, read or not, as an attacker would.

Owns: `open_691` (a mutually authenticated 691 session of any kind, then raw frames), `smtp_login` (EHLO and a
mutual X-EXPS login on the SMTP port, then raw lines), `bridgehead_exchange` (one honest X-LINK2STATE session as a
source bridgehead runs it: EHLO, X-EXPS, the digest opening, QUIT — driven by the real `SmtpClientSession`),
`flood` (peers that write and never read), and `PeerError`, the one failure they raise (a one-line reason).
Invariants: every call is bounded by its `timeout`; streams are closed on every failure; nothing here is used by a
running node (it is the other end of the wire).
May import: the standard library, trio, proto, linkstate.core.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from linkstate.core import auth
from linkstate.core.link2state_client import SmtpClientSession
from linkstate.core.link2state_session import Done, SessionFailed
from linkstate.core.session691 import Authenticated, Fault, PeerKind, Result, Session691

READ_SIZE = 65536


class PeerError(Exception):
    """A scripted session that did not go as a real peer's would: `reason` is one line."""


@dataclass
class Peer691:
    """An authenticated 691 connection: the stream, and the session that authenticated it (to decode answers)."""

    stream: trio.SocketStream
    session: Session691

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def receive(self, timeout: float) -> list[Result]:
        """What the node sent within `timeout` (one read); [] when nothing came; PeerError when it closed."""
        with trio.move_on_after(timeout):
            data = await self.stream.receive_some(READ_SIZE)
            if not data:
                raise PeerError("the node closed the connection")
            return self.session.receive(bytes(data))
        return []

    async def aclose(self) -> None:
        with trio.move_on_after(1):
            await self.stream.aclose()


async def open_691(
    host: str,
    port: int,
    secret: bytes,
    *,
    kind: PeerKind = PeerKind.MEMBER,
    guid: str | None = None,
    local_address: str | None = None,
    timeout: float = 5.0,
) -> Peer691:
    """Connect and authenticate (banner, HELLO, CHALLENGE, PROOF, OK) as `kind` with `guid` (random by default)."""
    session = Session691(
        initiator=True, local_guid=guid or secrets.token_hex(16), secret=secret, nonce=lambda: secrets.token_hex(16),
        kind=kind,
    )  # fmt: skip
    with trio.move_on_after(timeout):
        stream = await _dial(host, port, local_address)
        try:
            while not session.authenticated:
                data = await stream.receive_some(READ_SIZE)
                if not data:
                    raise PeerError(f"{host}:{port} closed the connection during authentication")
                for result in session.receive(bytes(data)):
                    if isinstance(result, Fault):
                        raise PeerError(f"{host}:{port}: {result.reason}")
                    if not isinstance(result, Authenticated):
                        raise PeerError(f"{host}:{port}: unexpected {type(result).__name__} during authentication")
                await stream.send_all(session.take_pending())
            return Peer691(stream, session)
        except BaseException:
            await _abandon(stream)
            raise
    raise PeerError(f"{host}:{port}: no authenticated session within {timeout:g} s")


async def smtp_login(
    host: str,
    port: int,
    secret: bytes,
    *,
    guid: str | None = None,
    local_address: str | None = None,
    timeout: float = 5.0,
) -> trio.SocketStream:
    """Greeting, EHLO, `X-EXPS` with a checked server proof and our own (235): an authenticated SMTP stream."""
    guid = guid or secrets.token_hex(16)
    nonce = secrets.token_hex(16)
    where = f"{host}:{port}"
    with trio.move_on_after(timeout):
        stream = await _dial(host, port, local_address)
        try:
            lines = _Lines(stream, where)
            await lines.expect(b"220")
            await stream.send_all(b"EHLO attack-bench.invalid\r\n")
            await lines.expect(b"250 ")
            await stream.send_all(f"X-EXPS {auth.SCHEME} {guid} {nonce}\r\n".encode())
            server_guid, server_nonce, server_proof = (await lines.expect(b"334 "))[4:].decode().split()
            if not auth.check(secret, auth.RESPONDER, server_proof, nonce, server_nonce, guid, server_guid):
                raise PeerError(f"{where}: the server's proof does not match the secret")
            mine = auth.proof(secret, auth.INITIATOR, nonce, server_nonce, guid, server_guid)
            await stream.send_all(mine.encode() + b"\r\n")
            await lines.expect(b"235 ")
            return stream
        except BaseException:
            await _abandon(stream)
            raise
    raise PeerError(f"{where}: no SMTP login within {timeout:g} s")


async def flood(
    dial: Callable[[], Awaitable[trio.abc.Stream]], payload: bytes, *, connections: int, seconds: float
) -> tuple[int, int]:
    """`connections` peers that write `payload` again and again and never read, each dialing again 0.1 s after the
    node ended it (or refused it), for `seconds`: (bytes written, connections the node ended)."""
    written = ended = 0

    async def one() -> None:
        nonlocal written, ended
        while True:
            try:
                stream = await dial()
            except (OSError, PeerError):
                await trio.sleep(0.1)
                continue
            async with stream:
                try:
                    while True:
                        await stream.send_all(payload)
                        written += len(payload)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    ended += 1
            await trio.sleep(0.1)

    with trio.move_on_after(seconds):
        async with trio.open_nursery() as nursery:
            for _ in range(connections):
                nursery.start_soon(one)
    return written, ended


async def _dial(host: str, port: int, local_address: str | None) -> trio.SocketStream:
    try:
        return await trio.open_tcp_stream(host, port, local_address=local_address)
    except OSError as exc:
        raise PeerError(f"cannot connect to {host}:{port}: {exc}") from None


async def _abandon(stream: trio.SocketStream) -> None:
    with trio.CancelScope(shield=True), trio.move_on_after(1):
        await stream.aclose()


class _Lines:
    """CRLF lines off a stream, for the few replies a login reads."""

    def __init__(self, stream: trio.SocketStream, where: str) -> None:
        self.stream, self.where, self.buf = stream, where, b""

    async def expect(self, prefix: bytes) -> bytes:
        """Lines until one starts with `prefix` (multi-line replies: their continuation lines are skipped)."""
        while True:
            while b"\n" not in self.buf:
                data = await self.stream.receive_some(READ_SIZE)
                if not data:
                    raise PeerError(f"{self.where} closed the connection (waiting for {prefix!r})")
                self.buf += data
            line, self.buf = self.buf.split(b"\n", 1)
            line = line.rstrip(b"\r")
            if line.startswith(prefix):
                return line
            if not line[3:4] == b"-":
                raise PeerError(f"{self.where}: expected {prefix!r}, got {line[:60]!r}")


async def bridgehead_exchange(
    host: str,
    port: int,
    secret: bytes,
    *,
    peer_guid: str,
    table: tuple[str, bytes],
    guid: str | None = None,
    local_address: str | None = None,
    timeout: float = 5.0,
) -> bool:
    """One X-LINK2STATE session against the node's SMTP port, as a source bridgehead holding `table` (digest,
    frame) runs it; True when the node answered and the session ended well (`Done`), else PeerError."""
    session = SmtpClientSession(
        guid or secrets.token_hex(16), secret, "attack-bench.invalid", lambda: table, secrets.token_hex(16),
        expected_peer=peer_guid,
    )  # fmt: skip
    where = f"{host}:{port}"
    with trio.move_on_after(timeout):
        stream = await _dial(host, port, local_address)
        async with stream:
            while True:
                data = await stream.receive_some(READ_SIZE)
                events = session.receive_data(bytes(data))
                out = session.data_to_send()
                if out:
                    await stream.send_all(out)  # the QUIT after Done goes out too
                for event in events:
                    if isinstance(event, Done):
                        return True
                    if isinstance(event, SessionFailed):
                        raise PeerError(f"{where}: {event.reason}")
                if not data or session.closed:
                    raise PeerError(f"{where}: the session ended before the exchange completed")
    raise PeerError(f"{where}: no X-LINK2STATE answer within {timeout:g} s")

