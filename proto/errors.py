"""The only exceptions the wire layer raises.

Owns: `ProtoError` and its two kinds. A decoder may raise nothing but `DecodeError` (with the byte offset where
the input went wrong and a one-line reason); an encoder nothing but `EncodeError`.
May import: the standard library only.
"""

from __future__ import annotations


class ProtoError(Exception):
    """Base of every wire-layer error."""


class DecodeError(ProtoError):
    """Input bytes that do not follow the grammar, or exceed a limit."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"{reason} at byte {offset}")
        self.offset = offset
        self.reason = reason


class EncodeError(ProtoError):
    """A model that cannot be written canonically (bad GUID, forbidden byte, negative number, ...)."""
