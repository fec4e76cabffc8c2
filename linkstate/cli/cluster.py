"""A local multi-process cluster: every server of a topology file as its own `linkstate serve` process.

Owns: the run directory and its state file, the port policy, spawning/stopping node processes, and the
one-line-per-server status (queried with the DUMP client). Used by `linkstate cluster …` and `linkstate demo`.

Run directory (one per topology file):
  * `$XDG_RUNTIME_DIR/linkstate/<stem>-<hash8>` when XDG_RUNTIME_DIR is set (hash8 = the first 8 hex digits of
    the SHA-1 of the file's absolute path, so two `topology.toml` in different folders never share state);
  * otherwise `.linkstate/<stem>/` beside the topology file.
  It holds `cluster.json` (the run state), `cluster.lock` (flock for read-modify-write), `<server>.log` (each
  node's JSON log, stdout and stderr), when ports or addresses are derived `topology.toml`, and in netns mode
  `network.json` (the network plan).
Port policy (DECISIONS §5): servers keep the ports the file gives them. Servers without `port_691` use the
real ports (691, and 25 for SMTP) on their own loopback address when a test bind of each succeeds; otherwise a
derived topology is written to the run directory with `port_691 = 6910 + n` and `port_smtp = 2525 + n` (n =
the server's index in the file, from 0) for every server without explicit ports, and all nodes run on it.
`secret_file` is made absolute there. Every node serves /metrics and /health on its address at its
`metrics_port`, or at its 691 port + 20000 (linkstate.core.topology.default_metrics_port: 691 -> 20691, the
dev ports 6910+n -> 26910+n, so never on one of the dev ports); `cluster up` passes it to each node with
`--metrics`, so a node that cannot bind it exits with that reason, and no two listeners of the cluster may share
an address and port (checked before anything starts). While `cluster up` runs it re-derives the derived file
when the source changes (so the nodes' own topology watcher picks the change up).
Real network mode (`--netns`, linkstate.netns): every server runs in its own network namespace (`serve --netns`),
on the address the run's network plan gives it (`network.json` in the run directory, the prefix of its namespace
names in the state as `netns_prefix`); the derived topology then carries those addresses and the file's ports, and
every DUMP this module makes enters the node's namespace first.
Invariants: every server address is loopback, except in netns mode where every address lives inside a namespace
of the run (a local cluster never binds anything outside this machine); a node that was
stopped on purpose is never restarted by `cluster up`; state writes are atomic (tmp file + rename) and made
under the lock; a recorded pid is believed alive only if /proc shows a non-zombie `serve` of that server.
May import: anything (CLI layer).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import ipaddress
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import trio

import linkstate
from linkstate.cli.common import fail
from linkstate.core.topology import Topology, TopologyError
from linkstate.netns.enter import call_in
from linkstate.netns.plan import NetPlan, NetPlanError
from linkstate.service.client import ClientError, dump
from linkstate.service.topofile import load_topology

STATE_FILE = "cluster.json"
LOCK_FILE = "cluster.lock"
DERIVED_FILE = "topology.toml"
NETWORK_FILE = "network.json"
DEV_PORT_691 = 6910
DEV_PORT_SMTP = 2525
REAL_PORT_691 = 691
REAL_PORT_SMTP = 25
STOP_TIMEOUT = 10.0
START_GRACE = 8.0  # seconds a fresh process may take before "no answer" counts as a problem
START_WAIT = 20.0  # seconds `cluster up` / `cluster start` wait for a node to answer on 691
EXIT_FAILED = 1

# --------------------------------------------------------------------------------------------- run state


@dataclass
class NodeRecord:
    name: str
    host: str
    port: int
    port_smtp: int
    topology: str
    log: str
    pid: int | None = None
    state: str = "stopped"  # running | stopped (on purpose or by the supervisor)
    started_at: float = 0.0
    netns: str | None = None  # the network namespace it runs in (netns mode)
    metrics_port: int | None = None  # where /metrics and /health answer (None: a run state from before them)
    metrics_local: int | None = None  # netns mode: the port on 127.0.0.1 forwarding to them (cli.netns_metrics)

    @property
    def metrics_url(self) -> str | None:
        """Where this machine's initial namespace reaches the node's /metrics (a netns node: the forwarder's)."""
        if self.metrics_local is not None:
            return f"http://127.0.0.1:{self.metrics_local}/metrics"
        return self.metrics_node_url

    @property
    def metrics_node_url(self) -> str | None:
        """Where the node itself serves /metrics (for a netns node: inside its namespace only)."""
        return None if self.metrics_port is None else f"http://{self.host}:{self.metrics_port}/metrics"


@dataclass
class RunState:
    source: str  # the user's topology file (absolute)
    topology: str  # the file the nodes run on: the source or the derived copy
    run_dir: str
    derived: bool
    time_scale: float | None
    supervisor: int | None = None
    supervisor_kind: str = "cluster"
    port_note: str = ""  # why dev ports were derived
    netns_prefix: str = ""  # netns mode: the run's namespace prefix (network.json holds the plan)
    servers: dict[str, NodeRecord] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["servers"] = {name: asdict(rec) for name, rec in self.servers.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunState:
        servers = {name: NodeRecord(**rec) for name, rec in data.get("servers", {}).items()}
        fields = {k: v for k, v in data.items() if k != "servers"}
        return cls(**fields, servers=servers)


def run_dir_for(topology_file: Path) -> Path:
    """The run directory of a topology file (module docstring)."""
    path = topology_file.resolve()
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        tag = hashlib.sha1(str(path).encode()).hexdigest()[:8]
        return Path(xdg) / "linkstate" / f"{path.stem}-{tag}"
    return path.parent / ".linkstate" / path.stem


def load_state(run_dir: Path) -> RunState | None:
    try:
        data = json.loads((run_dir / STATE_FILE).read_text())
        return RunState.from_json(data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        fail(f"unreadable run state {run_dir / STATE_FILE}: {exc}", EXIT_FAILED)


def save_state(state: RunState) -> None:
    run_dir = Path(state.run_dir)
    tmp = run_dir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n")
    os.replace(tmp, run_dir / STATE_FILE)


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK_FILE, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------- processes


def alive(pid: int | None, needle: str | None = None) -> bool:
    """Is `pid` a live (non-zombie) process whose command line contains `needle`?"""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        return True  # no /proc: trust kill(0)
    try:
        stat = (proc / "stat").read_text()
        if stat[stat.rindex(")") + 2 :].startswith(("Z", "X")):
            return False
        if needle is not None:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            return needle.encode() in argv
    except (OSError, ValueError):
        return False
    return True


def node_alive(rec: NodeRecord) -> bool:
    return rec.pid is not None and alive(rec.pid, rec.name) and _is_serve(rec.pid)


def _is_serve(pid: int) -> bool:
    proc = Path(f"/proc/{pid}/cmdline")
    try:
        return b"serve" in proc.read_bytes().split(b"\0")
    except OSError:
        return True


def serve_command(
    topology: str, server: str, time_scale: float | None, netns: str | None = None, metrics: str | None = None
) -> list[str]:
    """The argv of one node process (the CLI entry point run by this interpreter); `metrics`: HOST:PORT."""
    cmd = [sys.executable, "-c", "from linkstate.cli.main import main; main()", "serve"]
    cmd += ["--topology", topology, "--server", server, "--log-format", "json"]
    if metrics is not None:
        cmd += ["--metrics", metrics]
    if time_scale is not None:
        cmd += ["--time-scale", repr(float(time_scale))]
    if netns is not None:
        cmd += ["--netns", netns]
    return cmd


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(linkstate.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def wait_gone(pid: int, needle: str | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid, needle):
            return True
        time.sleep(0.05)
    return not alive(pid, needle)


def last_log_line(path: str) -> str:
    """The last `error: …` line of a node's log (what `serve` printed before exiting), or its last line."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 8192))
            lines = [ln.strip() for ln in fh.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    for ln in reversed(lines):
        if ln.startswith("error:"):
            return ln
    return lines[-1][:200] if lines else ""


# --------------------------------------------------------------------------------------------- ports


def can_bind(host: str, port: int) -> bool:
    """One test bind (SO_REUSEADDR like trio's listeners); the socket is closed at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def check_loopback(topo: Topology) -> None:
    """A local cluster runs every server on this machine: refuse, naming every offender, any other address."""
    bad = [f"{s.name} ({s.address})" for s in topo.servers if not _is_loopback(s.address or "127.0.0.1")]
    if bad:
        fail(
            "a local cluster runs every server on this machine, so every address must be loopback (127.0.0.0/8); "
            f"not loopback: {', '.join(bad)} (on real hosts run 'linkstate serve' on each: README, "
            "'Running on real hosts')"
        )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def real_ports_problem(topo: Topology) -> str | None:
    """Why the servers without explicit ports cannot use 691 and 25 (and the metrics port derived from 691) on
    their own address (None: they can)."""
    seen: set[tuple[str, int]] = set()
    for s in topo.servers:
        host = s.address or "127.0.0.1"
        metrics = (s.metrics_port, s.metrics(s.port_691 or REAL_PORT_691))
        for explicit, real in ((s.port_691, REAL_PORT_691), (s.port_smtp, REAL_PORT_SMTP), metrics):
            port = explicit or real
            if (host, port) in seen:
                return f"{host}:{port} is wanted by two servers"
            seen.add((host, port))
            if explicit is None and not can_bind(host, real):
                return f"cannot bind {host}:{real}"
    return None


def shared_listeners(topo: Topology) -> list[str]:
    """Every address and port two listeners of the cluster would share (691, SMTP, metrics), as lines."""
    owners: dict[tuple[str, int], str] = {}
    clashes = []
    for s in topo.servers:
        host = s.address or "127.0.0.1"
        port_691 = s.port_691 or REAL_PORT_691
        for what, port in (("691", port_691), ("SMTP", s.port_smtp or REAL_PORT_SMTP), ("metrics", s.metrics())):
            who = f"{s.name}'s {what} port"
            if (host, port) in owners:
                clashes.append(f"{host}:{port} is {owners[(host, port)]} and {who}")
            owners.setdefault((host, port), who)
    return clashes


def derive_topology(source: Path, dest: Path, addresses: dict[str, str] | None = None) -> Topology:
    """Write `dest`: the source with dev ports for servers without explicit ones (or, in netns mode, with the
    network plan's `addresses` and the ports left alone); validate and return it."""
    text = source.read_text()
    raw = tomllib.loads(text)
    org = raw.get("organization")
    if isinstance(org, dict) and isinstance(org.get("secret_file"), str):
        org["secret_file"] = str((source.parent / org["secret_file"]).resolve())
    for n, server in enumerate(raw.get("servers", [])):
        if not isinstance(server, dict):
            continue
        if addresses is not None:
            server["address"] = addresses.get(str(server.get("name")), server.get("address"))
            continue
        if "port_691" not in server:
            server["port_691"] = DEV_PORT_691 + n
        if "port_smtp" not in server:
            server["port_smtp"] = DEV_PORT_SMTP + n
    why = "each server's address in its network namespace" if addresses is not None else "per-node dev ports"
    header = f"# Generated by `linkstate cluster` from {source.resolve()}: {why} (DECISIONS §5).\n"
    tmp = dest.with_suffix(".tmp")
    tmp.write_text(header + dumps_toml(raw))
    topo = load_topology(tmp)  # must validate before the nodes see it
    os.replace(tmp, dest)
    return topo


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def dumps_toml(data: dict[str, Any]) -> str:
    """A small TOML writer for a parsed topology: tables and arrays of tables at the top, inline below."""
    lines: list[str] = []
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    arrays = {k: v for k, v in data.items() if isinstance(v, list) and v and all(isinstance(i, dict) for i in v)}
    lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in data.items() if k not in tables and k not in arrays]
    for k, table in tables.items():
        lines += ["", f"[{_toml_key(k)}]"]
        lines += [f"{_toml_key(kk)} = {_toml_value(vv)}" for kk, vv in table.items()]
    for k, items in arrays.items():
        for item in items:
            lines += ["", f"[[{_toml_key(k)}]]"]
            lines += [f"{_toml_key(kk)} = {_toml_value(vv)}" for kk, vv in item.items()]
    return "\n".join(lines).lstrip("\n") + "\n"


# --------------------------------------------------------------------------------------------- status


@dataclass
class NodeStatus:
    name: str
    host: str
    port: int
    state: str  # running | starting | no-answer | exited | stopped
    pid: int | None = None
    role: str | None = None
    routing_group: str | None = None
    master: str | None = None
    attached: bool | None = None
    quorum: bool | None = None
    attached_count: int | None = None
    servers: int | None = None
    digest: str | None = None
    version: str | None = None
    error: str | None = None
    metrics: str | None = None  # the URL of its /metrics

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _yn(flag: bool | None) -> str:
    return "YES" if flag else "NO"


def format_status(statuses: list[NodeStatus]) -> list[str]:
    """One aligned line per server."""
    width = max((len(s.name) for s in statuses), default=4)
    addr_w = max((len(f"{s.host}:{s.port}") for s in statuses), default=10)
    out = []
    for s in statuses:
        head = f"{s.name:<{width}}  {s.host + ':' + str(s.port):<{addr_w}}"
        if s.state == "running":
            line = (
                f"{head}  {s.role or '?':<6}  attached {_yn(s.attached):<3}  quorum {_yn(s.quorum):<3}  "
                f"digest {(s.digest or '')[:8]}  version {s.version or '-'}"
            )
        else:
            line = f"{head}  {s.state}"
            if s.error:
                line += f"  ({s.error})"
        out.append(line.rstrip())
    return out


async def query(rec: NodeRecord, topo: Topology, secret: bytes, timeout: float) -> NodeStatus:
    st = NodeStatus(rec.name, rec.host, rec.port, "stopped", pid=rec.pid, metrics=rec.metrics_url)
    if not node_alive(rec):
        young = time.time() - rec.started_at < START_GRACE
        if rec.state == "running" and young and alive(rec.pid):  # its command line not readable yet: starting
            st.state = "starting"
            return st
        if rec.state == "running" and rec.pid is not None:
            st.state = "exited"
            st.error = last_log_line(rec.log) or "the process is gone"
        return st
    try:
        view, decoded = await call_in(rec.netns, dump, rec.host, rec.port, secret, timeout=timeout)
    except ClientError as exc:
        young = time.time() - rec.started_at < START_GRACE
        st.state = "starting" if young and exc.kind in ("refused", "timeout") else "no-answer"
        st.error = None if st.state == "starting" else exc.reason
        return st
    st.state = "running"
    st.role = view.role
    rg = topo.routing_group_by_guid(view.routing_group)
    st.routing_group = rg.name if rg else view.routing_group
    master = topo.server_by_guid(view.master)
    st.master = master.name if master else view.master
    st.attached, st.quorum = view.attached, view.quorum
    st.attached_count, st.servers = view.attached_count, view.servers
    st.digest = decoded.digest
    own = decoded.orginfo.group(view.routing_group)
    st.version = str(own.version) if own is not None else None
    return st


async def query_all(state: RunState, topo: Topology, timeout: float = 3.0) -> list[NodeStatus]:
    """Status of every server of the topology, in file order (servers without a record are `stopped`).

    A poll in progress is not cut short by a cancellation (a stopped `cluster up`, a demo interrupted): its DUMP
    connections would close mid-authentication and every node would log `auth_failed` though nothing failed. It is
    bounded anyway: `timeout` a node, all at once; the cancellation takes effect when it returns."""
    results: dict[str, NodeStatus] = {}

    async def one(rec: NodeRecord) -> None:
        with trio.CancelScope(shield=True):
            results[rec.name] = await query(rec, topo, topo.secret, timeout)

    async with trio.open_nursery() as nursery:
        for s in topo.servers:
            rec = state.servers.get(s.name)
            if rec is None:
                results[s.name] = NodeStatus(s.name, s.address or "127.0.0.1", s.port_691 or REAL_PORT_691, "stopped")
            else:
                nursery.start_soon(one, rec)
    return [results[s.name] for s in topo.servers]


# --------------------------------------------------------------------------------------------- the cluster


class Cluster:
    """The processes of one topology file's local cluster, as recorded in its run directory."""

    def __init__(self, source: Path, run_dir: Path | None = None) -> None:
        self.source = source.resolve()
        self.run_dir = (run_dir or run_dir_for(source)).resolve()
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self._source_mtime: float | None = None

    # --- state ---------------------------------------------------------------------------------------------

    def state(self) -> RunState | None:
        return load_state(self.run_dir)

    def require_state(self) -> RunState:
        state = self.state()
        if state is None:
            fail(f"no cluster has run for {self.source} (start one with 'linkstate cluster up')", EXIT_FAILED)
        return state

    def topology(self, state: RunState | None = None) -> Topology:
        """The topology the nodes run on (the derived copy when there is one)."""
        path = Path(state.topology) if state is not None else self.source
        try:
            return load_topology(path)
        except TopologyError:
            return load_topology(self.source)

    def network(self, state: RunState | None = None) -> NetPlan | None:
        """The network plan of a netns run (None for a loopback cluster)."""
        state = state if state is not None else self.state()
        if state is None or not state.netns_prefix:
            return None
        path = self.run_dir / NETWORK_FILE
        try:
            return NetPlan.from_json(json.loads(path.read_text()))
        except (OSError, ValueError, NetPlanError) as exc:
            fail(f"unreadable network plan {path}: {exc}", EXIT_FAILED)

    def supervisor_alive(self, state: RunState) -> bool:
        """Is the recorded `cluster up` (or `demo`) process still there (and not this process)?"""
        return state.supervisor != os.getpid() and alive(state.supervisor, state.supervisor_kind)

    def is_running(self, state: RunState | None) -> bool:
        """A cluster runs when its supervisor or any of its nodes does."""
        return state is not None and (self.supervisor_alive(state) or bool(self.running(state)))

    def running(self, state: RunState) -> list[str]:
        return [name for name, rec in state.servers.items() if node_alive(rec)]

    # --- planning ------------------------------------------------------------------------------------------

    def prepare(
        self, topo: Topology, time_scale: float | None, supervisor_kind: str = "cluster", network: NetPlan | None = None
    ) -> RunState:
        """Decide ports, write the derived topology if needed, record every server (none started yet). With a
        network plan (netns mode) every server gets the plan's address and namespace, and the plan is saved."""
        if network is None:
            check_loopback(topo)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with locked(self.run_dir):
            old = self.state()
            if old is not None:
                live = self.running(old)
                if live:
                    fail(
                        f"a cluster for {self.source.name} is already running ({', '.join(live)}); "
                        "use 'linkstate cluster status' or stop it first",
                        EXIT_FAILED,
                    )
            problem = real_ports_problem(topo) if network is None else None
            derived = problem is not None or network is not None
            used = self.source
            if derived:
                used = self.run_dir / DERIVED_FILE
                try:
                    topo = derive_topology(self.source, used, network.addresses() if network else None)
                except (TopologyError, OSError, ValueError, TypeError) as exc:
                    fail(f"cannot derive a dev-port topology: {exc}", EXIT_FAILED)
            clashes = shared_listeners(topo)
            if clashes:
                fail(f"two listeners on one address and port: {'; '.join(clashes)} (give explicit ports)")
            self._source_mtime = _mtime(self.source)
            state = RunState(
                source=str(self.source),
                topology=str(used),
                run_dir=str(self.run_dir),
                derived=derived,
                time_scale=time_scale,
                supervisor=os.getpid(),
                supervisor_kind=supervisor_kind,
                port_note=problem or "",
                netns_prefix=network.prefix if network is not None else "",
            )
            if network is not None:
                (self.run_dir / NETWORK_FILE).write_text(json.dumps(network.to_json(), indent=1) + "\n")
            for s in topo.servers:
                state.servers[s.name] = NodeRecord(
                    name=s.name,
                    host=s.address or "127.0.0.1",
                    port=s.port_691 or REAL_PORT_691,
                    port_smtp=s.port_smtp or REAL_PORT_SMTP,
                    topology=str(used),
                    log=str(self.run_dir / f"{s.name}.log"),
                    netns=network.host(s.name).netns if network is not None else None,
                    metrics_port=s.metrics(),
                )
            save_state(state)
        return state

    def refresh_derived(self) -> str | None:
        """Re-derive the dev-port copy after the source changed; returns a message for the user, if any."""
        m = _mtime(self.source)
        if m == self._source_mtime:
            return None
        self._source_mtime = m
        state = self.state()
        if state is None or not state.derived:
            return None
        try:
            load_topology(self.source)
            addresses = {name: rec.host for name, rec in state.servers.items()} if state.netns_prefix else None
            derive_topology(self.source, Path(state.topology), addresses)
        except TopologyError as exc:
            first = exc.problems[0].format(str(self.source)) if exc.problems else str(exc)
            return f"topology change rejected, nodes keep the old one: {first}"
        except (OSError, ValueError, TypeError) as exc:
            return f"topology change not applied: {exc}"
        return "topology changed: derived copy rewritten, nodes reload it"

    # --- starting and stopping ------------------------------------------------------------------------------

    def spawn(self, name: str) -> NodeRecord:
        """Start one node, detached from the terminal (own session), and record it."""
        with locked(self.run_dir):
            state = self.require_state()
            rec = state.servers.get(name)
            if rec is None:
                fail(f"unknown server {name!r} (servers: {', '.join(state.servers)})")
            if node_alive(rec):
                fail(f"{name} is already running (pid {rec.pid})", EXIT_FAILED)
            with open(rec.log, "ab") as log:
                log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {name}\n".encode())
                log.flush()
                metrics = f"{rec.host}:{rec.metrics_port}" if rec.metrics_port is not None else None
                proc = subprocess.Popen(
                    serve_command(rec.topology, name, state.time_scale, rec.netns, metrics),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.run_dir,
                    env=_child_env(),
                    start_new_session=True,
                )
            self.children[proc.pid] = proc
            rec.pid, rec.state, rec.started_at = proc.pid, "running", time.time()
            save_state(state)
            return rec

    def stop(self, name: str, timeout: float = STOP_TIMEOUT) -> tuple[NodeRecord, bool]:
        """SIGTERM one node and wait (SIGKILL after `timeout`); returns (record, was it running)."""
        with locked(self.run_dir):
            state = self.require_state()
            rec = state.servers.get(name)
            if rec is None:
                fail(f"unknown server {name!r} (servers: {', '.join(state.servers)})")
            was = node_alive(rec)
            if was and rec.pid is not None:
                self._terminate([rec.pid], [rec.name], timeout)
            rec.state = "stopped"
            save_state(state)
            return rec, was

    def stop_all(self, timeout: float = STOP_TIMEOUT) -> list[str]:
        """Stop every recorded node and close the run; returns the names that were running. Members go first (in
        parallel), then the masters: a planned stop of the whole cluster leaves no member that lost its master,
        so none has anything to warn about (docs/EVENTS.md)."""
        with locked(self.run_dir):
            state = self.state()
            if state is None:
                return []
            live = [rec for rec in state.servers.values() if node_alive(rec)]
            for wave in self._waves(state, live):
                self._terminate([r.pid for r in wave if r.pid is not None], [r.name for r in wave], timeout)
            for rec in state.servers.values():
                rec.state = "stopped"
            state.supervisor = None
            save_state(state)
        self.reap()
        return [r.name for r in live]

    def _waves(self, state: RunState, live: list[NodeRecord]) -> list[list[NodeRecord]]:
        """The running nodes in the order a whole-cluster stop takes them: members, then the masters."""
        try:
            masters = {rg.master for rg in self.topology(state).routing_groups}
        except TopologyError:
            return [live]
        return [[r for r in live if r.name not in masters], [r for r in live if r.name in masters]]

    def shutdown(self, timeout: float = STOP_TIMEOUT) -> tuple[list[str], int | None]:
        """Stop the whole cluster: its supervisor first (SIGTERM; it stops its nodes), then any node left.
        Returns (the nodes that were running, the supervisor's pid if one was running)."""
        state = self.require_state()
        was_running = self.running(state)
        supervisor = state.supervisor if self.supervisor_alive(state) else None
        if supervisor is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(supervisor, signal.SIGTERM)
            wait_gone(supervisor, state.supervisor_kind, timeout + 5)
        self.stop_all(timeout)
        return was_running, supervisor

    def _terminate(self, pids: list[int], names: list[str], timeout: float) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for pid, name in zip(pids, names, strict=True):
            self._wait_child(pid)
            if not wait_gone(pid, name, max(0.0, deadline - time.monotonic())):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                wait_gone(pid, name, 2.0)
            self._wait_child(pid)

    def _wait_child(self, pid: int) -> None:
        proc = self.children.get(pid)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.01)
            if proc.returncode is not None:
                self.children.pop(pid, None)

    def reap(self) -> None:
        """Collect exited children so they do not linger as zombies."""
        for pid, proc in list(self.children.items()):
            if proc.poll() is not None:
                self.children.pop(pid, None)

    async def await_answers(self, names: list[str], wait_s: float) -> dict[str, str]:
        """Wait until every named node answers a DUMP on its 691 port. Returns, for each that did not, why:
        the node's own last `error:` line when it exited, else what the last attempt saw."""
        deadline = trio.current_time() + wait_s
        pending, problems, last = set(names), {}, {}
        while pending:
            for st in await self.statuses(timeout=2.0):
                if st.name not in pending:
                    continue
                if st.state == "running":
                    pending.discard(st.name)
                elif st.state in ("exited", "stopped"):
                    problems[st.name] = f"it exited: {st.error.removeprefix('error: ')}" if st.error else "it exited"
                    pending.discard(st.name)
                else:
                    last[st.name] = st.error or st.state
            if not pending or trio.current_time() >= deadline:
                break
            await trio.sleep(0.2)
        for name in pending:
            problems[name] = f"no answer on 691 within {wait_s:g} s ({last.get(name, 'no answer')})"
        return problems

    async def statuses(self, timeout: float = 3.0) -> list[NodeStatus]:
        self.reap()
        state = self.state()
        topo = self.topology(state)
        if state is None:
            state = RunState(str(self.source), str(self.source), str(self.run_dir), False, None)
        return await query_all(state, topo, timeout)


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def port_in_use(exc: OSError) -> bool:
    return exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL)
