"""A NetPlan made real with pyroute2: namespaces, bridges, veth pairs, addresses and routes; links cut and
restored; leftovers found and removed.

Owns: `Fabric(plan)`: `build()` (all or nothing: a failure removes what was made), `set_links(links, up)` (a cut
takes both ends of each veth down, so both bridgeheads lose the route at once, as with a pulled cable; restoring
brings them up and puts the host routes back, which the kernel dropped), `link_states()`, `teardown()`; and
`leftovers(prefix)`, `processes_in(names)`, `remove(names)`, `unsupported()` (why this machine cannot run netns
mode, or None), `run_namespaces()` (every namespace named like a run's) and `holders(address)` (the run namespaces
in which an address is local: where a query for it must be made).
Invariants: every interface is created inside a namespace of the plan (a veth is created in one end's namespace
with its peer placed straight into the other's), never in the initial namespace; nothing forks (namespaces are made
by a short-lived thread, netlink sockets are opened inside a namespace from the calling thread: pyroute2's own way
forks a copy of this process, which would run the CLI's clean-up code if a signal reached it); nothing outside the
plan's prefix is ever removed; pyroute2 is imported lazily, so the rest of linkstate runs without it.
May import: the standard library, pyroute2, linkstate.netns.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from linkstate.netns.enter import NETNS_DIR, NetnsError, netns_path, socket_in, unshare_thread
from linkstate.netns.plan import BRIDGE, LAN_IF, LINK_PREFIXLEN, PREFIX_RE, Host, Link, NetPlan, Route, Switch

INSTALL_HINT = "pip install pyroute2 (a dependency of linkstate on Linux)"
NETLINK_ROUTE = 0


def _pyroute2() -> Any:
    try:
        import pyroute2
    except ImportError:
        raise NetnsError(f"netns mode needs pyroute2: {INSTALL_HINT}") from None
    return pyroute2


def _errors() -> tuple[type[BaseException], ...]:
    from pyroute2.netlink.exceptions import NetlinkError

    return (NetlinkError, OSError)


class Fabric:
    """The kernel side of one plan. Open handles are per namespace and closed after each operation."""

    def __init__(self, plan: NetPlan) -> None:
        self.plan = plan
        self._ipr: dict[str, Any] = {}

    # --- handles -----------------------------------------------------------------------------------------

    def _ns(self, name: str) -> Any:
        ipr = self._ipr.get(name)
        if ipr is None:
            ipr = _pyroute2().IPRoute(use_socket=socket_in(name, socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE))
            self._ipr[name] = ipr
        return ipr

    def _index(self, ns: str, ifname: str) -> int:
        found = self._ns(ns).link_lookup(ifname=ifname)
        if not found:
            raise NetnsError(f"no interface {ifname} in namespace {ns}")
        return int(found[0])

    def _up(self, ns: str, ifname: str, up: bool = True) -> None:
        self._ns(ns).link("set", index=self._index(ns, ifname), state="up" if up else "down")

    def close(self) -> None:
        for ipr in self._ipr.values():
            try:
                ipr.close()
            except Exception:  # a handle that fails to close must not hide the operation's outcome
                pass
        self._ipr.clear()

    # --- building ----------------------------------------------------------------------------------------

    def build(self) -> None:
        """Create every namespace, bridge, veth, address and route of the plan; on failure remove them all."""
        try:
            for name in self.plan.namespaces():
                if (NETNS_DIR / name).exists():
                    raise NetnsError(f"namespace {name} already exists (a leftover? 'linkstate cluster clean')")
                create(name)
            for sw in self.plan.switches:
                self._switch(sw)
            for host in self.plan.hosts:
                self._host(host)
            for link in self.plan.links:
                self._link(link)
        except NetnsError:
            self.close()
            self.teardown()
            raise
        except _errors() as exc:
            self.close()
            self.teardown()
            raise NetnsError(f"cannot build the network: {_reason(exc)}") from None
        finally:
            self.close()

    def _switch(self, sw: Switch) -> None:
        ipr = self._ns(sw.netns)
        self._up(sw.netns, "lo")
        ipr.link("add", ifname=BRIDGE, kind="bridge")
        self._up(sw.netns, BRIDGE)

    def _host(self, host: Host) -> None:
        ipr = self._ns(host.netns)
        switch = self.plan.switch(host.group).netns
        self._up(host.netns, "lo")
        with _fd(switch) as fd:
            ipr.link("add", ifname=LAN_IF, kind="veth", peer={"ifname": host.switch_port, "net_ns_fd": fd})
        ipr.addr("add", index=self._index(host.netns, LAN_IF), address=host.address, prefixlen=host.prefixlen)
        self._up(host.netns, LAN_IF)
        sw = self._ns(switch)
        sw.link("set", index=self._index(switch, host.switch_port), master=self._index(switch, BRIDGE))
        self._up(switch, host.switch_port)
        for route in self.plan.lan_routes(host):
            self._route(route)

    def _link(self, link: Link) -> None:
        a, b = link.a, link.b
        with _fd(b.netns) as fd:
            self._ns(a.netns).link("add", ifname=a.ifname, kind="veth", peer={"ifname": b.ifname, "net_ns_fd": fd})
        for end in (a, b):
            ipr = self._ns(end.netns)
            ipr.addr("add", index=self._index(end.netns, end.ifname), address=end.address, prefixlen=LINK_PREFIXLEN)
            self._up(end.netns, end.ifname)
        for route in self.plan.link_routes(link):
            self._route(route)

    def _route(self, r: Route) -> None:
        spec: dict[str, Any] = {"dst": f"{r.dst}/32", "oif": self._index(r.netns, r.ifname), "prefsrc": r.prefsrc}
        if r.gateway is not None:
            spec["gateway"] = r.gateway
        else:
            spec["scope"] = 253  # link: the peer is on the wire
        self._ns(r.netns).route("replace", **spec)

    # --- faults --------------------------------------------------------------------------------------------

    def set_links(self, links: Iterable[Link], up: bool) -> list[str]:
        """Take links down (both ends) or bring them up (both ends, host routes put back); returns their names."""
        done = []
        try:
            for link in links:
                for end in (link.a, link.b):
                    self._up(end.netns, end.ifname, up)
                if up:
                    for route in self.plan.link_routes(link):
                        self._route(route)
                done.append(link.name)
        except _errors() as exc:
            raise NetnsError(f"cannot change link state: {_reason(exc)}") from None
        finally:
            self.close()
        return done

    def link_states(self) -> dict[str, bool]:
        """Each link's name -> up (both ends administratively up)."""
        states: dict[str, bool] = {}
        try:
            for link in self.plan.links:
                states[link.name] = all(self._is_up(end.netns, end.ifname) for end in (link.a, link.b))
        except _errors() as exc:
            raise NetnsError(f"cannot read link state: {_reason(exc)}") from None
        finally:
            self.close()
        return states

    def _is_up(self, ns: str, ifname: str) -> bool:
        msg = self._ns(ns).get_links(self._index(ns, ifname))[0]
        return bool(msg["flags"] & 1)  # IFF_UP

    # --- removal -------------------------------------------------------------------------------------------

    def teardown(self) -> list[str]:
        """Remove every namespace of the plan and any other with its prefix; returns the names removed."""
        self.close()
        names = sorted(set(self.plan.namespaces()) | set(leftovers(self.plan.prefix)))
        return remove(n for n in names if (NETNS_DIR / n).exists())


