"""X-LINK2STATE lines (DECISIONS §3): syntax, chunking a frame, reassembling one with every bound checked.

Owns:
  - the line items `Chunk(kind, data)`, `More`, `DoneResponse`, formatted and parsed both as commands
    (`X-LINK2STATE FIRST CHUNK=<data>`) and as replies (`250 X-LINK2STATE FIRST CHUNK=<data>`); `200 Done`.
    Parsing: keywords case-insensitive, space or underscore between words (`LAST_CHUNK=`), an unmarked
    `CHUNK=` is a NEXT chunk. Emitted spelling is canonical: `FIRST CHUNK=`, `NEXT CHUNK=`, `LAST CHUNK=`,
    `MORE`, `DONE_RESPONSE`.
  - `Chunker(frame, chunk_raw_bytes=700)`: one LAST chunk, or FIRST + LAST, or FIRST + NEXT... + LAST; every
    command *and* reply line is at most 1,024 bytes including CRLF, so `chunk_raw_bytes` may be at most
    `MAX_CHUNK_RAW` (1,024 minus the longest reply overhead, `250 X-LINK2STATE FIRST CHUNK=` + CRLF = 31).
  - `Reassembler(limits)`: chunk items in, one complete frame out on a successful LAST, and nothing else.
  - `frame_digest(frame)`: the digest field of a frame's header, without decoding the rest.
  - the negotiated extensions' items (docs/PROTOCOL.md §3.11), recognised only when the caller parses with
    `extensions=True` (else they are unknown keywords, as they always were): `Ext(keyword, value)` for
    `WINDOW=<n>`, `DELTA=<md5>`, `TREE=...`, `LIST=...`, `GET=...`, `PUSH=<md5>` (the summary values are
    proto.summary's),
    the EHLO keywords that advertise them, and multi-line replies of several items.
Invariants: chunk data is raw OrgInfo bytes (printable ASCII, spaces, possibly non-ASCII UTF-8; never CR, LF
or NUL), kept as bytes and never stripped; the first chunk starts with the `{len8}` header. The reassembler
never holds more than the declared length, never accepts a declared length over `limits.max_frame` (counting
the 10-byte header), and forgets everything on any error. Every refusal is one `Link2StateError` carrying the
SMTP reply to send: `503 5.5.1` for sequence errors, `501 5.5.4` for bad payloads.
May import: the standard library and proto.*.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass

from proto.codec import DEFAULT_LIMITS, Limits
from proto.encode import frame_from_sections
from proto.errors import EncodeError, ProtoError

VERB = b"X-LINK2STATE"
CRLF = b"\r\n"
MAX_LINE = 1024  # every command and reply line, CRLF included (KB 812455)
DEFAULT_CHUNK_RAW = 700  # requirements G36
HEADER_LEN = 10  # `{len8}`
_REPLY_PREFIX = b"250 " + VERB + b" "
_LONGEST_KIND = b"FIRST CHUNK="  # LAST CHUNK= has the same length, NEXT CHUNK= is shorter
MAX_CHUNK_RAW = MAX_LINE - len(_REPLY_PREFIX + _LONGEST_KIND + CRLF)  # 993
DONE_LINE = b"200 Done\r\n"
_FORBIDDEN = re.compile(rb"[\r\n\x00]")
_HEADER = re.compile(rb"\{[0-9a-f]{8}\}")
_HEADER_PREFIX = re.compile(rb"\{[0-9a-f]{0,8}")
_DIGEST_HEAD = re.compile(rb"\{[0-9a-f]{8}\} ORGINFO ([0-9a-f]{32}) ")


def _has_forbidden(data: bytes) -> bool:
    """`_FORBIDDEN.search(data) is not None`, with three memchr scans instead of a regex pass."""
    return b"\n" in data or b"\r" in data or b"\x00" in data


class Link2StateError(ProtoError):
    """A refused X-LINK2STATE line or chunk; `reply` is the SMTP reply line to answer with."""

    def __init__(self, code: int, enhanced: str, reason: str) -> None:
        super().__init__(f"{code} {enhanced} {reason}")
        self.code = code
        self.enhanced = enhanced
        self.reason = reason

    @property
    def reply(self) -> bytes:
        return b"%d %s %s\r\n" % (self.code, self.enhanced.encode(), self.reason.encode("utf-8", "replace"))

    @classmethod
    def sequence(cls, reason: str) -> Link2StateError:
        return cls(503, "5.5.1", reason)

    @classmethod
    def payload(cls, reason: str) -> Link2StateError:
        return cls(501, "5.5.4", reason)


class ChunkKind(enum.Enum):
    FIRST = "FIRST"
    NEXT = "NEXT"
    LAST = "LAST"


@dataclass(frozen=True, slots=True)
class Chunk:
    kind: ChunkKind
    data: bytes


@dataclass(frozen=True, slots=True)
class More:
    """`X-LINK2STATE MORE` (client: send the next chunk) / `250 X-LINK2STATE MORE` (server: chunk taken)."""


@dataclass(frozen=True, slots=True)
class DoneResponse:
    """`250 X-LINK2STATE DONE_RESPONSE`: the digests are equal, nothing to exchange."""


class ExtKeyword(enum.Enum):
    """The keywords of the negotiated extensions (docs/PROTOCOL.md §3.11)."""

    WINDOW = "WINDOW"  # pipelined chunks: how many may be in flight
    DELTA = "DELTA"  # section-level delta: the opening, with the sender's digest
    TREE = "TREE"  # the buckets under one prefix
    LIST = "LIST"  # a bucket's entries (a command asks for one; its reply lists them)
    GET = "GET"  # sections the client wants
    PUSH = "PUSH"  # the client's changed sections follow (its digest)


@dataclass(frozen=True, slots=True)
class Ext:
    """`X-LINK2STATE <KEYWORD>=<value>` of an extension; `value` is ASCII text, parsed by its user."""

    keyword: ExtKeyword
    value: str


Item = Chunk | More | DoneResponse | Ext

EHLO_PIPELINING = "X-LINK2STATE-PIPELINING"  # EHLO keyword; its parameter: the largest window the server grants
EHLO_DELTA = "X-LINK2STATE-DELTA"
DEFAULT_WINDOW = 16
MAX_WINDOW = 64
_EXT_KEYWORDS = {k.value.encode(): k for k in ExtKeyword}

_CHUNK_KEYWORDS = {
    b"FIRST CHUNK": ChunkKind.FIRST,
    b"NEXT CHUNK": ChunkKind.NEXT,
    b"CHUNK": ChunkKind.NEXT,
    b"LAST CHUNK": ChunkKind.LAST,
}
_BARE_KEYWORDS: dict[bytes, Item] = {b"MORE": More(), b"DONE RESPONSE": DoneResponse()}
_EMIT = {ChunkKind.FIRST: b"FIRST CHUNK=", ChunkKind.NEXT: b"NEXT CHUNK=", ChunkKind.LAST: b"LAST CHUNK="}


# ------------------------------------------------------------------------------------------------ lines


# canonical spellings, tried with one prefix check before the general parser (same results: the keyword
# holds no `=`, so the general parser splits at the same place and maps it to the same kind)
_FAST_CHUNK = (
    (b"NEXT CHUNK=", ChunkKind.NEXT),
    (b"FIRST CHUNK=", ChunkKind.FIRST),
    (b"LAST CHUNK=", ChunkKind.LAST),
)
_FAST_BARE: dict[bytes, Item] = {b"MORE": _BARE_KEYWORDS[b"MORE"], b"DONE_RESPONSE": _BARE_KEYWORDS[b"DONE RESPONSE"]}


def _parse_item(text: bytes, extensions: bool = False) -> Item:
    for prefix, fast_kind in _FAST_CHUNK:
        if text.startswith(prefix):
            return Chunk(fast_kind, text[len(prefix) :])
    bare = _FAST_BARE.get(text)
    if bare is not None:
        return bare
    return _parse_item_general(text, extensions)


def _parse_item_general(text: bytes, extensions: bool = False) -> Item:
    eq = text.find(b"=")
    if eq >= 0:
        keyword = text[:eq].upper().replace(b"_", b" ")
        kind = _CHUNK_KEYWORDS.get(keyword)
        if kind is not None:
            return Chunk(kind, text[eq + 1 :])
        ext = _EXT_KEYWORDS.get(keyword) if extensions else None
        if ext is None:
            raise Link2StateError.payload(f"unknown X-LINK2STATE keyword: {text[:min(eq, 24)]!r}")
        try:
            return Ext(ext, text[eq + 1 :].decode("ascii"))
        except UnicodeDecodeError:
            raise Link2StateError.payload(f"X-LINK2STATE {ext.value} value is not ASCII") from None
    item = _BARE_KEYWORDS.get(text.rstrip(b" ").upper().replace(b"_", b" "))
    if item is None:
        raise Link2StateError.payload(f"unknown X-LINK2STATE keyword: {text[:24]!r}")
    return item


def parse_command_args(args: bytes, extensions: bool = False) -> Chunk | More | Ext:
    """The arguments of an `X-LINK2STATE` command (everything after the verb and its space); extension items only
    with `extensions` (the server offers them)."""
    item = _parse_item(args, extensions)
    if isinstance(item, DoneResponse):
        raise Link2StateError.payload("DONE_RESPONSE is a reply, not a command")
    return item


def parse_reply_text(code: int, text: bytes, extensions: bool = False) -> Item:
    """A `250` reply's text (after `250 `), with or without the `X-LINK2STATE ` prefix."""
    if code != 250:
        raise Link2StateError.payload(f"X-LINK2STATE reply with code {code}")
    if text[: len(VERB) + 1].upper() == VERB + b" ":
        text = text[len(VERB) + 1 :]
    return _parse_item(text, extensions)


