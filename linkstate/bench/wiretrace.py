"""Wire traces of fixed simulated scenarios: what every node wrote, byte for byte, hashed.

Owns: `SCENARIOS` (small organizations of the convergence benchmark and one example topology, each driven through
its start-up and a few events on the pure simulated network), `trace(name, settings)` (the SHA-256 of what every
node wrote on every connection — each connection's byte stream, as a peer reads it, however the node split its
writes — with the byte count and the digests the nodes end with) and the command line
`python -m linkstate.bench.wiretrace record|check FILE [--set KEY=VALUE]`.
The seed's exchange (`exchange = "full"`, `compat_e2k = true`, or a peer without the extensions) must write the
same bytes as the code before issue 13 for the same seed: `bench/wire-baseline.json` holds the traces recorded
before that issue, `check` compares against it (tests/bench/test_wire_baseline.py runs the small ones).
Invariants: a trace is a pure function of the code, the scenario and its settings (the simulated network is
deterministic in its seed); nothing here changes a node except through inputs.
May import: anything (a top layer, like linkstate.cli).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from linkstate.bench.convergence.plan import DOWN, Plan, make_plan, minor_connector
from linkstate.bench.convergence.sim import SimDriver
from linkstate.core import events as ev
from linkstate.core.topology import parse_topology
from linkstate.sim.network import SimNetwork

ROOT = Path(__file__).resolve().parents[2]


class _Tap:
    """Hashes the byte stream each node writes on each connection (connection ids are the network's, assigned in
    order, so the same run numbers them the same)."""

    def __init__(self, net: SimNetwork, inner: Callable[[str, ev.Output], None] | None = None) -> None:
        self.net = net
        self.inner = inner
        self.streams: dict[tuple[str, int], Any] = {}
        self.bytes = 0
        net.on_output = self

    def __call__(self, name: str, out: ev.Output) -> None:
        if self.inner is not None:
            self.inner(name, out)
        if type(out) is ev.Send:
            stream = self.streams.get((name, out.conn))
            if stream is None:
                stream = self.streams[(name, out.conn)] = hashlib.sha256()
            stream.update(out.data)
            self.bytes += len(out.data)

    def result(self) -> dict[str, Any]:
        whole = hashlib.sha256()
        for (name, conn), stream in sorted(self.streams.items()):
            whole.update(b"%s %d %s\n" % (name.encode(), conn, stream.hexdigest().encode()))
        digests = sorted(set(self.net.digests().values()))
        return {"sha256": whole.hexdigest(), "streams": len(self.streams), "bytes": self.bytes, "digests": digests}


def _minor(drv: SimDriver, plan: Plan, k: int) -> None:
    guid, bh = minor_connector(plan)
    drv.measure(lambda: drv.net.inject(bh, ev.FaultInjected(guid, DOWN)), 4200)
    drv.measure(lambda: drv.net.inject(bh, ev.FaultInjected(guid, None)), 4200)


def _major(drv: SimDriver, plan: Plan, k: int) -> None:
    _, topo = plan.major_topology(k)
    drv.net.topology = topo

    def major() -> None:
        for name in list(drv.net.nodes):
            drv.net.inject(name, ev.TopologyChanged(topo))

    drv.measure(major, 4200)


def _user(drv: SimDriver, plan: Plan, k: int) -> None:
    member = plan.member
    assert member is not None

    def restart() -> None:
        drv.net.stop(member)
        drv.resync()
        drv.net.run_for(1.0)
        drv.net.start(member)

    drv.measure(restart, 4200)


_EVENTS = {"minor": _minor, "major": _major, "user": _user}


def _bench(shape: str, groups: int, servers: int, event: str, *, organic: bool, runs: int = 1) -> Callable[
        [dict[str, Any]], dict[str, Any]]:  # fmt: skip
    def run(settings: dict[str, Any]) -> dict[str, Any]:
        plan = make_plan(shape, groups, servers, 7, {"state_delay": 600.0, **settings})
        drv = SimDriver(plan, 0.001, 7)
        tap = _Tap(drv.net, drv.net.on_output)
        drv.warm_up(organic=organic)
        for k in range(runs):
            _EVENTS[event](drv, plan, k)
        drv.net.run_for(900)  # probes and polls after the events
        return tap.result()

    return run


def _example(file: str, minutes: float) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def run(settings: dict[str, Any]) -> dict[str, Any]:
        path = ROOT / "examples" / file
        text = path.read_text()
        if settings:
            lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items())
            text = text.replace("[settings]\n", "[settings]\n" + lines, 1) if "[settings]\n" in text else (
                text + "\n[settings]\n" + lines)  # fmt: skip
        topo = parse_topology(text, str(path), read_file=lambda p: (path.parent / p).read_bytes())
        net = SimNetwork(topo, seed=3)
        tap = _Tap(net)
        net.start_all()
        net.run_for(minutes * 60)
        return tap.result()

    return run


SCENARIOS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "ring-6x2-minor-organic": _bench("ring", 6, 2, "minor", organic=True, runs=2),
    "grid-9x2-major": _bench("grid", 9, 2, "major", organic=False),
    "grid-4x3-user-organic": _bench("grid", 4, 3, "user", organic=True),
    "random-20x3-minor": _bench("random", 20, 3, "minor", organic=False),
    "hub-spoke-example": _example("hub-spoke.toml", 30),
}
SMALL = ("ring-6x2-minor-organic", "grid-4x3-user-organic", "hub-spoke-example")


def trace(name: str, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The trace of one scenario under extra `settings` (module docstring)."""
    return SCENARIOS[name](dict(settings or {}))


def _settings(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        low = value.strip().lower()
        out[key.strip()] = (low == "true") if low in ("true", "false") else value.strip()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="wiretrace", description="hashes of every byte written in fixed sim scenarios")
    p.add_argument("action", choices=("record", "check"))
    p.add_argument("file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a [settings] value")
    p.add_argument("--only", action="append", default=[], metavar="SCENARIO")
    p.add_argument(
        "--against",
        metavar="LABEL",
        help="check: compare with the traces recorded under these settings "
        "(their --set values joined by spaces; default: the ones given)",
    )
    args = p.parse_args(argv)
    settings = _settings(args.set)
    names = args.only or list(SCENARIOS)
    path = Path(args.file)
    label = " ".join(args.set)
    if args.action == "record":
        doc = json.loads(path.read_text()) if path.exists() else {}
        doc[label] = {name: trace(name, settings) for name in names}
        path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        print(f"recorded {len(doc[label])} scenarios under {label!r} in {path}")
        return 0
    want = json.loads(path.read_text())[args.against if args.against is not None else label]
    bad = 0
    for name in names:
        got = trace(name, settings)
        same = got == want.get(name)
        bad += not same
        print(f"{name}: {'same bytes' if same else 'DIFFERENT'} ({got['streams']} streams, {got['bytes']} bytes)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
