"""Codec benchmark: strict/tolerant decode and encode throughput against hashlib.md5, and model memory.

Owns: the "Codec" figures of bench/README.md. Builds tables of 10, 100 and 1,000 routing groups (2 members
and 3 connectors each, a few restriction DNs, address spaces and bridgeheads), then for each prints bytes,
MB/s of strict decode, tolerant decode and encode, each as a ratio to md5 over the same bytes in the same run
(best of N), and the tracemalloc peak of a strict decode as a ratio to the packet size.
Usage: python bench/bench_codec.py [--json] [--repeat N] [--check]
  --json   print only JSON; --check exits 1 if a 1,000-group target is missed (strict <= 60x md5,
  encode <= 30x, tolerant <= 100x, model <= 10x the packet).
May import: anything (it is a tool, not part of the package).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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

TARGETS = {"strict": 60.0, "encode": 30.0, "tolerant": 100.0, "model": 10.0}


def _guid(*parts: object) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, "/".join(map(str, parts))).hex


def build(groups: int) -> OrgInfo:
    rgs = []
    for g in range(groups):
        rg_guid = _guid("rg", g)
        hyph = str(uuid.UUID(rg_guid)).upper()
        members = tuple(Member(_guid("srv", g, m), True, 1, 0x1AAE, "0701000000000101") for m in range(2))
        conns = []
        for c in range(3):
            cg = _guid("conn", g, c)
            conns.append(
                Connector(
                    guid=cg,
                    type="SMTP" if c else "RGC",
                    source_address=f"_{cg}_S",
                    target_address=f"_{cg}_D" if c == 0 else "",
                    dn=f"/o=Example Org/ou=Admin Group {g}/cn=Configuration/cn=Connections/cn=Conn {g}-{c}",
                    max_size=None if c else 10_485_760,
                    reject=tuple(f"CN=user{g}-{i},CN=Users,DC=example,DC=com" for i in range(c + 1)),
                    address_spaces=(
                        (AddressSpace("RG", _guid("rg", (g + 1) % groups), 10),)
                        if c == 0
                        else (AddressSpace("SMTP", f"*.domain{g}-{c}.example", 20 + c),)
                    ),
                    bridgeheads=tuple(
                        sorted(
                            (
                                Bridgehead(_guid("vs", g, c, b), BridgeheadState.CONN_AVAIL, f"bh{b}.s{g}.example.com")
                                for b in range(2)
                            ),
                            key=lambda x: x.guid,
                        )
                    ),
                    target_bridgeheads=(f"bh0.site{(g + 1) % groups}.example.com",) if c == 0 else (),
                )
            )
        rgs.append(
            RoutingGroup(
                guid=rg_guid,
                master=members[0].guid,
                version=Version(3, g % 7, g % 3),
                version_guid=_guid("ver", g),
                smtp_address=f"*.{hyph}",
                x400_address=f"c=US;a= ;p=Example Org;o=Exchange;cn={hyph};*",
                x500_address=f"/o=Example Org/ou=Admin Group {g}/*/{hyph}",
                members=tuple(sorted(members, key=lambda m: m.guid)),
                connectors=tuple(sorted(conns, key=lambda c: c.guid)),
            )
        )
    return OrgInfo(tuple(sorted(rgs, key=lambda r: r.guid)))


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def peak_memory(fn: Callable[[], object]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    return peak


def measure(groups: int, repeat: int) -> dict[str, Any]:
    org = build(groups)
    raw = encode(org)
    assert decode_strict(raw).orginfo == org
    n = len(raw)
    t_md5 = best(lambda: hashlib.md5(raw, usedforsecurity=False).digest(), repeat * 5)
    t_strict = best(lambda: decode_strict(raw), repeat)
    t_tol = best(lambda: decode_tolerant(raw), repeat)
    # The printed form (every separator a '.', no ORGINFO tag): the tolerant parser does all the work,
    # and the digest needs a re-encode. Strings keep their length, so only the outer length is warned about.
    printed = raw[:10] + b".." + raw[19:].replace(b" ", b".")
    assert len(decode_tolerant(printed).warnings) == 1
    t_printed = best(lambda: decode_tolerant(printed), repeat)
    t_enc = best(lambda: encode(org), repeat)
    peak = peak_memory(lambda: decode_strict(raw))
    mb = n / 1e6
    return {
        "groups": groups,
        "bytes": n,
        "md5_MBps": round(mb / t_md5, 1),
        "strict_MBps": round(mb / t_strict, 2),
        "tolerant_MBps": round(mb / t_tol, 2),
        "encode_MBps": round(mb / t_enc, 2),
        "printed_MBps": round(mb / t_printed, 2),
        "strict_x_md5": round(t_strict / t_md5, 1),
        "tolerant_x_md5": round(t_tol / t_md5, 1),
        "encode_x_md5": round(t_enc / t_md5, 1),
        "printed_x_md5": round(t_printed / t_md5, 1),
        "model_peak_bytes": peak,
        "model_x_packet": round(peak / n, 2),
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'groups':>6} {'bytes':>10} {'md5 MB/s':>9} {'strict MB/s':>11} {'(x md5)':>8} "
        f"{'tolerant MB/s':>13} {'(x md5)':>8} {'encode MB/s':>11} {'(x md5)':>8} {'printed MB/s':>12} "
        f"{'(x md5)':>8} {'model/packet':>12}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['groups']:>6} {r['bytes']:>10} {r['md5_MBps']:>9} {r['strict_MBps']:>11} {r['strict_x_md5']:>8} "
            f"{r['tolerant_MBps']:>13} {r['tolerant_x_md5']:>8} {r['encode_MBps']:>11} {r['encode_x_md5']:>8} "
            f"{r['printed_MBps']:>12} {r['printed_x_md5']:>8} {r['model_x_packet']:>12}"
        )
    return "\n".join(lines)


def check(row: dict[str, Any]) -> list[str]:
    misses = []
    for key, field in (("strict", "strict_x_md5"), ("encode", "encode_x_md5"), ("tolerant", "tolerant_x_md5"),
                       ("tolerant", "printed_x_md5"), ("model", "model_x_packet")):  # fmt: skip
        if row[field] > TARGETS[key]:
            misses.append(f"{field} = {row[field]} > {TARGETS[key]}")
    return misses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only JSON")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions per figure (best is kept)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a 1,000-group target is missed")
    parser.add_argument("--sizes", default="10,100,1000", help="comma-separated routing-group counts")
    args = parser.parse_args()
    rows = [measure(int(s), args.repeat) for s in args.sizes.split(",")]
    report = {"python": sys.version.split()[0], "targets_1000": TARGETS, "rows": rows}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(table(rows))
        print()
        print(json.dumps(report))
    big = [r for r in rows if r["groups"] == 1000]
    misses = check(big[0]) if big else []
    for m in misses:
        print(f"target missed: {m}", file=sys.stderr)
    return 1 if (args.check and misses) else 0


if __name__ == "__main__":
    sys.exit(main())
