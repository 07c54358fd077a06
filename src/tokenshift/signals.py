"""Ctrl-C that stops at once, and named points where tests stop a run on purpose.

Python handles SIGINT between bytecodes, so a long call into Rust (the tokenizers trainer) would hold
Ctrl-C until it returns. :func:`interruptible` runs such a call in a daemon thread and waits in
short slices: Ctrl-C then raises in the main thread at once, cleanup runs, the command exits 130,
and the abandoned thread ends with the process.

:func:`kill_point` marks a moment in a run by name (``transplant:written``: the weights are in the
temporary folder, not yet renamed). When ``TOKENSHIFT_SIGNAL_AT`` names that point, the process sends
itself ``TOKENSHIFT_SIGNAL`` (``KILL``, the default, ``INT``, as Ctrl-C would, ``TERM``, or ``STOP``, which
pauses it until a ``SIGCONT``: race tests change the file system under a paused run): kill tests stop a
run at a known place instead of after a guessed delay.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

POLL_SECONDS = 0.1


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with a line saying what was kept (a checkpoint) and how to go on."""


def kill_point(name: str) -> None:
    """Send this process ``$TOKENSHIFT_SIGNAL`` if ``$TOKENSHIFT_SIGNAL_AT`` is ``name``; else nothing."""
    if os.environ.get("TOKENSHIFT_SIGNAL_AT") != name:
        return
    which = os.environ.get("TOKENSHIFT_SIGNAL", "KILL").upper()
    del os.environ["TOKENSHIFT_SIGNAL_AT"]  # once: what the run does about the signal may pass the same point again
    os.kill(os.getpid(), {"INT": signal.SIGINT, "TERM": signal.SIGTERM, "STOP": signal.SIGSTOP}.get(which, signal.SIGKILL))


class Terminated(KeyboardInterrupt):
    """SIGTERM (what schedulers, Docker and systemd send), handled as Ctrl-C is: the same clean-up
    (temporaries removed, heal's checkpoint written), then exit 143."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated("terminated (SIGTERM)")


def handle_sigterm() -> None:
    """Make SIGTERM raise :class:`Terminated` in the main thread (from the command-line entry point)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)


def interruptible(call: Callable[[], T]) -> T:
    """``call()``, in a daemon thread when this is the main thread, so that Ctrl-C interrupts the wait."""
    if threading.current_thread() is not threading.main_thread():
        return call()
    result: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(call())
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=target, name="tokenshift-worker", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(POLL_SECONDS)
    if failure:
        raise failure[0]
    return result[0]