def parse_reply_item(text: bytes, extensions: bool = False) -> Item:
    """What `parse_reply_text(250, b"X-LINK2STATE " + text)` returns, for a caller that checked the prefix."""
    return _parse_item(text, extensions)


def _item_bytes(item: Item) -> bytes:
    if isinstance(item, Chunk):
        return _EMIT[item.kind] + item.data
    if isinstance(item, Ext):
        return item.keyword.value.encode() + b"=" + item.value.encode("ascii")
    return b"MORE" if isinstance(item, More) else b"DONE_RESPONSE"


def _checked(line: bytes) -> bytes:
    if len(line) > MAX_LINE:
        raise EncodeError(f"X-LINK2STATE line of {len(line)} bytes exceeds {MAX_LINE}")
    return line


_COMMAND_PREFIX = VERB + b" "


def format_command(item: Chunk | More | Ext) -> bytes:
    """`X-LINK2STATE <item>\\r\\n`."""
    if type(item) is Chunk:  # one copy of the chunk data instead of three
        return _checked(b"".join((_COMMAND_PREFIX, _EMIT[item.kind], item.data, CRLF)))
    return _checked(_COMMAND_PREFIX + _item_bytes(item) + CRLF)


def format_reply(item: Item) -> bytes:
    """`250 X-LINK2STATE <item>\\r\\n`."""
    if type(item) is Chunk:
        return _checked(b"".join((_REPLY_PREFIX, _EMIT[item.kind], item.data, CRLF)))
    return _checked(_REPLY_PREFIX + _item_bytes(item) + CRLF)


