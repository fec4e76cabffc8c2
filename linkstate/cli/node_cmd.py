"""`linkstate serve | cluster … | winroute | demo`: running nodes and looking at them.

Owns the command-line surface only; the machinery lives in linkstate.cli.cluster (processes, run state, port
policy, status), linkstate.cli.winroute (the WinRoute view), linkstate.cli.demo (the guided demo) and
linkstate.service (the node itself and the DUMP client).
  serve      one server until SIGINT/SIGTERM (clean DETACH); SIGHUP reloads the topology.
  cluster    up / status / stop / start: a local cluster, one process per server (see cluster.py).
  winroute   DUMP one node over TCP 691 and show what WinRoute showed (text, --json, --raw).
  demo       the main job (`make run`): a local cluster on the embedded example, master stop/start.
Exit codes (common.py): 2 bad arguments or input (bad topology, unknown server), 1 the operation failed
(port in use, node unreachable, authentication failed, no convergence), 130 interrupted.
Invariants: a user never sees a traceback; every error is one `error: …` line.
May import: anything (CLI layer).
"""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import signal
import socket
import sys
import time
from pathlib import Path

import click
import trio

from linkstate.cli import netns_cmd, netns_metrics
from linkstate.cli.cluster import START_WAIT, Cluster, NodeRecord, format_status, node_alive
from linkstate.cli.common import EXIT_FAILED, HelpGroup, fail, print_json
from linkstate.cli.topology_cmd import load_or_fail
from linkstate.core.catalog import Ev
from linkstate.core.topology import ServerSpec, Topology, file_error
from linkstate.logconfig import configure
from linkstate.service.client import ClientError, dump_frame
from linkstate.service.metrics import MetricsAddress
from linkstate.service.node import NodeService
from linkstate.service.topofile import read_secret

LOG_FORMATS = ("json", "console", "auto")
LOG_LEVELS = ("debug", "info", "warning", "error")


def with_time_scale(topo: Topology, time_scale: float | None) -> Topology:
    if time_scale is None:
        return topo
    if not time_scale > 0:
        fail(f"--time-scale must be a positive number, got {time_scale}")
    return dataclasses.replace(topo, settings=dataclasses.replace(topo.settings, time_scale=time_scale))


def parse_hostport(text: str, default_port: int | None) -> tuple[str, int | None]:
    """`HOST`, `HOST:PORT`, `[V6]` or `[V6]:PORT`."""
    host, port = text, None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            fail(f"bad address {text!r}: missing ']'")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                fail(f"bad address {text!r}")
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host:
        fail(f"bad address {text!r}: no host")
    if port is None:
        return host, default_port
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        fail(f"bad port in {text!r}: a port is 1-65535")
    return host, int(port)


# --------------------------------------------------------------------------------------------- serve


@click.command("serve")
@click.option("--topology", "topology_file", required=True, type=click.Path(dir_okay=False), help="Topology file.")
@click.option("--server", required=True, help="The server (by name) this process runs.")
@click.option("--listen", help="ADDR[:PORT] to listen on instead of the server's address and port_691.")
@click.option("--time-scale", type=float, help="Divide every timer by X (overrides settings.time_scale).")
@click.option("--log-format", type=click.Choice(LOG_FORMATS), default="auto", show_default=True)
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default="info", show_default=True)
@click.option("--netns", metavar="NAME", help="Run inside this network namespace (real network mode; needs root).")
@click.option("--metrics", "metrics_opt", metavar="ADDR[:PORT]|off",
              help="Serve /metrics and /health here (default: the server's address at its metrics_port, else its "
              "691 port + 20000; 'off': not at all).")  # fmt: skip
def serve(
    topology_file: str,
    server: str,
    listen: str | None,
    time_scale: float | None,
    log_format: str,
    log_level: str,
    netns: str | None,
    metrics_opt: str | None,
) -> None:
    """Run one server's routing engine until SIGINT/SIGTERM; SIGHUP (or editing the file) reloads the topology."""
    if netns is not None:
        _enter(netns)
    topo = with_time_scale(load_or_fail(topology_file), time_scale)
    try:
        spec = topo.server(server)
    except KeyError:
        fail(f"unknown server {server!r} in {topology_file} (servers: {', '.join(s.name for s in topo.servers)})")
    host, port = spec.address or "127.0.0.1", spec.port_691 or 691
    if listen:
        host, lport = parse_hostport(listen, None)
        port = lport if lport is not None else port
    metrics = metrics_address(metrics_opt, spec, host, port)
    configure(log_format, log_level)
    error = trio.run(_serve, topo, server, host, port, Path(topology_file), metrics)
    if error:
        fail(error, EXIT_FAILED)


