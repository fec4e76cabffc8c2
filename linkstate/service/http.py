"""A small HTTP/1.1 server on the node's own trio run: what serves a node's /metrics and /health.

Owns: `HttpEndpoint`, the per-connection handler of a listener (any `Transport.serve`): one request per
connection, `GET` or `HEAD` of a path in its routes, answered with `Connection: close`; `Response`.
Invariants: a client can hold only itself up and never the node: the request head is read within
`read_timeout` and is at most `MAX_HEAD` bytes (else 408 or 431, then close), the answer is written within
`write_timeout`, at most `max_clients` connections are served at once, a request body is never read, and a
route that raises answers 500 (reported through `on_error`). When every place is taken, a newcomer takes the
place of the oldest connection still sending its request head (closed unanswered), so clients that connect and
send nothing cannot shut a scraper or a health check out; it is closed unanswered only while every place is
being answered (each for at most `write_timeout`). No thread.
May import: the standard library and trio.
"""

from __future__ import annotations

import http
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import trio

MAX_HEAD = 8192
READ_TIMEOUT = 5.0
WRITE_TIMEOUT = 10.0
MAX_CLIENTS = 8
TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = TEXT
    headers: tuple[tuple[str, str], ...] = ()

    def encode(self, with_body: bool = True) -> bytes:
        phrase = http.HTTPStatus(self.status).phrase
        lines = [f"HTTP/1.1 {self.status} {phrase}", f"Content-Type: {self.content_type}"]
        lines += [f"Content-Length: {len(self.body)}", "Connection: close", "Cache-Control: no-store"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head + self.body if with_body else head


Route = Callable[[], Response]


class _Client:
    """One connection being served: the scope of reading its head (the read timeout; cancelled to evict it)."""

    __slots__ = ("evicted", "reading")

    def __init__(self, reading: trio.CancelScope) -> None:
        self.reading = reading
        self.evicted = False


def _error(status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status, f"{reason}\n".encode(), headers=headers)


class HttpEndpoint:
    """Answers `GET`/`HEAD` of `routes` (path -> route); see the module docstring for the bounds."""

    def __init__(
        self,
        routes: Mapping[str, Route],
        *,
        max_clients: int = MAX_CLIENTS,
        read_timeout: float = READ_TIMEOUT,
        write_timeout: float = WRITE_TIMEOUT,
        on_error: Callable[[str, Exception], None] | None = None,
    ) -> None:
        self.routes = routes
        self.max_clients = max_clients
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.on_error = on_error
        self.clients = 0
        self.refused = 0  # newcomers closed unanswered: every place was being answered
        self.evicted = 0  # connections closed unanswered for a newcomer while still sending their head
        self._reading: dict[_Client, None] = {}  # connections still sending their head, oldest first

    async def handle(self, stream: trio.abc.Stream) -> None:
        """One connection: read one request head, answer, close."""
        if self.clients >= self.max_clients and not self._evict_oldest_reader():
            self.refused += 1
            await _close(stream)
            return
        client = _Client(trio.move_on_after(self.read_timeout))
        self.clients += 1
        try:
            await self._serve(stream, client)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # the client went away: nothing to answer
        finally:
            self._reading.pop(client, None)
            if not client.evicted:
                self.clients -= 1
            await _close(stream)

    def _evict_oldest_reader(self) -> bool:
        """Give the place of the oldest connection still sending its head to a newcomer; False if none is."""
        for client in self._reading:
            del self._reading[client]
            client.evicted = True
            client.reading.cancel()
            self.clients -= 1
            self.evicted += 1
            return True
        return False

    async def _serve(self, stream: trio.abc.Stream, client: _Client) -> None:
        head: bytes | None = b""
        self._reading[client] = None
        with client.reading:
            head = await _read_head(stream)
        self._reading.pop(client, None)
        if client.evicted:
            return
        if client.reading.cancelled_caught:
            response, with_body = _error(408, "request head not received in time"), True
        elif head is None:
            return  # closed before a whole head
        else:
            response, with_body = self._answer(head)
        with trio.move_on_after(self.write_timeout):
            await stream.send_all(response.encode(with_body))

    def _answer(self, head: bytes) -> tuple[Response, bool]:
        if len(head) > MAX_HEAD:
            return _error(431, f"request head over {MAX_HEAD} bytes"), True
        line = head.split(b"\r\n", 1)[0].split(b"\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return _error(400, "not an HTTP/1.x request line"), True
        method, target = parts[0], parts[1]
        if method not in ("GET", "HEAD"):
            return _error(405, "only GET and HEAD", (("Allow", "GET, HEAD"),)), True
        path = _path_of(target)
        route = self.routes.get(path)
        if route is None:
            return _error(404, f"no {path[:100]} here (try {', '.join(self.routes)})"), method == "GET"
        try:
            return route(), method == "GET"
        except Exception as exc:  # a route must never take the node down
            if self.on_error is not None:
                self.on_error(path, exc)
            return _error(500, f"internal error: {type(exc).__name__}"), method == "GET"


def _path_of(target: str) -> str:
    """The path of a request target: origin form (`/metrics?x`) or absolute form (`http://host:port/metrics`,
    which an HTTP/1.1 server must accept, RFC 9112 §3.2.2)."""
    scheme, sep, rest = target.partition("://")
    if sep and scheme.lower() in ("http", "https"):
        target = "/" + rest.partition("/")[2]
    return target.split("?", 1)[0]


async def _read_head(stream: trio.abc.Stream) -> bytes | None:
    """Bytes up to and including the blank line ending the head; more than MAX_HEAD bytes without one are
    returned as they are (the caller answers 431); None when the client closed first."""
    buf = bytearray()
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            return bytes(buf[: end + 4])
        end = buf.find(b"\n\n")
        if end >= 0:
            return bytes(buf[: end + 2])
        if len(buf) > MAX_HEAD:
            return bytes(buf)
        data = await stream.receive_some(MAX_HEAD + 1 - len(buf))
        if not data:
            return None
        buf += data


async def _close(stream: trio.abc.Stream) -> None:
    with trio.CancelScope(shield=True), trio.move_on_after(1):
        try:
            await stream.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
