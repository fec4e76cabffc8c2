"""The ESMTP line and reply codec the bridgeheads need (DECISIONS §3, requirements G35, G38).

Owns:
  - `LineReader`: bytes in any split -> complete lines, with two bounds checked before anything grows:
      * a line longer than `max_line` (1,024) bytes *including its CRLF* is refused with a *recoverable*
        `LineTooLong`: the reader drops bytes up to and including the next LF (holding at most `max_line`
        bytes meanwhile), raises once when that LF arrives (so the `500 5.5.2` reply lands in the pipelined
        order of the offending line), and carries on with the next line;
      * `max_unterminated` (60,000) bytes without any LF is a *fatal* `LineTooLong`: the peer is not speaking
        SMTP, the session answers `500 5.5.2 line too long` and closes. The reader stays dead (raises again).
    A line ends at LF; one CR before it is removed (a bare LF is tolerated and counted as two bytes). Nothing
    else is stripped: X-LINK2STATE chunk data may begin or end with spaces.
  - command parsing (`parse_command`): EHLO, HELO, X-EXPS, X-LINK2STATE, MAIL FROM:, RCPT TO:, DATA, NOOP,
    RSET, QUIT; verbs case-insensitive. Unknown verbs raise `SmtpError` 500 5.5.1, bad arguments 501 5.5.4.
  - reply formatting (`format_reply`) and incremental multi-line reply parsing (`ReplyParser`, `250-`/`250 `),
  - dot-stuffing for DATA (`dot_stuff`, `DataReader`).
Invariants: lines and arguments are bytes (non-ASCII UTF-8 passes through untouched); every error this module
raises is a `ProtoError` subclass carrying the reply a server should send.
May import: the standard library and proto.*.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from proto.errors import ProtoError

CRLF = b"\r\n"
MAX_LINE = 1024  # bytes including CRLF (KB 812455)
MAX_UNTERMINATED = 60_000  # bytes without a LF before the peer is dropped
MAX_REPLY_LINES = 100  # continuation lines in one multi-line reply


class SmtpError(ProtoError):
    """A command or reply that cannot be accepted; `reply` is the line a server answers with."""

    def __init__(self, code: int, enhanced: str, reason: str, *, fatal: bool = False) -> None:
        super().__init__(f"{code} {enhanced} {reason}")
        self.code = code
        self.enhanced = enhanced
        self.reason = reason
        self.fatal = fatal

    @property
    def reply(self) -> bytes:
        return format_reply(self.code, f"{self.enhanced} {self.reason}")


class LineTooLong(SmtpError):
    """A line over `max_line` bytes (recoverable) or `max_unterminated` bytes without a LF (fatal)."""

    def __init__(self, reason: str, *, fatal: bool) -> None:
        super().__init__(500, "5.5.2", reason, fatal=fatal)


class ReplyError(SmtpError):
    """A server reply that does not follow RFC 5321 §4.2 (the client side gives up on the session)."""

    def __init__(self, reason: str) -> None:
        super().__init__(500, "5.5.2", reason, fatal=True)


# ------------------------------------------------------------------------------------------------ lines


class LineReader:
    """Incremental line splitter: `feed(bytes)`, then `next_line()` until it returns None.

    Between calls it holds at most `max_line` bytes (plus what one `feed` brought), whatever the peer sends.
    The outcome does not depend on how the input is split.
    """

    def __init__(self, max_line: int = MAX_LINE, max_unterminated: int = MAX_UNTERMINATED) -> None:
        if not 3 <= max_line <= max_unterminated:
            raise ValueError("need 3 <= max_line <= max_unterminated")
        self.max_line = max_line
        self.max_unterminated = max_unterminated
        self._buf = bytearray()
        self._skipped: int | None = None  # not None: inside an over-long line, this many bytes of it dropped
        self._dead: LineTooLong | None = None

    def feed(self, data: bytes) -> None:
        if self._dead is None:
            self._buf += data

    @property
    def pending(self) -> int:
        """Bytes of an unfinished line held (what is lost if the peer closes now)."""
        return len(self._buf)

    @property
    def dead(self) -> bool:
        return self._dead is not None

    def next_line(self) -> bytes | None:
        """The next complete line without its line ending, or None; raises `LineTooLong`."""
        if self._dead is not None:
            raise self._dead
        if self._skipped is not None:
            return self._skip()
        buf = self._buf
        nl = buf.find(b"\n")
        if nl < 0:
            if len(buf) >= self.max_line:
                self._skipped = 0
                return self._skip()
            return None
        has_cr = nl > 0 and buf[nl - 1] == 0x0D
        if (nl + 1 if has_cr else nl + 2) > self.max_line:  # a bare LF counts as CRLF: one bound for both
            self._skipped = 0
            return self._skip()
        line = bytes(buf[: nl - 1 if has_cr else nl])
        del buf[: nl + 1]
        return line

    def _skip(self) -> bytes | None:
        """Drop the over-long line; raise when its LF is seen (recoverable) or it passes the fatal bound."""
        assert self._skipped is not None
        nl = self._buf.find(b"\n")
        before_lf = self._skipped + (len(self._buf) if nl < 0 else nl)
        if before_lf >= self.max_unterminated:
            self._buf.clear()
            self._dead = LineTooLong(f"line too long (no LF in {self.max_unterminated} bytes)", fatal=True)
            raise self._dead
        if nl < 0:
            self._skipped = before_lf
            self._buf.clear()
            return None
        del self._buf[: nl + 1]
        self._skipped = None
        raise LineTooLong(f"line too long (over {self.max_line} bytes)", fatal=False)


# ------------------------------------------------------------------------------------------------ commands


class Verb(enum.Enum):
    EHLO = "EHLO"
    HELO = "HELO"
    X_EXPS = "X-EXPS"
    X_LINK2STATE = "X-LINK2STATE"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"
    NOOP = "NOOP"
    RSET = "RSET"
    QUIT = "QUIT"


_VERBS = {v.value.encode(): v for v in Verb}
_NO_ARGS = {Verb.DATA, Verb.QUIT, Verb.RSET}  # NOOP may carry a string (RFC 5321 §4.1.1.9)
_PATH = re.compile(rb"<([^<>\s]*)>((?: [^\s]+)*)")


@dataclass(frozen=True, slots=True)
class Command:
    """One parsed command line. `args` is everything after the verb's separating space, unmodified;
    `address` is the path of MAIL FROM/RCPT TO (without <>), `params` their ESMTP parameters."""

    verb: Verb
    args: bytes = b""
    address: str = ""
    params: tuple[str, ...] = ()


def parse_command(line: bytes) -> Command:
    """Parse one command line (no CRLF); `SmtpError` 500 5.5.1 (unknown verb) or 501 5.5.4 (bad arguments)."""
    head, _, args = line.partition(b" ")
    verb = _VERBS.get(head.upper())
    if verb is None:
        shown = head[:32].decode("ascii", "replace")
        raise SmtpError(500, "5.5.1", f"command unrecognized: {shown}")
    if verb in _NO_ARGS and args.strip():
        raise SmtpError(501, "5.5.4", f"{verb.value} takes no arguments")
    if verb in (Verb.EHLO, Verb.HELO) and not args.strip():
        raise SmtpError(501, "5.5.4", f"{verb.value} requires a domain")
    if verb in (Verb.X_EXPS, Verb.X_LINK2STATE) and not args:
        raise SmtpError(501, "5.5.4", f"{verb.value} requires arguments")
    if verb is Verb.MAIL:
        return _path_command(verb, args, b"FROM:", allow_null=True)
    if verb is Verb.RCPT:
        return _path_command(verb, args, b"TO:", allow_null=False)
    return Command(verb, args)


def _path_command(verb: Verb, args: bytes, keyword: bytes, *, allow_null: bool) -> Command:
    if args[: len(keyword)].upper() != keyword:
        raise SmtpError(501, "5.5.4", f"syntax: {verb.value} {keyword.decode()}<address>")
    rest = args[len(keyword) :].lstrip(b" ")
    m = _PATH.fullmatch(rest.rstrip(b" "))
    if m is None or (not m.group(1) and not allow_null):
        raise SmtpError(501, "5.5.4", f"syntax: {verb.value} {keyword.decode()}<address>")
    try:
        address = m.group(1).decode("utf-8")
        params = tuple(p.decode("utf-8") for p in m.group(2).split())
    except UnicodeDecodeError:
        raise SmtpError(501, "5.5.4", "address is not UTF-8") from None
    return Command(verb, args, address, params)


def format_command(verb: Verb, args: str | bytes = b"") -> bytes:
    """`VERB args\\r\\n` (the client side)."""
    arg = args.encode("utf-8") if isinstance(args, str) else args
    return verb.value.encode() + (b" " + arg if arg else b"") + CRLF


# ------------------------------------------------------------------------------------------------ replies


def format_reply(code: int, *lines: str | bytes) -> bytes:
    """`code-line` for all but the last line and `code line` for the last; one line `code` if none given."""
    if not 200 <= code <= 599:
        raise ValueError(f"reply code out of range: {code}")
    texts = [t.encode("utf-8") if isinstance(t, str) else t for t in lines] or [b""]
    prefix = b"%d" % code
    out = [prefix + b"-" + t + CRLF for t in texts[:-1]]
    last = texts[-1]
    out.append(prefix + (b" " + last if last else b"") + CRLF)
    return b"".join(out)


@dataclass(frozen=True, slots=True)
class Reply:
    """One complete (possibly multi-line) server reply; `lines` are the texts after `code-`/`code `."""

    code: int
    lines: tuple[bytes, ...]

    @property
    def text(self) -> str:
        return "\n".join(t.decode("utf-8", "replace") for t in self.lines)

    @property
    def positive(self) -> bool:
        return self.code < 400


_REPLY_LINE = re.compile(rb"([2-5][0-9][0-9])([ -]?)(.*)", re.DOTALL)
_SINGLE_LINE_CODES = {b"%d " % code: code for code in range(200, 600)}  # `_REPLY_LINE` with a space, any text


class ReplyParser:
    """Feed reply lines (from a `LineReader`); returns a `Reply` when its last line arrives, else None."""

    def __init__(self, max_lines: int = MAX_REPLY_LINES) -> None:
        self.max_lines = max_lines
        self._code: int | None = None
        self._lines: list[bytes] = []

    def feed_line(self, line: bytes) -> Reply | None:
        if self._code is None:
            code = _SINGLE_LINE_CODES.get(line[:4])
            if code is not None:  # `ddd text`, no reply in progress: what the general path returns
                return Reply(code, (line[4:],))
        return self._feed_line_general(line)

    def _feed_line_general(self, line: bytes) -> Reply | None:
        m = _REPLY_LINE.fullmatch(line)
        if m is None or (not m.group(2) and m.group(3)):
            raise ReplyError(f"malformed reply line: {line[:40]!r}")
        code = int(m.group(1))
        if self._code is not None and code != self._code:
            raise ReplyError(f"reply code changed inside a multi-line reply: {self._code} then {code}")
        self._code = code
        self._lines.append(m.group(3))
        if m.group(2) == b"-":
            if len(self._lines) >= self.max_lines:
                raise ReplyError(f"multi-line reply over {self.max_lines} lines")
            return None
        reply = Reply(code, tuple(self._lines))
        self._code, self._lines = None, []
        return reply


# ------------------------------------------------------------------------------------------------ DATA


def dot_stuff(body: bytes) -> bytes:
    """The DATA payload for `body`: lines end in CRLF, a leading `.` is doubled, then `.\\r\\n` ends it.

    `body` lines may end in CRLF or LF; a final line without an ending gets one.
    """
    if not body:
        return b".\r\n"
    lines = body.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    out = []
    for raw in lines:
        line = raw[:-1] if raw.endswith(b"\r") else raw
        out.append((b"." + line if line.startswith(b".") else line) + CRLF)
    out.append(b".\r\n")
    return b"".join(out)


class DataReader:
    """Collects DATA lines (from a `LineReader`) until the lone `.`; undoes dot-stuffing; bounds the size.

    `feed_line` returns True when the message is complete; then `body` holds it (CRLF line endings) unless
    it went over `max_size` (`oversize` is set and the body is dropped) or a line was over the line bound
    (`line_too_long`, reported by the caller through `feed_too_long`; the body is dropped too).
    """

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._parts: list[bytes] = []
        self.size = 0
        self.oversize = False
        self.line_too_long = False

    def feed_too_long(self) -> None:
        self.line_too_long = True
        self._parts.clear()

    def feed_line(self, line: bytes) -> bool:
        if line == b".":
            return True
        if line.startswith(b"."):
            line = line[1:]
        self.size += len(line) + 2
        if self.size > self.max_size:
            self.oversize = True
            self._parts.clear()
        elif not (self.oversize or self.line_too_long):
            self._parts.append(line + CRLF)
        return False

    @property
    def body(self) -> bytes:
        return b"".join(self._parts)