def _enter(netns: str) -> None:
    """Move this process into `netns` before it binds anything (and before trio starts a thread)."""
    from linkstate.netns.enter import NetnsError, enter_process

    try:
        enter_process(netns)
    except NetnsError as exc:
        fail(str(exc), EXIT_FAILED)


def metrics_address(option: str | None, spec: ServerSpec, host: str, port: int) -> MetricsAddress | None:
    """Where `serve` answers /metrics and /health: `--metrics ADDR[:PORT]` (it must bind), `off`, or by default
    the server's address at its `metrics_port` (it must bind) or at its 691 port + 20000 (the node runs without
    metrics when that one is taken)."""
    if option == "off":
        return None
    if option is None:
        return MetricsAddress(host, spec.metrics(port), required=spec.metrics_port is not None)
    mhost, mport = parse_hostport(option, None)
    return MetricsAddress(mhost, mport if mport is not None else spec.metrics(port))


async def _serve(
    topo: Topology, server: str, host: str, port: int, path: Path, metrics: MetricsAddress | None
) -> str | None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:
            svc = NodeService(topo, server, host=host, port=port, topology_path=path, metrics=metrics)
            try:
                await nursery.start(svc.run)
            except (OSError, ExceptionGroup) as exc:
                os_error = _find_os_error(exc)
                if os_error is None:
                    raise
                return _listen_error(svc, os_error)
            async for signum in signals:
                if signum == signal.SIGHUP:
                    svc.events.emit(Ev.SIGHUP, action="reload topology")
                    svc.reload()
                    continue
                svc.events.emit(Ev.SIGNAL, signal=signal.Signals(signum).name, action="shutting down")
                break
            svc.stop()  # a planned stop: its DETACH reaches the peers before it goes; `run` then returns
    return None


def _listen_error(svc: NodeService, exc: OSError) -> str:
    """The one line for a listener that could not be opened: 691, else metrics (an SMTP port that cannot be bound is
    not fatal: the node runs without it and says so)."""
    if svc.bound_port is None:
        where, what, hint = f"{svc.host}:{svc.port}", "691", ""
    else:
        m = svc.metrics_address
        where = f"{m.host}:{m.port}" if m is not None else "?"
        what, hint = "metrics", "; choose another with --metrics ADDR:PORT or none with --metrics off"
    return f"cannot listen on {where} ({what}): {_os_reason(exc)}{hint}"


def _find_os_error(exc: BaseException) -> OSError | None:
    """The OSError inside (possibly nested) exception groups, as raised from the listener's nursery."""
    if isinstance(exc, OSError):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        found = _find_os_error(inner)
        if found is not None:
            return found
    return None


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "address already in use"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges)"
    return (exc.strerror or str(exc)).rstrip(".")


# --------------------------------------------------------------------------------------------- winroute


def _target(target: str, topo: Topology | None, topology_file: str | None) -> tuple[str, int]:
    """HOST[:PORT]; with a topology, a server name also works (a name that is neither a server of the file nor
    a host is refused as `unknown server`), and a running local cluster's actual ports are used."""
    live = _live_addresses(topology_file)
    if topo is not None:
        spec = _server_named(topo, target)
        if spec is not None:
            return live.get(spec.name, (spec.address or "127.0.0.1", spec.port_691 or 691))
    host, port = parse_hostport(target, None)
    if topo is not None and not _is_host(host):
        fail(f"unknown server {target!r} in {topology_file} (servers: {', '.join(s.name for s in topo.servers)})")
    if port is not None:
        return host, port
    for rhost, rport in live.values():
        if rhost == host:
            return host, rport
    return host, 691


