"""Test support for the node CLI tests: free loopback ports, small topology files, the CLI in-process or as a
subprocess, and cleanup of every process a test starts.

May import: anything (tests).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from click.testing import CliRunner, Result

from linkstate.cli.main import cli

SECRET = "test-org-secret"
ENTRY = "from linkstate.cli.main import main; main()"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port(host))
    return sorted(ports)


@contextlib.contextmanager
def squat(port: int, host: str = "127.0.0.1") -> Iterator[socket.socket]:
    """A listener holding host:port so that a node cannot bind it. SO_REUSEADDR, as the node's own listeners: a
    connection the port's last owner closed first leaves a TIME_WAIT there (a status DUMP in flight when a node is
    stopped), and a plain bind would fail on it; a second listener on the port is still refused."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen()
        yield sock


def write_topology(
    path: Path, names: list[str], ports: list[int], *, host: str = "127.0.0.1", smtp: list[int] | None = None
) -> Path:
    """One routing group `RG`, the first name its master, every server on `host` with explicit ports (free
    SMTP ports are picked when `smtp` is not given, so no node ever tries port 25; free metrics ports always, so
    none depends on the port its 691 port derives)."""
    if smtp is None:
        smtp = [p for p in free_ports(len(names) + len(ports)) if p not in ports][: len(names)]
    taken = {*ports, *smtp}
    metrics = [p for p in free_ports(len(names) + len(taken)) if p not in taken][: len(names)]
    lines = [
        "[organization]",
        'name = "Test"',
        'domain = "example.com"',
        f'secret = "{SECRET}"',
        "",
        "[[routing_groups]]",
        'name = "RG"',
        f'master = "{names[0]}"',
    ]
    for i, (name, port) in enumerate(zip(names, ports, strict=True)):
        lines += ["", "[[servers]]", f'name = "{name}"', 'routing_group = "RG"', f'address = "{host}"']
        lines += [f"port_691 = {port}", f"port_smtp = {smtp[i]}", f"metrics_port = {metrics[i]}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def invoke(*args: str) -> Result:
    """The CLI in-process (for commands that fail before starting trio or that run their own trio.run)."""
    return CliRunner().invoke(cli, list(args))


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", ENTRY, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def spawn_cli(*args: str, env: dict[str, str] | None = None, stdout: IO[str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", ENTRY, *args],
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )


def kill_quietly(pid: int | None) -> None:
    if not pid:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def reaped(proc: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """Kill the process (and its process group) on the way out, whatever happened."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def run_demo(out: Path, *args: str, timeout: float) -> tuple[int, str]:
    """`linkstate demo ARGS` as a subprocess until it exits; (exit code, its output). On a timeout it gets a Ctrl-C
    (the demo stops its nodes and removes its network on Ctrl-C) and the test fails."""
    with open(out, "w") as fh, reaped(spawn_cli("demo", *args, stdout=fh)) as demo:
        try:
            rc = demo.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            demo.send_signal(signal.SIGINT)
            demo.wait(timeout=30)
            raise
    return rc, out.read_text()


def demo_routes(text: str) -> list[tuple[str, int]]:
    """The routes the seed scenario's demo printed, in order: (path, cost)."""
    return [(p, int(c)) for p, c in re.findall(r"^  route  (.+?)  cost (\d+)", text, re.MULTILINE)]


SEED_ROUTES = [
    ("Seattle → London → Brussels", 20),
    ("Seattle → Tokyo → Brussels", 35),
    ("Seattle → London → Brussels", 20),
]
