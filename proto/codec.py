"""OrgInfo decode/encode/digest: the only place grammar containers become models.

Owns: the public codec API used by the rest of the project:
  - `decode_strict(data, limits)`   canonical bytes only, every length checked;
  - `decode_tolerant(data, limits)` the printed/sanitized form too, repairs reported as warnings;
  - `encode(org, digest=None)`, `digest(org)`, `encode_section`, `frame_from_sections` (from proto.encode).
Both decoders return a `Decoded` and raise nothing but `DecodeError`.
May import: the standard library, construct, and proto.*.
"""

from __future__ import annotations

from dataclasses import dataclass

from proto.encode import digest, encode, encode_section, frame_from_sections
from proto.model import OrgInfo

__all__ = [
    "Decoded",
    "Limits",
    "Warning_",
    "decode_strict",
    "decode_tolerant",
    "digest",
    "encode",
    "encode_section",
    "frame_from_sections",
]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds checked before allocating (DECISIONS §1); all may be lowered."""

    max_frame: int = 16 * 1024 * 1024
    max_string: int = 64 * 1024
    max_depth: int = 8
    max_items: int = 100_000


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class Warning_:
    """A repair the tolerant decoder made: where, and what."""

    offset: int
    reason: str


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded frame: the table plus what the frame said about itself."""

    orginfo: OrgInfo
    digest: str  # as carried in the frame
    computed_digest: str  # MD5 of the canonical form of `orginfo`
    length: int  # the frame's declared body length (the `{len8}` value)
    warnings: tuple[Warning_, ...] = ()


def decode_strict(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Decoded:
    raise NotImplementedError("being written: proto/decode.py")


def decode_tolerant(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Decoded:
    raise NotImplementedError("being written: proto/decode.py")
