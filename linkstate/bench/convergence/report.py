"""What a benchmark prints and writes: tables, JSON/CSV files, PNG plots, `compare`, and the progress line.

Owns: number formatting, the per-scenario table, the machine description stored with every result, the JSON and
CSV files (both carry DEFINITION), the plots (matplotlib, the bench extra), the comparison of two result files,
and `Progress` (a plain stderr progress bar).
May import: anything (a top layer, like linkstate.cli).
"""

from __future__ import annotations

import contextlib
import csv
import importlib.metadata
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from linkstate.bench.convergence.results import DEFINITION, Scenario, percentile, summary

ROOT = Path(__file__).resolve().parents[3]  # the source checkout, when the package runs from one


class Progress:
    """A plain stderr progress bar (one rewritten line on a terminal, one line per step otherwise)."""

    def __init__(self, total: int, label: str, enabled: bool = True) -> None:
        self.total, self.label, self.done = max(1, total), label, 0
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.t0 = time.monotonic()

    def step(self, what: str = "") -> None:
        self.done += 1
        self.show(what)

    def show(self, what: str = "") -> None:
        if not self.enabled:
            return
        width = 24
        filled = int(width * self.done / self.total)
        bar = "#" * filled + "-" * (width - filled)
        elapsed = time.monotonic() - self.t0
        line = f"[{bar}] {self.done}/{self.total} {self.label} {what} ({elapsed:.1f}s)"
        if self.tty:
            sys.stderr.write("\r\x1b[K" + line)
            if self.done >= self.total:
                sys.stderr.write("\n")
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def fmt_s(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if v >= 100:
        return f"{v:.0f}s"
    if v >= 1:
        return f"{v:.2f}s"
    return f"{v * 1000:.1f}ms"


def fmt_n(v: float) -> str:
    if v >= 10_000_000:
        return f"{v / 1e6:.0f}M"
    if v >= 10_000:
        return f"{v / 1e3:.0f}k"
    return f"{v:.0f}"


def table(s: Scenario) -> str:
    sm = summary(s)
    clock = "wall" if s.transport == "tcp" else "virtual"
    head = f"== {s.key}: {s.servers} servers ({s.groups} groups x {s.servers_per_group}), {s.event}, {clock} time"
    lines = [head]
    if s.note:
        memory = f", peak RSS {s.peak_rss_mb:.0f} MB" if s.peak_rss_mb else ""
        lines.append(f"   {s.note}{memory}")
    if s.event == "oscillation":
        for r in s.runs:
            x = r.extra
            lines.append(
                f"   {x['flaps']} flaps ({x['reports']} reports, every {x['period_s']:.0f}s "
                f"for {x['duration_s']:.0f}s),"
                f" state_delay {x['state_delay_s']:.0f}s: {x['minor_updates']} minor updates, "
                f"{x['state_commits']} state commits, {x['oscillations_suppressed']} windows suppressed; "
                f"{x['minor_per_window']:.2f} minor updates per state-delay window, {x['minor_per_flap']:.2f} per "
                f"flap; {fmt_n(r.messages)} msgs, {fmt_n(r.bytes)} bytes; {r.wall_s:.1f}s wall"
            )
        return "\n".join(lines)
    cols = ["runs", "p50", "p90", "p99", "max", "messages", "691 msgs", "smtp msgs", "bytes", "691 bytes",
            "smtp bytes", "bytes/server/packet", "t_hop", "d", "conv/(d*t_hop)", "wall max"]  # fmt: skip
    vals = [
        f"{sm['converged']}/{sm['runs']}",
        fmt_s(sm["p50"]),
        fmt_s(sm["p90"]),
        fmt_s(sm["p99"]),
        fmt_s(sm["max"]),
        fmt_n(sm["messages"]),
        fmt_n(sm["messages_691"]),
        fmt_n(sm["messages_smtp"]),
        fmt_n(sm["bytes"]),
        fmt_n(sm["bytes_691"]),
        fmt_n(sm["bytes_smtp"]),
        f"{sm['bytes_per_server_packets']:.2f} (packet {fmt_n(sm['packet_bytes'])} B)",
        fmt_s(sm["t_hop_p50"]),
        str(sm["depth"]),
        "-" if math.isnan(sm["ratio_p50"]) else f"{sm['ratio_p50']:.2f} (max {sm['ratio_max']:.2f})",
        f"{sm['wall_s_max']:.2f}s",
    ]
    half = 8
    for part in (slice(0, half), slice(half, None)):
        c, v = cols[part], vals[part]
        widths = [max(len(a), len(b)) for a, b in zip(c, v, strict=True)]
        lines.append("   " + "  ".join(a.rjust(w) for a, w in zip(c, widths, strict=True)))
        lines.append("   " + "  ".join(b.rjust(w) for b, w in zip(v, widths, strict=True)))
    return "\n".join(lines)


MODE_METRICS = (
    ("convergence p50", "p50", fmt_s),
    ("t_hop p50", "t_hop_p50", fmt_s),
    ("messages", "messages", fmt_n),
    ("bytes", "bytes", fmt_n),
    ("bytes/server/packet", "bytes_per_server_packets", lambda v: f"{v:.3f}"),
    ("wall per run (p50)", "wall_s_p50", lambda v: f"{v:.2f}s"),
    ("warm-up (wall)", "warmup_s", lambda v: f"{v:.1f}s"),
    ("peak RSS per server", "peak_rss_per_server_kb", lambda v: f"{v:.0f} KiB"),
)


def modes(scenarios: list[Scenario]) -> str:
    """`--exchange full,delta`: each scenario's modes side by side, and their ratio (delta / full)."""
    families: dict[str, dict[str, Scenario]] = {}
    for s in scenarios:
        families.setdefault(s.family, {})[str(s.settings.get("exchange", ""))] = s
    lines = []
    for family, by_mode in families.items():
        names: list[str] = [m for m in ("full", "delta") if m in by_mode] or list(by_mode)
        sums = {m: summary(by_mode[m]) for m in names}
        head = f"{'== ' + family:<42}" + "".join(f"{m:>14}" for m in names)
        ratio = len(names) == 2
        lines += [head + (f"{names[1] + '/' + names[0]:>14}" if ratio else ""), "-" * (len(head) + 14 * ratio)]
        for label, key, f in MODE_METRICS:
            vals = [_num(sums[m].get(key)) for m in names]
            if all(v is None for v in vals):
                continue
            row = f"   {label:<39}" + "".join(f"{f(v) if v is not None else '-':>14}" for v in vals)
            if ratio and vals[0] and vals[1] is not None:
                row += f"{vals[1] / vals[0]:>14.3f}"
            lines.append(row)
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for pkg in ("linkstate", "trio", "structlog", "construct", "click", "matplotlib"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    commit: str | None = None
    with contextlib.suppress(Exception):
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip() or None  # fmt: skip
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "versions": versions,
        "git": commit,
    }


CSV_FIELDS = ["key", "shape", "groups", "servers_per_group", "servers", "event", "transport", "run", "convergence_s",
              "t_hop_s", "depth", "ratio", "messages_691", "bytes_691", "messages_smtp", "bytes_smtp", "packet_bytes",
              "bytes_per_server_packets", "wall_s", "exchange", "peak_rss_mb"]  # fmt: skip


def write_outputs(scenarios: list[Scenario], out: Path, argv: list[str]) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    doc: dict[str, Any] = {
        "definition": DEFINITION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": argv,
        "machine": machine(),
        "scenarios": [s.to_json() for s in scenarios],
    }
    jpath = out / f"convergence-{stamp}.json"
    jpath.write_text(json.dumps(doc, indent=1, default=_nan_safe))
    cpath = out / f"convergence-{stamp}.csv"
    with open(cpath, "w", newline="") as fh:
        fh.write(f"# {DEFINITION}\n")
        m = doc["machine"]
        fh.write(f"# machine: {m['cpu']} x{m['cpus']}, Python {m['python']}, {m['versions']}, git {m['git']}\n")
        w = csv.writer(fh)
        w.writerow(CSV_FIELDS)
        for s in scenarios:
            for i, r in enumerate(s.runs):
                w.writerow([s.key, s.shape, s.groups, s.servers_per_group, s.servers, s.event, s.transport, i + 1,
                            r.convergence, r.t_hop, r.depth, r.ratio, r.messages_691, r.bytes_691, r.messages_smtp,
                            r.bytes_smtp, r.packet_bytes, round(r.bytes_per_server_packets, 4),
                            round(r.wall_s, 4), s.settings.get("exchange", ""), s.peak_rss_mb])  # fmt: skip
    return jpath, cpath


def _nan_safe(o: Any) -> Any:
    return str(o)


def plots(scenarios: list[Scenario], out: Path, stem: str) -> list[Path] | str:
    """Convergence time and bytes against organization size (p10-p90 band), and one run's arrival timeline."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plots skipped: matplotlib not installed (pip install -e '.[bench]')"
    made: list[Path] = []
    measured = [s for s in scenarios if s.event != "oscillation" and any(r.convergence is not None for r in s.runs)]
    if not measured:
        return "plots skipped: nothing converged to plot"
    series: dict[tuple[str, str, str], list[Scenario]] = {}
    for s in measured:
        series.setdefault((s.shape, s.event, s.transport), []).append(s)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for (shape, event, transport), items in sorted(series.items()):
        items.sort(key=lambda s: s.servers)
        xs = [s.servers for s in items]
        conv = [[r.convergence for r in s.runs if r.convergence is not None] for s in items]
        byt = [[float(r.bytes) for r in s.runs] for s in items]
        label = f"{shape} {event} ({transport})"
        for ax, vals in ((ax1, conv), (ax2, byt)):
            mid = [percentile(v, 50) for v in vals]
            lo = [percentile(v, 10) for v in vals]
            hi = [percentile(v, 90) for v in vals]
            (line,) = ax.plot(xs, mid, marker="o", label=label)
            ax.fill_between(xs, lo, hi, alpha=0.25, color=line.get_color())
    ax1.set_xlabel("servers in the organization")
    ax1.set_ylabel("convergence (s, p50; band p10-p90)")
    ax1.set_title("Convergence time against organization size")
    ax2.set_xlabel("servers in the organization")
    ax2.set_ylabel("bytes on the wire per event (p50; band p10-p90)")
    ax2.set_title("Bytes against organization size")
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.text(0.01, 0.01, "convergence: commit -> last server holds the final digest (see the JSON's definition)",
             fontsize=7)  # fmt: skip
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    p = out / f"{stem}-size.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    made.append(p)
    # one run's per-server arrivals: the largest scenario, its median run
    big = max(measured, key=lambda s: (s.servers, len(s.runs)))
    runs = sorted((r for r in big.runs if r.convergence is not None), key=lambda r: r.convergence or 0)
    run = runs[len(runs) // 2]
    arr = sorted(run.arrivals.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(10, 4.5))
    masters = [i for i, (n, _) in enumerate(arr) if n.endswith("-S1")]
    ax.step([t for _, t in arr], range(1, len(arr) + 1), where="post", label="servers holding the final digest")
    ax.scatter([arr[i][1] for i in masters], [i + 1 for i in masters], s=8, color="C3", label="bridgeheads (S1)")
    if run.t_hop and run.depth:
        ax.axvline(run.depth * run.t_hop, color="grey", ls="--", label=f"floor d x t_hop = {run.depth} x "
                                                                        f"{fmt_s(run.t_hop)}")  # fmt: skip
    ax.set_xlabel("seconds after the commit")
    ax.set_ylabel("servers")
    ax.set_title(f"Arrival timeline, one run: {big.key} (convergence {fmt_s(run.convergence)})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    p = out / f"{stem}-timeline.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    made.append(p)
    return made


def compare(a_path: Path, b_path: Path) -> str:
    a, b = json.loads(a_path.read_text()), json.loads(b_path.read_text())
    sa = {s["key"]: s["summary"] for s in a["scenarios"]}
    sb = {s["key"]: s["summary"] for s in b["scenarios"]}
    lines = [DEFINITION, "", f"A = {a_path} ({a['created']}, git {a['machine'].get('git')})",
             f"B = {b_path} ({b['created']}, git {b['machine'].get('git')})", ""]  # fmt: skip
    head = f"{'scenario':<40} {'metric':<22} {'A':>12} {'B':>12} {'B/A':>7}"
    lines.append(head)
    lines.append("-" * len(head))
    metrics = [("p50", fmt_s), ("p90", fmt_s), ("max", fmt_s), ("messages", fmt_n), ("bytes", fmt_n),
               ("bytes_per_server_packets", lambda v: f"{v:.2f}"), ("ratio_p50", lambda v: f"{v:.2f}"),
               ("wall_s_max", lambda v: f"{v:.2f}s")]  # fmt: skip
    for key in [k for k in sa if k in sb]:
        for name, f in metrics:
            va, vb = _num(sa[key].get(name)), _num(sb[key].get(name))
            if va is None and vb is None:
                continue
            rel = f"{vb / va:.2f}" if va and vb is not None and va != 0 else "-"
            lines.append(f"{key:<40} {name:<22} {f(va) if va is not None else '-':>12} "
                         f"{f(vb) if vb is not None else '-':>12} {rel:>7}")  # fmt: skip
    only = sorted(set(sa) ^ set(sb))
    if only:
        lines.append("")
        lines.append("in one file only: " + ", ".join(only))
    return "\n".join(lines)


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f
