"""Mutual HMAC-SHA256 challenge-response, shared by TCP 691 (`AUTH`) and SMTP (`X-EXPS`) (DECISIONS §2, §3).

Owns: the proof computation and its check. Both proofs cover both nonces and both server GUIDs and are keyed by
the organization secret; each side's proof carries its role label, so a proof cannot be reflected back.
The dialogue (syntax lives in proto/rg691.py and proto/smtp.py):
  1. initiator -> responder: initiator GUID, initiator nonce
  2. responder -> initiator: responder GUID, responder nonce, responder proof
  3. initiator checks it, then -> responder: initiator proof
  4. responder checks it: success (events 995/996) or failure (961/962) and the connection is closed.
Nonces are made by the caller (the shell) and passed in: the core draws no randomness.
May import: the standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
import re

SCHEME = "LINKSTATE-HMAC-SHA256"
NONCE_HEX = 32  # 16 random bytes, hex
_HEX = re.compile(r"[0-9a-f]+")

INITIATOR = "initiator"
RESPONDER = "responder"


def proof(
    secret: bytes,
    role: str,
    initiator_nonce: str,
    responder_nonce: str,
    initiator_guid: str,
    responder_guid: str,
) -> str:
    """The 64-hex proof that the `role` side knows the secret, bound to this exchange."""
    msg = "|".join(("linkstate-auth-v1", role, initiator_nonce, responder_nonce, initiator_guid, responder_guid))
    return hmac.new(secret, msg.encode("ascii", "replace"), hashlib.sha256).hexdigest()


def check(
    secret: bytes,
    role: str,
    claimed: str,
    initiator_nonce: str,
    responder_nonce: str,
    initiator_guid: str,
    responder_guid: str,
) -> bool:
    """Constant-time check of a peer's proof."""
    expected = proof(secret, role, initiator_nonce, responder_nonce, initiator_guid, responder_guid)
    return hmac.compare_digest(expected.encode(), claimed.encode("ascii", "replace"))


def valid_nonce(value: str) -> bool:
    return len(value) == NONCE_HEX and bool(_HEX.fullmatch(value))