def _live_addresses(topology_file: str | None) -> dict[str, tuple[str, int]]:
    """Where the running nodes of the file's local cluster listen (none when no cluster runs)."""
    if topology_file is None:
        return {}
    state = Cluster(Path(topology_file)).state()
    if state is None:
        return {}
    return {name: (r.host, r.port) for name, r in state.servers.items() if node_alive(r)}


def _server_named(topo: Topology, name: str) -> ServerSpec | None:
    """The server called `name` (exact, else the one case-insensitive match)."""
    exact = [s for s in topo.servers if s.name == name]
    folded = [s for s in topo.servers if s.name.lower() == name.lower()]
    found = exact or folded
    return found[0] if len(found) == 1 else None


def _is_host(host: str) -> bool:
    """An IP address, or a name the resolver knows."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    return True


@click.command("winroute")
@click.argument("target", metavar="HOST[:PORT]")
@click.option("--topology", "topology_file", type=click.Path(dir_okay=False), help="Names and the secret.")
@click.option("--secret-file", type=click.Path(dir_okay=False), help="The organization secret (overrides the file).")
@click.option("--json", "as_json", is_flag=True, help="orginfo-decode JSON plus a `local` object.")
@click.option("--raw", is_flag=True, help="The raw ORGINFO frame bytes to stdout.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10, show_default=True, help="Seconds.")
@netns_cmd.outside_netns_option
def winroute(
    target: str,
    topology_file: str | None,
    secret_file: str | None,
    as_json: bool,
    raw: bool,
    timeout: float,
    outside: bool,
) -> None:
    """Show the link-state table a node holds, as WinRoute did: connect to TCP 691 and DUMP it."""
    if as_json and raw:
        fail("give --json or --raw, not both")
    topo = load_or_fail(topology_file) if topology_file else None
    if secret_file is not None:
        try:
            secret = read_secret(secret_file).strip()
        except OSError as exc:
            fail(f"cannot read {secret_file}: {file_error(exc)}")
        if not secret:
            fail(f"{secret_file} is empty")
    elif topo is not None:
        secret = topo.secret
    else:
        fail("the organization secret is needed: give --topology FILE or --secret-file F")
    host, port = _target(target, topo, topology_file)
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    ns = netns_cmd.query_namespace(topology_file, host, outside=outside)
    try:
        result = netns_cmd.run_in(ns, dump_frame, host, port, secret, timeout=timeout)
    except ClientError as exc:
        fail(exc.reason, EXIT_FAILED)
    if raw:
        sys.stdout.buffer.write(result.frame.raw)
        sys.stdout.buffer.flush()
    elif as_json:
        from linkstate.cli.winroute import json_view

        print_json(json_view(result, topo))
    else:
        from linkstate.cli.winroute import render

        for line in render(result, topo, where):
            click.echo(line)


# --------------------------------------------------------------------------------------------- cluster


@click.group("cluster", cls=HelpGroup)
def cluster_group() -> None:
    """A local cluster: every server of a topology file as its own process on its loopback address."""


def _cluster(file: str) -> tuple[Cluster, Topology]:
    topo = load_or_fail(file)
    return Cluster(Path(file)), topo


@cluster_group.command("up")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--time-scale", type=float, help="Divide every node's timers by X.")
@click.option("--no-status", is_flag=True, help="Do not print the live status; just run until Ctrl-C.")
@click.option("--wait", "wait_s", type=click.FloatRange(min=0), default=START_WAIT, show_default=True,
              help="Seconds each server may take to answer on 691.")  # fmt: skip
@click.option("--netns", is_flag=True, help="Real network mode (Linux, root): every server in its own network "
              "namespace, a bridge per group, a link between the bridgeheads of connected groups.")  # fmt: skip
def cluster_up(file: str, time_scale: float | None, no_status: bool, wait_s: float, netns: bool) -> None:
    """Start every server of FILE, show a live status, stop them all on Ctrl-C/SIGTERM."""
    cluster, topo = _cluster(file)
    with_time_scale(topo, time_scale)  # validates the value
    network = netns_cmd.plan_for(cluster, topo) if netns else None
    state = cluster.prepare(topo, time_scale, network=network)
    click.echo(f"run directory {cluster.run_dir}")
    if network is not None:
        click.echo(f"every server in its own network namespace: nodes run on {state.topology}")
    elif state.derived:
        click.echo(f"real ports not usable ({state.port_note}): nodes run on the dev-port copy {state.topology}")
    previous = signal.signal(signal.SIGTERM, interrupt_on_signal)
    forwarders: netns_metrics.Listeners = []
    try:
        if network is not None:
            netns_cmd.build(network)
        recs = [cluster.spawn(name) for name in state.servers]
        problems = trio.run(cluster.await_answers, [r.name for r in recs], wait_s)
        if network is not None:  # their /metrics answer inside their namespaces: forwarded from 127.0.0.1
            forwarders = netns_metrics.open_listeners(cluster)
            recs = [cluster.require_state().servers[r.name] for r in recs]
        for rec in recs:
            click.echo(f"  {rec.name:<12} pid {rec.pid:<7} {_came_up(rec, problems.get(rec.name))}")
        if problems:
            fail(f"{_count(len(problems), 'server')} of {len(recs)} did not come up ({', '.join(problems)}): "
                 "stopping the cluster", EXIT_FAILED)  # fmt: skip
        trio.run(_supervise, cluster, no_status, forwarders)
    finally:
        for sock, _ in forwarders:
            sock.close()
        # a second Ctrl-C or SIGTERM must not cut the clean-up short and leave nodes running
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stopped = cluster.stop_all()
        click.echo(f"stopped {_count(len(stopped), 'server')}" + (f": {', '.join(stopped)}" if stopped else ""))
        if network is not None:
            removed = netns_cmd.remove_network(cluster, network.prefix)
            click.echo(f"removed {_count(len(removed), 'network namespace')} ({network.prefix}*)")
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


def _came_up(rec: NodeRecord, problem: str | None) -> str:
    """The rest of a node's line after `cluster up` started it: where it listens and logs, or why it did not."""
    if problem is not None:
        return f"did not come up: {problem} (log {rec.log})"
    metrics = f"metrics {rec.metrics_url}"
    if rec.metrics_local is not None:  # a netns node: the URL above is the forwarder; the node's own is in there
        metrics += f" (forwarded to {rec.metrics_node_url} in {rec.netns})"
    return f"listens on {rec.host}:{rec.port}  {metrics}  log {rec.log}"


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def interrupt_on_signal(signum: int, frame: object) -> None:
    """SIGTERM outside trio's own handling behaves like Ctrl-C, so the `finally` that stops the nodes runs."""
    raise KeyboardInterrupt


