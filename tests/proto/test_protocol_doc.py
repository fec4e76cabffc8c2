"""docs/PROTOCOL.md stays in step with the code: its byte-exact examples are what the encoder writes (§1, §2.3) and
its X-LINK2STATE transcripts what the sessions write (§3.9, §3.11)."""

from __future__ import annotations

from pathlib import Path

import pytest

from proto import rg691
from proto.codec import decode_strict, decode_tolerant, encode
from proto.model import (
    AddressSpace,
    Bridgehead,
    BridgeheadState,
    Connector,
    Member,
    OrgInfo,
    RoutingGroup,
    Version,
)
from tests.proto.transcripts import TRANSCRIPTS

ROOT = Path(__file__).resolve().parent.parent.parent
DOC = (ROOT / "docs" / "PROTOCOL.md").read_bytes()
SAMPLE = (ROOT / "tests" / "vectors" / "seed-sample-l8818.txt").read_bytes()


def _example(prefix: bytes) -> bytes:
    (line,) = [ln for ln in DOC.split(b"\n") if ln.startswith(prefix)]
    return line


def test_tiny_example() -> None:
    rg1, master, conn, bh = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210", "1" * 32, "2" * 32
    org = OrgInfo(
        (
            RoutingGroup(
                guid=rg1,
                master=master,
                version=Version(1, 0, 2),
                version_guid="0" * 31 + "1",
                smtp_address="*.rg1",
                x400_address="c=US;a= ;p=Org;o=Exchange;cn=rg1;*",
                x500_address="/o=Org/ou=Admin Group/*/rg1",
                members=(Member(master),),
                connectors=(
                    Connector(
                        guid=conn,
                        type="SMTP",
                        source_address=f"_{conn}_S",
                        target_address="",
                        dn="/o=Org/cn=SMTP out",
                        reject=("CN=bob,CN=Users,DC=org,DC=com",),
                        address_spaces=(AddressSpace("SMTP", "*", 20),),
                        bridgeheads=(Bridgehead(bh, BridgeheadState.CONN_AVAIL, "mx1.org.com"),),
                    ),
                ),
            ),
        )
    )
    raw = _example(b"{0000026a} ORGINFO ")
    assert raw == encode(org)
    assert decode_strict(raw).orginfo == org


def test_f2_example() -> None:
    d = decode_tolerant(SAMPLE)
    assert _example(b"{00000451} ORGINFO ") == encode(d.orginfo, digest=d.digest)


@pytest.mark.parametrize("name", list(TRANSCRIPTS))
def test_x_link2state_transcripts_are_the_codes(name: str) -> None:
    """§3.9 and §3.11: every transcript is what the sessions write, byte for byte (trailing spaces included)."""
    block = "```\n" + "\n".join(TRANSCRIPTS[name]()) + "\n```"
    assert block.encode() in DOC, f"docs/PROTOCOL.md lacks the transcript {name!r} (python -m tests.proto.transcripts)"


def test_691_delta_examples_are_the_codes() -> None:
    """§2.3: the capability words and REPLY RESEND as the encoder writes them."""
    member, group = "1c15401a864b5dfb9d2c954a3fd38c0f", "f6dfa3ae5b70502fb60f715f5138ade9"
    master, digest = "15765c461b0c58c3adca0bc66f1ad2e6", "d1661afcf571d8de3b052cf3e393bbc4"
    vguid = "d862664f2aaf5dafa575a76a658fc8ec"
    frames = [
        rg691.Attach(member, group, master, digest, 0, 0, 0, vguid, caps=(rg691.CAP_DELTA,)),
        rg691.AttachAck(True, digest, 1, 3, True, caps=(rg691.CAP_DELTA,)),
        rg691.Reply("a0e857233a10ec3954e281246b67e67b", False, resend=True),
    ]
    for msg in frames:
        raw = rg691.encode_message(msg)
        assert b"`" + raw + b"`" in DOC, raw
        assert rg691.decode_frame(raw, extensions=True) == msg
