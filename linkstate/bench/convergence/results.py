"""What a benchmark run measures: `Run`, `Scenario`, the convergence definition and its arithmetic.

Owns: DEFINITION (printed with every result and stored in every file), one measured event (`Run`), one scenario
and its summary (percentiles, means), `finish_run` (convergence, t_hop and per-server arrivals from a timeline of
digests), and the traffic snapshots the drivers take before and after an event.
May import: anything (a top layer, like linkstate.cli).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from linkstate.sim.network import Traffic

DEFINITION = (
    "convergence = t(last server first holds the final digest) - t(commit); the final digest is the MD5 digest "
    "of the OrgInfo table every server holds once the event has settled; the commit is the first moment any "
    "server holds it (the origin master writing its new section: for a minor update after the state delay, for "
    "a major or user update at once); every server counts, members included; messages and bytes are every write "
    "on the wire (691 and SMTP separately) from the commit to convergence (tcp: from the injection); "
    "t_hop = the first neighbouring group's bridgehead holding the final digest - t(commit) (one bridgehead-to-"
    "bridgehead exchange of the same packet, in the same run); d = the origin group's eccentricity in group "
    "hops; floor ratio = convergence / (d x t_hop)."
)
EVENTS = ("major", "minor", "user", "oscillation")


@dataclass
class Run:
    """One measured event."""

    convergence: float | None  # seconds (virtual on sim/memory, wall on tcp); None: did not converge
    t_hop: float | None
    depth: int
    ratio: float | None
    messages_691: int
    bytes_691: int
    messages_smtp: int
    bytes_smtp: int
    packet_bytes: int  # the final OrgInfo frame
    wall_s: float
    servers: int
    arrivals: dict[str, float] = field(default_factory=dict)  # server -> seconds after the commit
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def messages(self) -> int:
        return self.messages_691 + self.messages_smtp

    @property
    def bytes(self) -> int:
        return self.bytes_691 + self.bytes_smtp

    @property
    def bytes_per_server_packets(self) -> float:
        return self.bytes / max(1, self.servers) / max(1, self.packet_bytes)


@dataclass
class Scenario:
    shape: str
    groups: int
    servers_per_group: int
    event: str
    transport: str
    settings: dict[str, Any]
    seed: int
    runs: list[Run] = field(default_factory=list)
    note: str = ""
    warmup_s: float | None = None  # wall time of the start (sim: the warm-up; tcp: the start-up), not in any run
    peak_rss_mb: float | None = None  # the process's peak resident memory while it ran this scenario (and before)

    @property
    def servers(self) -> int:
        return self.groups * self.servers_per_group

    @property
    def key(self) -> str:
        compat = "-e2k" if self.settings.get("compat_e2k") else ""
        exchange = f"-{self.settings['exchange']}" if self.settings.get("exchange") else ""
        return f"{self.shape}-{self.groups}x{self.servers_per_group}-{self.event}{compat}{exchange}-{self.transport}"

    @property
    def family(self) -> str:
        """The key without the exchange: the scenarios `--exchange full,delta` puts side by side."""
        exchange = self.settings.get("exchange")
        return self.key.replace(f"-{exchange}-", "-", 1) if exchange else self.key

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["key"] = self.key
        data["servers"] = self.servers
        data["summary"] = summary(self)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scenario:
        """A scenario written by `to_json` (a child process's, for `--exchange full,delta`)."""
        fields = {k: data[k] for k in ("shape", "groups", "servers_per_group", "event", "transport", "settings",
                                       "seed", "note", "warmup_s", "peak_rss_mb") if k in data}  # fmt: skip
        return cls(**fields, runs=[Run(**r) for r in data.get("runs", [])])


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in 0..100."""
    if not values:
        return math.nan
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summary(s: Scenario) -> dict[str, Any]:
    conv = [r.convergence for r in s.runs if r.convergence is not None]
    ratios = [r.ratio for r in s.runs if r.ratio is not None]
    hops = [r.t_hop for r in s.runs if r.t_hop is not None]
    n = max(1, len(s.runs))
    out: dict[str, Any] = {
        "runs": len(s.runs),
        "converged": len(conv),
        "p50": percentile(conv, 50),
        "p90": percentile(conv, 90),
        "p99": percentile(conv, 99),
        "max": max(conv) if conv else math.nan,
        "messages": sum(r.messages for r in s.runs) / n,
        "messages_691": sum(r.messages_691 for r in s.runs) / n,
        "messages_smtp": sum(r.messages_smtp for r in s.runs) / n,
        "bytes": sum(r.bytes for r in s.runs) / n,
        "bytes_691": sum(r.bytes_691 for r in s.runs) / n,
        "bytes_smtp": sum(r.bytes_smtp for r in s.runs) / n,
        "packet_bytes": max((r.packet_bytes for r in s.runs), default=0),
        "bytes_per_server_packets": sum(r.bytes_per_server_packets for r in s.runs) / n,
        "t_hop_p50": percentile(hops, 50),
        "depth": max((r.depth for r in s.runs), default=0),
        "ratio_p50": percentile(ratios, 50),
        "ratio_max": max(ratios) if ratios else math.nan,
        "wall_s_max": max((r.wall_s for r in s.runs), default=0.0),
        "wall_s_p50": percentile([r.wall_s for r in s.runs], 50),
        "warmup_s": s.warmup_s,
        "peak_rss_mb": s.peak_rss_mb,
        "peak_rss_per_server_kb": s.peak_rss_mb * 1024 / s.servers if s.peak_rss_mb else None,
    }
    extras = [r.extra for r in s.runs if r.extra]
    if extras:
        out["extra"] = extras[0] if len(extras) == 1 else extras
    return out


def finish_run(
    timeline: list[tuple[float, str, str]],
    old: str,
    final: str | None,
    servers: list[str],
    neighbours: set[str],
    depth: int,
) -> tuple[float | None, float | None, dict[str, float]]:
    """From (time, server, digest) records after the event: (convergence, t_hop, arrivals after the commit)."""
    if final is None:
        return None, None, {}
    first: dict[str, float] = {}
    for t, name, digest in timeline:
        if digest == final and name not in first:
            first[name] = t
    if not first:
        return None, None, {}
    commit = min(first.values())
    arrivals = {name: first[name] - commit for name in servers if name in first}
    if len(arrivals) < len(servers):
        return None, None, arrivals
    hop_times = [arrivals[n] for n in neighbours if n in arrivals]
    t_hop = min(hop_times) if hop_times else None
    return max(arrivals.values()), t_hop, arrivals


def ratio_of(conv: float | None, t_hop: float | None, depth: int) -> float | None:
    if conv is None or not t_hop or depth <= 0:
        return None
    return conv / (depth * t_hop)


def snapshot(t: Traffic) -> Traffic:
    return Traffic(t.messages, t.bytes, {k: Traffic(v.messages, v.bytes) for k, v in t.by_proto.items()})


def diff(after: Traffic, before: Traffic) -> tuple[int, int, int, int]:
    """(messages_691, bytes_691, messages_smtp, bytes_smtp) between two snapshots."""
    out = []
    for proto in ("691", "smtp"):
        a, b = after.by_proto.get(proto, Traffic()), before.by_proto.get(proto, Traffic())
        out += [a.messages - b.messages, a.bytes - b.bytes]
    return out[0], out[1], out[2], out[3]