def format_replies(items: list[Ext]) -> bytes:
    """One reply of several lines, `250-X-LINK2STATE <item>` then `250 X-LINK2STATE <last item>`."""
    lines = [_checked(_REPLY_PREFIX + _item_bytes(item) + CRLF) for item in items]
    return b"".join(b"250-" + line[4:] for line in lines[:-1]) + lines[-1]


def opening_command(digest: str) -> bytes:
    """The client's first line: `X-LINK2STATE LAST CHUNK=<frame holding only its digest>`."""
    return format_command(Chunk(ChunkKind.LAST, frame_from_sections([], digest)))


def frame_digest(frame: bytes) -> str:
    """The digest a frame carries in its header (`{len8} ORGINFO <md5> `)."""
    m = _DIGEST_HEAD.match(frame)
    if m is None:
        raise Link2StateError.payload("frame does not start with {len8} ORGINFO <md5>")
    return m.group(1).decode()


# ------------------------------------------------------------------------------------------------ chunking


class Chunker:
    """A frame cut into chunks of at most `chunk_raw_bytes` raw bytes (a lazy sequence of `Chunk`)."""

    def __init__(self, frame: bytes, chunk_raw_bytes: int = DEFAULT_CHUNK_RAW) -> None:
        if not 1 <= chunk_raw_bytes <= MAX_CHUNK_RAW:
            raise ValueError(f"chunk_raw_bytes must be 1..{MAX_CHUNK_RAW}, got {chunk_raw_bytes}")
        if not frame:
            raise EncodeError("empty frame")
        if _has_forbidden(frame):
            bad = _FORBIDDEN.search(frame)
            assert bad is not None
            raise EncodeError(f"frame holds CR, LF or NUL at byte {bad.start()}: it cannot travel in lines")
        self.frame = frame
        self.chunk_raw_bytes = chunk_raw_bytes
        self._n = -(-len(frame) // chunk_raw_bytes)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: int) -> Chunk:
        n = self._n
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(index)
        start = index * self.chunk_raw_bytes
        data = self.frame[start : start + self.chunk_raw_bytes]
        if index == n - 1:
            return Chunk(ChunkKind.LAST, data)
        return Chunk(ChunkKind.FIRST if index == 0 else ChunkKind.NEXT, data)

    def __iter__(self) -> Iterator[Chunk]:
        return (self[i] for i in range(len(self)))


# ------------------------------------------------------------------------------------------------ reassembly


class Reassembler:
    """Chunks in, a complete frame out. `feed` returns the frame on a successful LAST chunk, else None.

    Accepted sequences: FIRST (NEXT)* LAST, or a lone LAST whose data is a complete frame by itself (the
    opening digest-only line). Any error raises `Link2StateError` and drops the partial buffer.
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._buf: bytearray | None = None
        self._declared: int | None = None  # the `{len8}` value once the header is complete

    @property
    def in_progress(self) -> bool:
        return self._buf is not None

    @property
    def received(self) -> int:
        return 0 if self._buf is None else len(self._buf)

    def reset(self) -> None:
        self._buf = None
        self._declared = None

    def feed(self, chunk: Chunk) -> bytes | None:
        try:
            return self._feed(chunk)
        except Link2StateError:
            self.reset()
            raise

    def _feed(self, chunk: Chunk) -> bytes | None:
        self._start(chunk)
        if not chunk.data:
            raise Link2StateError.payload("empty chunk")
        if _has_forbidden(chunk.data):
            bad = _FORBIDDEN.search(chunk.data)
            assert bad is not None
            raise Link2StateError.payload(f"CR, LF or NUL in chunk data at byte {bad.start()}")
        self._append(chunk.data)
        return self._finish() if chunk.kind is ChunkKind.LAST else None

    def _start(self, chunk: Chunk) -> None:
        if chunk.kind is ChunkKind.FIRST:
            if self._buf is not None:
                raise Link2StateError.sequence("FIRST CHUNK while a packet is in progress")
            self._buf = bytearray()
        elif self._buf is None:
            if chunk.kind is ChunkKind.NEXT:
                raise Link2StateError.sequence("CHUNK with no FIRST CHUNK before it")
            if not chunk.data.startswith(b"{"):
                raise Link2StateError.sequence("LAST CHUNK continues no FIRST CHUNK and is no whole frame")
            self._buf = bytearray()

    def _append(self, data: bytes) -> None:
        assert self._buf is not None
        if self._declared is None:
            self._check_header(bytes(self._buf) + data[: HEADER_LEN - len(self._buf)])
        total = len(self._buf) + len(data)
        if self._declared is not None and total > HEADER_LEN + self._declared:
            raise Link2StateError.payload(
                f"chunk passes the declared length: {total} > {HEADER_LEN + self._declared} bytes"
            )
        self._buf += data

    def _check_header(self, head: bytes) -> None:
        if len(head) < HEADER_LEN:
            if not _HEADER_PREFIX.fullmatch(head):
                raise Link2StateError.payload(f"malformed {{len8}} header: {head!r}")
            return
        if not _HEADER.fullmatch(head):
            raise Link2StateError.payload(f"malformed {{len8}} header: {head!r}")
        declared = int(head[1:9], 16)
        if HEADER_LEN + declared > self.limits.max_frame:
            raise Link2StateError.payload(
                f"declared length {declared} is over the frame limit of {self.limits.max_frame} bytes"
            )
        self._declared = declared

    def _finish(self) -> bytes:
        assert self._buf is not None
        expected = None if self._declared is None else HEADER_LEN + self._declared
        if expected is None or len(self._buf) < expected:
            got = len(self._buf)
            self.reset()
            want = "?" if expected is None else str(expected)
            raise Link2StateError.payload(f"LAST CHUNK ends the packet short: {got} of {want} bytes")
        frame = bytes(self._buf)
        self.reset()
        return frame
