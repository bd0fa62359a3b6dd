"""The ``proofs-check`` program (the console script's entry point): it puts the command's Ctrl-C recorder in place
with the standard library alone, before the command line interface and its numerical libraries are imported, then
hands over to :func:`proofs_check.cli.main`.

Importing :mod:`proofs_check.cli` and JAX takes about 0.6 s; a Ctrl-C there used to print Python's traceback (a
KeyboardInterrupt inside numpy's import became an ImportError, inside jaxlib's it aborted the process, inside a
garbage-collection callback of JAX it was printed and lost). Now a press in those imports ends the program with one
line and status 130, once they are done. Measured on the 2-core machine (time from ``exec`` to the first SIGINT
handler, medians of 5 in two interleaved rounds): 600 and 830 ms with ``proofs_check.cli:main`` as the entry point,
22 and 29 ms with this one, of which 15-20 ms is the bare interpreter starting. A press in that start-up, before any
of the program runs, still meets Python's own handling (a traceback from ``site``, or the process ends by the signal,
which a shell reports as 130).

This module imports only the standard library, so that it stays fast to import; :mod:`numerics.checkpoint` and
:mod:`proofs_check.cli` take :class:`InterruptRequests`, :func:`counting_interrupts`, the program's name and its
Ctrl-C line from here.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

PROG = "proofs-check"

NOT_STARTED = "interrupted before the command started; rerun it"
"""The line (after ``proofs-check: ``) for a Ctrl-C before a command's work began: nothing was written."""


class InterruptRequests:
    """The Ctrl-C presses during one command (the SIGINT handler that :func:`counting_interrupts` installs):
    ``count`` of them so far. While the command works (``raising``) each press raises KeyboardInterrupt; after
    :meth:`finish` they are only counted."""

    def __init__(self, *, raising: bool = True):
        self.count = 0
        self.raising = raising

    @property
    def requested(self) -> bool:
        return self.count > 0

    def __call__(self, signum, frame):
        self.count += 1
        if self.raising:
            raise KeyboardInterrupt

    def finish(self) -> bool:
        """The command's work is over: later presses are only counted. Returns whether Ctrl-C was pressed at all,
        including a press whose KeyboardInterrupt Python discarded."""
        self.raising = False
        return self.requested


@contextmanager
def counting_interrupts(requests: InterruptRequests) -> Iterator[InterruptRequests]:
    """Within the block ``requests`` is the SIGINT handler, and a KeyboardInterrupt that Python discards (raised
    inside a gc callback or a ``__del__``: "Exception ignored in ...") is not printed; both are put back after it.
    Outside the main thread (where Python cannot install signal handlers) it only yields."""
    if threading.current_thread() is not threading.main_thread():
        yield requests
        return
    previous_hook = sys.unraisablehook

    def unraisable(info):
        if not isinstance(info.exc_value, KeyboardInterrupt):
            previous_hook(info)

    previous = signal.signal(signal.SIGINT, requests)
    sys.unraisablehook = unraisable
    try:
        yield requests
    finally:
        sys.unraisablehook = previous_hook
        signal.signal(signal.SIGINT, previous)



STUCK_PRESS_GRACE = 1.0
"""Seconds :func:`ending_on_a_stuck_press` leaves Python's own handler to act on the deciding press before it ends
the program itself (the handler runs within microseconds when the main thread is in Python)."""


