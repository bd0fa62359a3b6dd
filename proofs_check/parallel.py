"""Claims run side by side in worker processes: ``proofs-check run --jobs N``.

A claim's steps are small programs (sympy, scipy quadrature, JAX programs on tens of points) that keep about one
core busy: on the 2-core reference machine ``run K1`` took 60 s of wall time for 60 s of CPU time, and K1 and H1
started together ended in 72 s where one after the other took 123 s. The claims share nothing but the output
folder and JAX's persistent compilation cache, so each runs whole in one worker (a fresh ``spawn`` process: JAX
does not survive ``fork``), the longest first (:attr:`proofs_check.registry.Claim.quick_seconds`), and the parent
assembles the report in the order asked for. Every draw is seeded by the claim's own tags
(:meth:`proofs_check.registry.Context.seed_for`), so a claim measures the same values in a worker as in the
command's own process.

The workers ignore Ctrl-C (SIGINT is ignored while they start, and they inherit that): the command's process takes
the press, stops the workers and writes the report of the claims that finished, as the one-process run does.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import queue
import signal
from typing import Callable, Sequence

from proofs_check.registry import Claim, ClaimResult, Context, Outcome

_events = None
"""In a worker: the queue that carries its progress messages to the command's process."""


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity; os.cpu_count() where that is not known)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def worker_count(jobs: int | None, claims: int) -> int:
    """How many claims run at once: ``jobs`` (None: one per available core), never more than there are claims."""
    return max(1, min(available_cores() if jobs is None else jobs, claims))


def longest_first(claims: Sequence[Claim]) -> list[Claim]:
    """The order in which workers take the claims: the longest (by :attr:`Claim.quick_seconds`) first, so that no
    long claim starts last on an otherwise idle machine; ties keep the order asked for."""
    return sorted(claims, key=lambda claim: -claim.quick_seconds)


def _start_worker(events) -> None:
    global _events
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command's process handles Ctrl-C and stops the workers
    _events = events
    import numerics  # noqa: F401  (float64 on, as in the command's process)


def _send(*event) -> None:
    if _events is not None:
        _events.put(event)


def _run_claim_in_worker(module: str, claim_id: str, profile: str, seed: int, arch_specs: tuple[str, ...],
                         out_dir: str) -> tuple[list[Outcome], float]:
    """Run one claim whole in this worker (``module`` registers it); its outcomes and seconds go back to the
    command's process (the Claim itself, which holds functions, stays here)."""
    import importlib

    from proofs_check.registry import REGISTRY, run_claim
    from theory.architecture import parse_spec

    importlib.import_module(module)
    claim = REGISTRY[claim_id]
    ctx = Context(profile=profile, seed=seed, out_dir=out_dir,
                  advance=lambda message: _send("advance", claim_id, message))
    ctx.archs = tuple(parse_spec(spec) for spec in arch_specs) if claim.uses_archs else ()
    result = run_claim(claim, ctx, starting=lambda where: _send("step", claim_id, where),
                       finished=lambda where: _send("step done", claim_id, where))
    return result.outcomes, result.seconds


class WorkerStopped(RuntimeError):
    """A worker process ended before its claim did (killed, e.g. by the system when memory ran out)."""


def run_in_workers(claims: Sequence[Claim], *, jobs: int, profile: str, seed: int, arch_specs: Sequence[str],
                   out_dir, running: Callable[[dict[str, str]], None] = lambda messages: None,
                   step_done: Callable[[], None] = lambda: None,
                   claim_done: Callable[[ClaimResult], None] = lambda result: None,
                   finished: list[ClaimResult] | None = None, where: dict[str, str] | None = None
                   ) -> list[ClaimResult]:
    """Run ``claims`` in ``jobs`` worker processes; return their results in the order of ``claims``.

    ``running(messages)`` is called with each running claim's latest progress message (claim id -> "ID: step" or
    the step's own message) whenever one changes, ``step_done()`` after every step, ``claim_done(result)`` as each
    claim ends (in the order they end). Each finished result is appended to ``finished`` and each running claim's
    current step ("ID: step") kept in ``where`` as they come, so that a KeyboardInterrupt (raised here, in the
    command's process) leaves the caller what finished and what was running; the workers are stopped before it
    propagates. :class:`WorkerStopped` if a worker died."""
    by_id = {claim.id: claim for claim in claims}
    finished = [] if finished is None else finished
    where = {} if where is None else where
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    messages, ended = {}, set()
    executor = concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context,
                                                      initializer=_start_worker, initargs=(events,))
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited by the workers as they start
        try:
            pending = {executor.submit(_run_claim_in_worker, claim.module, claim.id, profile, seed,
                                       tuple(arch_specs), str(out_dir)): claim.id for claim in longest_first(claims)}
        finally:
            signal.signal(signal.SIGINT, previous)
        while pending:
            done, _ = concurrent.futures.wait(pending, timeout=0.2, return_when=concurrent.futures.FIRST_COMPLETED)
            _drain(events, where, messages, running, step_done, ended)
            for future in done:
                claim_id = pending.pop(future)
                try:
                    outcomes, seconds = future.result()
                except concurrent.futures.process.BrokenProcessPool:
                    raise WorkerStopped(f"the worker process running {claim_id} stopped before the claim ended (the "
                                        "system may have ended it for lack of memory)") from None
                where.pop(claim_id, None)
                messages.pop(claim_id, None)
                ended.add(claim_id)
                result = ClaimResult(claim=by_id[claim_id], outcomes=outcomes, seconds=seconds)
                finished.append(result)
                claim_done(result)
            if done:
                running(dict(messages))
    except BaseException:
        _stop(executor)
        raise
    executor.shutdown(wait=True)  # the workers have ended, and sent every message on their way out
    _drain(events, where, messages, running, step_done, ended)
    order = {claim.id: index for index, claim in enumerate(claims)}
    return sorted(finished, key=lambda result: order[result.claim.id])


def _drain(events, where: dict[str, str], messages: dict[str, str], running, step_done, ended: set[str]) -> None:
    """Take every message the workers have sent so far (a claim's messages may still arrive after its result: those
    of an ``ended`` claim only advance the steps)."""
    changed = False
    while True:
        try:
            kind, claim_id, text = events.get_nowait()
        except queue.Empty:
            break
        if kind == "step done":
            step_done()
        elif claim_id not in ended:
            if kind == "step":
                where[claim_id] = text
            messages[claim_id] = text
            changed = True
    if changed:
        running(dict(messages))


def _stop(executor: concurrent.futures.ProcessPoolExecutor) -> None:
    """End the workers now (a running claim cannot be cancelled otherwise) and the executor with them."""
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()
    executor.shutdown(wait=True, cancel_futures=True)
