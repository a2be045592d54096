"""Start, watch and stop the child processes of `goldwire up`.

Why it is separate from `up`: the shutdown rules (SIGTERM, a bounded grace
period, then SIGKILL of the whole process group) are the part worth testing
on their own, with throwaway children instead of real services.

Each child runs in its own session so that a Ctrl-C in the terminal reaches
only `goldwire up`, which then stops children in order (services before the
Redis they use). On Linux a child also gets SIGTERM if `goldwire up` dies
without cleaning up (see `procutil.parent_death_signal`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

from goldwire.cli.procutil import parent_death_signal

DEFAULT_GRACE = 15.0


@dataclass
class Child:
    """A started service process."""

    name: str
    proc: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None


class Supervisor:
    """Owns a set of child processes; not thread-safe (one main loop uses it)."""

    def __init__(self, *, out: TextIO | None = None) -> None:
        self.children: list[Child] = []
        self._out = out if out is not None else sys.stderr

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Child:
        """Start one child with exactly `env` as its environment."""
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=parent_death_signal(signal.SIGTERM),
        )
        child = Child(name, proc)
        self.children.append(child)
        return child

    def first_exited(self) -> Child | None:
        """The first child that is no longer running, if any."""
        for child in self.children:
            if not child.alive():
                return child
        return None

    def shutdown(
        self,
        grace: float = DEFAULT_GRACE,
        hurry: Callable[[], bool] = lambda: False,
        poll: float = 0.1,
    ) -> None:
        """SIGTERM every live child, wait up to `grace` s, then SIGKILL the rest.

        `hurry()` returning True (e.g. a second Ctrl-C) cuts the wait short.
        """
        live = [child for child in self.children if child.alive()]
        for child in live:
            self._print(f"stopping {child.name} (pid {child.pid})")
            _signal(child.proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(child.alive() for child in live):
            if time.monotonic() >= deadline or hurry():
                break
            time.sleep(poll)
        for child in live:
            if child.alive():
                self._print(f"killing {child.name} (pid {child.pid}): still running")
                _signal(child.proc, signal.SIGKILL, group=True)
        for child in live:
            child.proc.wait()

    def _print(self, message: str) -> None:
        print(f"goldwire up: {message}", file=self._out, flush=True)


def _signal(proc: subprocess.Popen[bytes], sig: int, group: bool = False) -> None:
    """Signal a child (or its whole process group, to reach grandchildren)."""
    if proc.poll() is not None:
        return
    try:
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
    except ProcessLookupError:
        pass
