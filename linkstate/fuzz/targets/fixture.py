"""The fixed identities every session target runs with, so a recorded seed authenticates on replay.

Owns: the organization secret, the GUIDs of the session under test and of its scripted peer, and the nonce
sources (a counter, so the nonces of a run depend only on how many were drawn). A seed recorded against these
(linkstate.fuzz.seeds) carries valid proofs, which lets the fuzzer reach the authenticated states from a fresh
session too.
May import: the standard library only.
"""

from __future__ import annotations

from collections.abc import Callable

SECRET = b"linkstate-fuzz-secret"
LOCAL_GUID = "1f" * 16  # the session under test
PEER_GUID = "2e" * 16  # the scripted peer that authenticates it first
FQDN = "fuzz.example"


def counter_nonces(salt: int) -> Callable[[], str]:
    """Nonces `salt:counter` as 32 hex digits: the same sequence on every run."""
    count = 0

    def draw() -> str:
        nonlocal count
        count += 1
        return f"{salt:016x}{count:016x}"

    return draw


def nonce(salt: int) -> str:
    return counter_nonces(salt)()
