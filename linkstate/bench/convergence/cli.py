"""The benchmark's command line: `run` (scenarios -> tables, JSON, CSV, plots), `compare`, and `serve` (the tcp
driver's child process).

Owns: argument parsing, the scenario list (sizes x events, the compat_e2k oscillation baseline riding along),
the loop that hands each scenario to its driver, `--exchange full,delta` (each mode in a child process of its own, so
that its wall time and peak memory are its own; then both rows and their ratio), and `main` (what
`linkstate bench convergence` and `python -m linkstate.bench.convergence` run).
May import: anything (a top layer, like linkstate.cli).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from linkstate.bench.convergence.memory import run_memory
from linkstate.bench.convergence.organizations import SHAPES
from linkstate.bench.convergence.plan import NotApplicable, ScenarioFailed
from linkstate.bench.convergence.report import ROOT, Progress, compare, modes, plots, table, write_outputs
from linkstate.bench.convergence.results import DEFINITION, EVENTS, Scenario
from linkstate.bench.convergence.sim import run_sim
from linkstate.bench.convergence.tcp import run_tcp, serve_node
from linkstate.core.topology import EXCHANGES, TopologyError

TRANSPORTS = ("sim", "memory", "tcp")
DESCRIPTION = (
    "Convergence benchmark: how long after a change until every server holds the same OrgInfo table, and at what cost."
)


def default_out() -> Path:
    """bench/results of the source checkout the package runs from, else ./convergence-results."""
    bench = ROOT / "bench"
    return bench / "results" if bench.is_dir() else Path.cwd() / "convergence-results"


def parse_sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        g, _, s = part.strip().partition("x")
        out.append((int(g), int(s or 1)))
    return out


def parse_settings(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        low = value.strip().lower()
        if low in ("true", "false"):
            out[key.strip()] = low == "true"
        else:
            try:
                out[key.strip()] = int(value) if value.strip().isdigit() else float(value)
            except ValueError:
                out[key.strip()] = value
    return out


def run_scenarios(args: argparse.Namespace) -> list[Scenario]:
    sizes = parse_sizes(args.sizes) if args.sizes else [(args.groups, args.servers)]
    events = [args.event] if args.event != "all" else [e for e in EVENTS]
    base: dict[str, Any] = {"state_delay": 1.0 if args.transport == "tcp" else 600.0}
    if args.exchange:
        base["exchange"] = args.exchange
    base.update(parse_settings(args.set or []))
    plan: list[Scenario] = []
    for g, s in sizes:
        for event in events:
            settings = dict(base)
            if args.compat_e2k:
                settings["compat_e2k"] = True
            plan.append(Scenario(args.shape, g, s, event, args.transport, settings, args.seed))
            if event == "oscillation" and not args.compat_e2k:  # the baseline rides along
                plan.append(Scenario(args.shape, g, s, event, args.transport, {**settings, "compat_e2k": True},
                                     args.seed))  # fmt: skip
    total = sum(1 if sc.event == "oscillation" else args.runs for sc in plan)
    progress = Progress(total, "", enabled=not args.quiet)
    for sc in plan:
        progress.label = sc.key
        progress.show("starting")
        try:
            if sc.transport == "sim":
                run_sim(sc, args.runs, args.latency, progress, organic=args.organic_warmup)
            elif sc.transport == "memory":
                run_memory(sc, args.runs, args.latency, progress)
            else:
                run_tcp(sc, args.runs, progress, keep=args.keep)
        except NotApplicable as exc:
            sc.note = f"not applicable: {exc}"
            progress.done += args.runs if sc.event != "oscillation" else 1
        except ScenarioFailed as exc:  # its row says why; the scenarios measured before and after are kept
            sc.note = f"not measured: {exc}"
            progress.done += args.runs if sc.event != "oscillation" else 1
        sc.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        print(table(sc), flush=True)
        print(f"   definition: {DEFINITION}\n", flush=True)
    return plan


def side_by_side(argv: list[str], chosen: list[str], args: argparse.Namespace) -> int:
    """Each exchange mode in a child process of its own (its wall time and peak memory its own), then both rows and
    their ratio, and one result file holding every scenario."""
    scenarios: list[Scenario] = []
    base = [a for i, a in enumerate(argv) if not (a == "--exchange" or (i and argv[i - 1] == "--exchange"))
            and not a.startswith("--exchange=") and a != "--plots"]  # fmt: skip
    for mode in chosen:
        with tempfile.TemporaryDirectory(prefix="convergence-") as tmp:
            cmd = [sys.executable, "-m", "linkstate.bench.convergence", *base, "--exchange", mode, "--out", tmp]
            child = subprocess.Popen(cmd)
            _, status, usage = os.wait4(child.pid, 0)
            child.returncode = os.waitstatus_to_exitcode(status)
            if child.returncode != 0:
                print(f"the {mode} run failed (exit {child.returncode})", file=sys.stderr)
                return child.returncode
            (result,) = Path(tmp).glob("convergence-*.json")
            for data in json.loads(result.read_text())["scenarios"]:
                scenario = Scenario.from_json(data)
                scenario.peak_rss_mb = usage.ru_maxrss / 1024  # the child's own peak (KiB on Linux)
                scenarios.append(scenario)
    print(modes(scenarios), flush=True)
    print(f"   definition: {DEFINITION}\n   peak RSS per server: the child process's peak resident memory / servers "
          f"(Python and the benchmark included)\n", flush=True)  # fmt: skip
    out = Path(args.out)
    jpath, cpath = write_outputs(scenarios, out, ["convergence.py", *argv])
    print(f"\nresults: {jpath}\n         {cpath}")
    if args.plots:
        made = plots(scenarios, out, jpath.stem)
        print(made if isinstance(made, str) else "plots:   " + "\n         ".join(str(m) for m in made))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="convergence", description=DESCRIPTION)
    sub = p.add_subparsers(dest="cmd", required=True, metavar="{run,compare}")
    r = sub.add_parser("run", help="run scenarios, print tables, write JSON/CSV (and PNG with --plots)")
    r.add_argument("--shape", choices=SHAPES, default="ring")
    r.add_argument("--groups", type=int, default=20)
    r.add_argument("--servers", type=int, default=2, help="servers per group (the first is master/bridgehead)")
    r.add_argument("--sizes", help="several organizations: GxS,GxS,... (overrides --groups/--servers)")
    r.add_argument("--event", choices=(*EVENTS, "all"), default="minor")
    r.add_argument("--transport", choices=TRANSPORTS, default="sim")
    r.add_argument("--runs", type=int, default=5, help="measured events per scenario")
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--latency", type=float, default=0.001, help="sim, memory: one-way latency per write (s)")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="a [settings] value (e.g. state_delay=600)")
    r.add_argument("--compat-e2k", action="store_true", help="run with compat_e2k = true")
    r.add_argument("--exchange", help="the exchange setting: full, delta, or full,delta (both side by side, each in "
                   "a child process, and their ratio); default: the setting's default (delta)")
    r.add_argument("--out", default=str(default_out()), help="directory for JSON/CSV/PNG")
    r.add_argument("--plots", action="store_true", help="write PNG plots (needs matplotlib: the bench extra)")
    r.add_argument("--organic-warmup", action="store_true", help="sim: reach the start state through the protocol "
                   "alone (the O(G^2) start-up storm; slow past ~50 groups)")
    r.add_argument("--keep", action="store_true", help="tcp: keep the run directory (logs, events)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--profile", metavar="HTML", help="profile the whole run with pyinstrument, write HTML here")
    c = sub.add_parser("compare", help="compare two result JSON files")
    c.add_argument("a")
    c.add_argument("b")
    s = sub.add_parser("serve")  # the tcp transport's child process: no help, so not listed
    s.add_argument("--topology", required=True)
    s.add_argument("--server", required=True)
    s.add_argument("--events", required=True)
    args = p.parse_args(argv)
    if args.cmd == "compare":
        print(compare(Path(args.a), Path(args.b)))
        return 0
    if args.cmd == "serve":
        serve_node(args.topology, args.server, args.events)
        return 0
    chosen = [m.strip() for m in (args.exchange or "").split(",") if m.strip()]
    if any(m not in EXCHANGES for m in chosen):
        p.error(f"--exchange takes {', '.join(EXCHANGES)} or full,delta, got {args.exchange!r}")
    if len(chosen) > 1:
        return side_by_side(argv, chosen, args)
    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler()
        profiler.start()
    try:
        scenarios = run_scenarios(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except TopologyError as exc:  # a --set value out of its range, or a generated organization the checks refuse
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    if profiler is not None:
        profiler.stop()
        Path(args.profile).write_text(profiler.output_html())
        print(profiler.output_text(unicode=False, color=False, show_all=False)[:6000], file=sys.stderr)
    out = Path(args.out)
    jpath, cpath = write_outputs(scenarios, out, ["convergence.py", *argv])
    print(f"\nresults: {jpath}\n         {cpath}")
    if args.plots:
        made = plots(scenarios, out, jpath.stem)
        print(made if isinstance(made, str) else "plots:   " + "\n         ".join(str(m) for m in made))
    return 0

