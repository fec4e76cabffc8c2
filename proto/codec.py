"""OrgInfo decode/encode/digest: the only place grammar containers become models.

Owns: the public codec API used by the rest of the project:
  - `decode_strict(data, limits)`   canonical bytes only, every length checked;
  - `decode_tolerant(data, limits)` the printed/sanitized form too, repairs reported as warnings;
  - `encode(org, digest=None)`, `digest(org)`, `encode_section`, `frame_from_sections` (from proto.encode).
Both decoders return a `Decoded` and raise nothing but `DecodeError`. The decoders and their result/limit
types live in proto.decode (the fast path); the construct grammar that is their reference is proto.orginfo.
May import: the standard library, construct, and proto.*.
"""

from __future__ import annotations

from proto.decode import DEFAULT_LIMITS, Decoded, Limits, Warning_, decode_strict, decode_tolerant
from proto.encode import digest, encode, encode_section, frame_from_sections

__all__ = [
    "DEFAULT_LIMITS",
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
