"""Small helpers for the child processes the CLI and the tests start.

Why this exists: `goldwire up` and the test Redis start long-lived children
(Redis, gateways). If the parent is SIGKILLed it cannot clean up, and the
orphans keep holding ports (8000, the Redis port) until someone hunts them
down. On Linux the kernel can deliver a signal to a child when its parent
dies (`PR_SET_PDEATHSIG`); elsewhere we simply do without.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import random
import signal
import socket
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def parent_death_signal(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """Return a `preexec_fn` that asks the kernel to send `sig` when the parent dies.

    Returns None where this is not supported (non-Linux, no libc), so callers
    can pass the result straight to `subprocess.Popen(preexec_fn=...)`.

    Caveat (documented by the kernel): "parent" is the *thread* that forked.
    Only use this from a thread that lives as long as the child should, such
    as the main thread of `goldwire up`.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
    except OSError:
        return None

    def _preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)

    return _preexec


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free a moment ago.

    Another process can take it before we use it; callers that start a server
    on it must be ready to retry with a new port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_cluster_port(host: str = "127.0.0.1", below: int = 55000) -> int:
    """A free port under `below` whose +10000 (a Redis Cluster node's bus) is free too:
    the kernel's ephemeral range reaches past 55535, where the bus port cannot exist."""
    for _ in range(200):
        port = random.randrange(20000, below)
        try:
            for p in (port, port + 10000):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind((host, p))
        except OSError:
            continue
        return port
    raise OSError(f"no free port pair under {below} on {host}")
