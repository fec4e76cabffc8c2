"""docs/PROTOCOL.md §1 stays in step with the code: its byte-exact examples are what the encoder writes."""

from __future__ import annotations

from pathlib import Path

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