@contextmanager
def ending_on_a_stuck_press(presses: int, handled: threading.Event, line) -> Iterator[None]:
    """Within the block the ``presses``-th Ctrl-C ends the program at once with ``PROG: line()`` and status 130,
    also while the main thread is inside a long compiled computation, where Python runs no signal handler until
    the computation returns (a distillation step with a formula activation took 43 s; the second press, meant to
    stop at once, waited for it). The C-level signal handler writes each signal to a pipe
    (``signal.set_wakeup_fd``) that a thread reads; if ``handled`` is not set within :data:`STUCK_PRESS_GRACE` of the
    deciding press (Python's handler sets it when it runs and acts itself), the thread prints the line and ends
    the process. Outside the main thread it only yields."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    try:
        previous = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    except (ValueError, OSError):  # no wakeup descriptor here: Python's handler alone
        os.close(read_end)
        os.close(write_end)
        yield
        return

    def watch():
        count = 0
        while True:
            try:
                data = os.read(read_end, 64)
            except OSError:
                return
            if not data:  # the block ended: the write end is closed
                return
            count += sum(byte == signal.SIGINT for byte in data)
            if count >= presses and not handled.wait(STUCK_PRESS_GRACE):
                print(f"{PROG}: {line()}", file=sys.stderr)
                end_program(130)

    watcher = threading.Thread(target=watch, name="stuck-press watcher", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous)
        os.close(write_end)
        watcher.join(timeout=1.0)
        os.close(read_end)

class ClosedOutputTolerated:
    """Standard output that a closed reader (``proofs-check run | head``) cannot stop: the first write or flush
    that meets a broken pipe turns every later one into nothing, and the command goes on to write its files and
    ends with its own status. Python raises BrokenPipeError there, and rich answered it with SystemExit(1), which
    ended ``run`` silently with status 1 before its report was written. Everything else is the stream's own."""

    def __init__(self, stream):
        self.stream = stream
        self.closed_by_reader = False

    def _guarded(self, operation, *args):
        if self.closed_by_reader:
            return len(args[0]) if args else None
        try:
            return operation(*args)
        except BrokenPipeError:
            self.closed_by_reader = True
            return len(args[0]) if args else None

    def write(self, text):
        return self._guarded(self.stream.write, text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        return self._guarded(self.stream.flush)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def tolerate_closed_output() -> None:
    """Make ``sys.stdout`` and ``sys.stderr`` :class:`ClosedOutputTolerated` (once; the program's entry points call
    it): a closed stderr (``2>&1 | (sleep 2; true)``) turned a refusal's exit 2 into 1."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, ClosedOutputTolerated):
            setattr(sys, name, ClosedOutputTolerated(stream))


def flush_output() -> None:
    """Flush standard output and error (what was printed so far reaches the terminal or pipe)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (``| head``): nothing more can be shown
            pass


def end_program(code: int) -> None:
    """Flush what was printed and end the process with ``code`` now, without the interpreter's teardown (freeing
    JAX's objects takes 0.6-1.1 s, during which Python has put back the default Ctrl-C action, so a Ctrl-C there
    killed the process silently)."""
    flush_output()
    os._exit(code)


def main() -> None:
    """The program: record Ctrl-C from here on, import the command line interface and the numerical libraries,
    and run the command given on the command line (:func:`proofs_check.cli.main`); it ends the process itself.
    During the imports a press is only counted (a KeyboardInterrupt raised inside them turned into numpy's
    ImportError, a traceback, or aborted the process from jaxlib's C++, measured at 0.35-0.45 s); the command
    then starts by ending with :data:`NOT_STARTED` and 130 when one was pressed."""
    requests = InterruptRequests(raising=False)
    tolerate_closed_output()
    with counting_interrupts(requests):
        try:
            from proofs_check import cli
            import numerics.checkpoint  # noqa: F401  (JAX: the rest of what cli.main imports before the command)

            code = cli.main(requests=requests)  # it makes the presses raise once it can turn them into its line
        except KeyboardInterrupt:  # a second press while the first one's line was being printed
            requests.finish()
            print(f"{PROG}: {NOT_STARTED}", file=sys.stderr)
            code = 130
        except SystemExit as stop:  # --help: argparse printed it and exits 0 (usage errors are the CLI's own, exit 2)
            code = stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
            if isinstance(stop.code, str):
                print(stop.code, file=sys.stderr)
        end_program(code)  # still counting: no press reaches Python's default action before the process ends