async def _supervise(cluster: Cluster, no_status: bool, forwarders: netns_metrics.Listeners) -> None:
    tty = sys.stdout.isatty() and not no_status
    shown: list[str] = []
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            if forwarders:
                nursery.start_soon(netns_metrics.serve, forwarders)

            async def wait_signal() -> None:
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(wait_signal)
            while True:
                note = cluster.refresh_derived()
                if note:
                    click.echo(note)
                    shown = []
                if no_status:
                    cluster.reap()
                else:
                    lines = format_status(await cluster.statuses(timeout=2.0))  # finishes even when stopped
                    if tty:
                        if shown:
                            sys.stdout.write(f"\x1b[{len(shown)}F")
                        sys.stdout.write("".join(f"\x1b[2K{ln}\n" for ln in lines))
                        sys.stdout.flush()
                        shown = lines
                    elif lines != shown:
                        click.echo(time.strftime("%H:%M:%S"))
                        for ln in lines:
                            click.echo(f"  {ln}")
                        shown = lines
                await trio.sleep(1)


@cluster_group.command("status")
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("server", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def cluster_status(file: str, server: str | None, as_json: bool) -> None:
    """One line per server of FILE's local cluster, or SERVER's line (servers not running show `stopped`); a
    netns cluster adds one line for its links."""
    cluster, topo = _cluster(file)
    if server is not None:
        _known_server(topo, server, file)
    statuses = [s for s in trio.run(cluster.statuses) if server is None or s.name == server]
    if as_json:
        state = cluster.state()
        print_json(
            {
                "topology": str(cluster.source),
                "run_dir": str(cluster.run_dir),
                "supervisor": state.supervisor if state is not None and cluster.supervisor_alive(state) else None,
                "servers": [s.to_json() for s in statuses],
            }
        )
        return
    for line in format_status(statuses):
        click.echo(line)
    links = netns_cmd.link_summary(cluster)
    if links is not None:
        click.echo(links)


def _known_server(topo: Topology, server: str, file: str) -> None:
    if server not in {s.name for s in topo.servers}:
        fail(f"unknown server {server!r} in {file} (servers: {', '.join(s.name for s in topo.servers)})")


@cluster_group.command("stop")
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("server", required=False)
def cluster_stop(file: str, server: str | None) -> None:
    """Stop the whole cluster (its `cluster up` too), or only SERVER (SIGTERM, wait; `cluster up` will not
    restart it)."""
    cluster, topo = _cluster(file)
    if server is not None:
        _known_server(topo, server, file)
        rec, was = cluster.stop(server)
        click.echo(f"stopped {server} (pid {rec.pid})" if was else f"{server} was not running")
        return
    if not cluster.is_running(cluster.require_state()):
        click.echo(f"no cluster is running for {file}: nothing to stop")
    else:
        stopped, supervisor = cluster.shutdown()
        names = f": {', '.join(stopped)}" if stopped else ""
        click.echo(f"stopped {_count(len(stopped), 'server')}{names}")
        if supervisor is not None:
            click.echo(f"and its 'linkstate cluster up' (pid {supervisor})")
    removed = netns_cmd.leftover_network(cluster)
    if removed:
        click.echo(f"removed {_count(len(removed), 'network namespace')} its supervisor left behind")


@cluster_group.command("start")
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("server")
@click.option("--wait", "wait_s", type=click.FloatRange(min=0), default=START_WAIT, show_default=True,
              help="Seconds to wait for it to answer on 691.")  # fmt: skip
def cluster_start(file: str, server: str, wait_s: float) -> None:
    """Start one server of a running cluster again (detached from the terminal); waits until it answers."""
    cluster, topo = _cluster(file)
    _known_server(topo, server, file)
    rec = start_server(cluster, server, wait_s)
    click.echo(f"started {server} (pid {rec.pid}) on {rec.host}:{rec.port}")


def start_server(cluster: Cluster, server: str, wait_s: float = START_WAIT) -> NodeRecord:
    """Start one server of a running cluster and wait until it answers on 691 (one line and exit 1 if not:
    the node's own error line when it exited)."""
    state = cluster.require_state()
    if not cluster.supervisor_alive(state):
        fail(f"no cluster is running for {cluster.source.name} (start one with 'linkstate cluster up')", EXIT_FAILED)
    rec = cluster.spawn(server)
    problems = trio.run(cluster.await_answers, [server], wait_s)
    if problems:
        fail(f"{server} (pid {rec.pid}) did not come up: {problems[server]}", EXIT_FAILED)
    return rec


# --------------------------------------------------------------------------------------------- demo


@click.command("demo")
@click.option("--time-scale", type=float, help="Divide every node's timers by X (default: 60 for seattle, 10 for "
              "single-group).")  # fmt: skip
@click.option("--example", type=click.Choice(["seattle", "single-group"]), default="seattle", show_default=True)
@click.option("--timeout", type=click.FloatRange(min=1), default=90, show_default=True,
              help="Seconds each convergence step may take.")  # fmt: skip
@click.option("--netns", is_flag=True, help="Real network mode (Linux, root): every server in its own network "
              "namespace; London's bridgehead becomes unreachable because its links go down.")  # fmt: skip
def demo(time_scale: float | None, example: str, timeout: float, netns: bool) -> None:
    """The main job: the seed's organization as a local cluster; London's bridgehead fails; routes follow."""
    from linkstate.cli.demo import DEFAULT_TIME_SCALE, run_demo

    if time_scale is None:
        time_scale = DEFAULT_TIME_SCALE[example]
    if not time_scale > 0:
        fail(f"--time-scale must be a positive number, got {time_scale}")
    if netns:
        netns_cmd.require_support()
    code = run_demo(example, time_scale, timeout, netns)
    if code:
        raise SystemExit(code)


def register(cli: click.Group) -> None:
    cli.add_command(serve)
    cli.add_command(cluster_group)
    cli.add_command(winroute)
    cli.add_command(demo)
