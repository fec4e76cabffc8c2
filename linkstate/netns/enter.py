"""Entering a network namespace: a whole process, one thread for a moment, a child before it runs.

Owns: `unshare_thread()` (the calling thread gets a new namespace: how fabric makes one without a fork),
`enter_process(name)` (a process that has not started threads moves into the namespace for good: what
`linkstate serve --netns NAME` does first), `socket_in(name, ...)` (a socket created inside the namespace while
the calling thread stays where it is: a socket belongs to the namespace it was created in), `call_in(name, fn,
...)` (an async call whose TCP connections are made inside the namespace, through a trio socket factory and a
context variable, so concurrent calls into different namespaces do not mix), and `child_setup(name)` (a
`preexec_fn` for subprocess: the child enters the namespace between fork and exec).
Invariants: setns(2) changes only the calling thread; every temporary switch returns to the thread's own namespace
before the function returns, on every path; a namespace that does not exist is a `NetnsError`, never a fallback to
the current namespace.
May import: the standard library and trio.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import ctypes.util
import os
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import ParamSpec, TypeVar

import trio

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
P = ParamSpec("P")
T = TypeVar("T")

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("linkstate_netns", default=None)
_libc: ctypes.CDLL | None = None


class NetnsError(Exception):
    """A namespace could not be entered or managed (one line for the user)."""


def netns_path(name: str) -> Path:
    if not name or "/" in name or name in (".", ".."):
        raise NetnsError(f"bad namespace name {name!r}")
    return NETNS_DIR / name


def _setns(fd: int, what: str) -> None:
    if _libc_setns()(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NetnsError(f"cannot enter network namespace {what}: {os.strerror(err)}")


def _open(name: str) -> int:
    try:
        return os.open(netns_path(name), os.O_RDONLY)
    except FileNotFoundError:
        raise NetnsError(f"no network namespace {name!r} (is the cluster running?)") from None
    except OSError as exc:
        raise NetnsError(f"cannot open network namespace {name!r}: {exc.strerror or exc}") from None


def enter_process(name: str) -> None:
    """Move this thread (call it before any other thread starts: the whole process) into `name` for good."""
    fd = _open(name)
    try:
        _setns(fd, name)
    finally:
        os.close(fd)


@contextlib.contextmanager
def inside(name: str) -> Iterator[None]:
    """The calling thread is inside `name` for the duration of the block (keep it short and synchronous)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = _open(name)
        try:
            _setns(target, name)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home, "of this thread (back home)")
    finally:
        os.close(home)


def socket_in(name: str, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0) -> socket.socket:
    """A socket of namespace `name` (connects, binds and routes there), made without moving the caller."""
    with inside(name):
        return socket.socket(family, type, proto)


class _Factory(trio.abc.SocketFactory):
    """trio's socket factory: inside the namespace of the current `call_in`, plain sockets elsewhere."""

    def socket(
        self, family: socket.AddressFamily | int = socket.AF_INET,
        type: socket.SocketKind | int = socket.SOCK_STREAM, proto: int = 0,
    ) -> trio.socket.SocketType:  # fmt: skip
        name = _current.get()
        sock = socket_in(name, family, type, proto) if name else socket.socket(family, type, proto)
        return trio.socket.from_stdlib_socket(sock)


_FACTORY = _Factory()


async def call_in(name: str | None, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
    """`await fn(*args, **kwargs)` with every socket it opens made inside namespace `name` (None: here)."""
    if name is None:
        return await fn(*args, **kwargs)
    if not netns_path(name).exists():  # said here, in one line, rather than from inside trio's connect machinery
        raise NetnsError(f"no network namespace {name!r} (is the cluster running?)")
    trio.socket.set_custom_socket_factory(_FACTORY)
    token = _current.set(name)
    try:
        return await fn(*args, **kwargs)
    finally:
        _current.reset(token)


@contextlib.contextmanager
def child_setup(name: str) -> Iterator[Callable[[], None]]:
    """A `preexec_fn` that moves a child into `name` between fork and exec (subprocess calls it before it closes
    inherited descriptors). The namespace is opened here, in the parent, so a missing one is a NetnsError now
    rather than a dead child; the descriptor is closed when the block ends."""
    fd = _open(name)
    setns = _libc_setns()

    def setup() -> None:
        if setns(fd, CLONE_NEWNET) != 0:
            os._exit(127)

    try:
        yield setup
    finally:
        os.close(fd)


def unshare_thread() -> None:
    """Give the calling thread a fresh, empty network namespace (it should end soon after: fabric binds the
    namespace to a name from such a thread, with no fork, so no copy of this process ever runs our code)."""
    if _get_libc().unshare(CLONE_NEWNET) != 0:
        raise NetnsError(f"cannot create a network namespace: {os.strerror(ctypes.get_errno())}")


def _get_libc() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return _libc


def _libc_setns() -> Callable[[int, int], int]:
    fn: Callable[[int, int], int] = _get_libc().setns
    return fn