def create(name: str) -> None:
    """A new network namespace bound to /run/netns/`name`, made by a short-lived thread of this process (no
    fork: a forked copy of a CLI would run its clean-up code on a stray signal)."""
    attach = _pyroute2().netns.attach
    failure: list[BaseException] = []

    def work() -> None:
        try:
            unshare_thread()
            attach(name, threading.get_native_id())
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=work, name=f"netns-create-{name}")
    worker.start()
    worker.join()
    if failure:
        exc = failure[0]
        if isinstance(exc, NetnsError):
            raise exc
        raise NetnsError(f"cannot create namespace {name}: {_reason(exc)}")


@contextlib.contextmanager
def _fd(name: str) -> Iterator[int]:
    fd = os.open(netns_path(name), os.O_RDONLY)
    try:
        yield fd
    finally:
        os.close(fd)


def leftovers(prefix: str) -> list[str]:
    """Namespaces whose name starts with `prefix` (a run's own, whatever state they are in)."""
    if not prefix:
        return []
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def run_namespaces() -> list[str]:
    """Every namespace of this machine named like a netns run's (`ls-<6 hex>-…`), whichever run made it."""
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if PREFIX_RE.match(n))
    except (FileNotFoundError, NotADirectoryError):
        return []


def holders(address: str) -> list[str]:
    """The run namespaces in which `address` is a local address: a socket made there can bind it (nothing is
    sent). Namespaces this process cannot enter (without root) are skipped."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    found = []
    for name in run_namespaces():
        try:
            with contextlib.closing(socket_in(name, family, socket.SOCK_DGRAM)) as sock:
                sock.bind((address, 0))
        except (OSError, NetnsError):
            continue
        found.append(name)
    return found


def remove(names: Iterable[str]) -> list[str]:
    netns = _pyroute2().netns
    removed = []
    for name in names:
        try:
            netns.remove(name)
        except OSError as exc:
            raise NetnsError(f"cannot remove namespace {name}: {exc.strerror or exc}") from None
        removed.append(name)
    return removed


def processes_in(names: Iterable[str]) -> dict[str, list[int]]:
    """namespace -> pids of the processes inside it (matched by the namespace's inode)."""
    wanted: dict[tuple[int, int], str] = {}
    for name in names:
        try:
            st = os.stat(NETNS_DIR / name)
        except OSError:
            continue
        wanted[(st.st_dev, st.st_ino)] = name
    found: dict[str, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        owner = wanted.get((st.st_dev, st.st_ino))
        if owner is not None:
            found.setdefault(owner, []).append(int(entry))
    return found


def unsupported() -> str | None:
    """Why netns mode cannot run here (None: it can, as far as can be told without creating anything)."""
    if not sys.platform.startswith("linux"):
        return "netns mode needs Linux (network namespaces)"
    if os.geteuid() != 0:
        return "netns mode needs root (it creates network namespaces, veth pairs and bridges)"
    try:
        _pyroute2()
    except NetnsError as exc:
        return str(exc)
    if not os.path.exists("/proc/self/ns/net"):
        return "this kernel has no network namespaces (/proc/self/ns/net is missing)"
    return None


def _reason(exc: BaseException) -> str:
    args: tuple[Any, ...] = exc.args
    if len(args) == 2 and isinstance(args[0], int):
        return f"{args[1]} (errno {args[0]})"
    return str(exc) or type(exc).__name__
