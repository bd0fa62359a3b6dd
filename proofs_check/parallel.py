"""Claims run side by side in worker processes: ``proofs-check run --jobs N``.

A claim's steps are small programs (sympy, scipy quadrature, JAX programs on tens of points) that keep about one
core busy: on the 2-core reference machine ``run K1`` took 60 s of wall time for 60 s of CPU time, and K1 and H1
started together ended in 72 s where one after the other took 123 s. The claims share nothing but the output
folder and JAX's persistent compilation cache, so each runs whole in a fresh process of its own (``spawn``: JAX
does not survive ``fork``), the longest first (:attr:`proofs_check.registry.Claim.quick_seconds`), and the
command's process assembles the report in the order asked for. Every draw is seeded by the claim's own tags, but
Hypothesis also draws some examples from the constants of the modules a process has imported: a worker therefore
imports the project modules the command's process had imported before it runs its claim, and runs no other claim,
so that it measures what ``proofs-check run ID`` measures alone (R1 and H1 compared outcome by outcome, details
included: equal).

The workers never see Ctrl-C: they start with SIGINT blocked (blocked in the command's main thread while it starts
them, and in the pool's manager thread, which starts the later ones) and ignore it once they run
(numerics.checkpoint.leave_sigint_alone: no attack or training loop in them puts a handler back). The command's
process takes the press, stops the workers and writes the report of the claims that finished.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import multiprocessing
import os
import queue
import signal
import sys
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


def not_in_workers(claims: Sequence[Claim]) -> str | None:
    """Why ``claims`` cannot run in fresh processes, or None. A fresh process knows the built-in activations and
    layer kinds and the claims of modules it can import; an activation or layer kind registered by the caller's own
    code, or a claim registered outside an importable module, exists only in the caller's process."""
    from theory import activations, layers

    if not activations.only_built_in():
        return "an activation registered by this process's own code is unknown to a fresh process"
    if not layers.only_built_in_kinds():
        return "a layer kind registered by this process's own code is unknown to a fresh process"
    for claim in claims:
        if not _importable(claim.module):
            return f"claim {claim.id} is registered by code a fresh process cannot import ({claim.module or '?'})"
    return None


def _importable(name: str) -> bool:
    """Whether a fresh process finds module ``name``: asked of the import system's finders (sys.meta_path: the path
    finder, an editable install's own finder), not of sys.modules, where a module loaded from a file path or run as
    __main__ sits under a name that a fresh process cannot import."""
    if not name or name == "__main__":
        return False
    path = None
    parts = name.split(".")
    for index in range(len(parts)):
        spec = _find_spec(".".join(parts[: index + 1]), path)
        if spec is None:
            return False
        path = spec.submodule_search_locations
        if path is None and index < len(parts) - 1:  # a plain module has no submodules
            return False
    return True


def _find_spec(name: str, path):
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        try:
            spec = None if find is None else find(name, path)
        except (ImportError, ValueError, TypeError, AttributeError):
            spec = None
        if spec is not None:
            return spec
    return None


def _start_worker(events) -> None:
    """Light (no JAX): the pool also starts a worker after the last claim was taken, which then only ends."""
    global _events
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command's process handles Ctrl-C and stops the workers
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked while the process started
    _events = events


def _send(*event) -> None:
    if _events is not None:
        _events.put(event)


def project_modules() -> tuple[str, ...]:
    """The modules of this project that this process has imported (proofs_check.registry.PROJECT_PACKAGES)."""
    from proofs_check.registry import PROJECT_PACKAGES

    return tuple(sorted(name for name in list(sys.modules) if name.partition(".")[0] in PROJECT_PACKAGES))


def _run_claim_in_worker(modules: tuple[str, ...], module: str, claim_id: str, profile: str, seed: int,
                         arch_specs: tuple[str, ...], out_dir: str) -> tuple[list[Outcome], float]:
    """Run one claim whole in this worker (``module`` registers it), after importing ``modules``, the project's
    modules that the command's process had imported: Hypothesis draws some examples from the constants of the
    modules imported so far, so the claim then draws what it draws there (``run ID`` alone). Its outcomes and
    seconds go back to the command's process (the Claim itself, which holds functions, stays here)."""
    from numerics.checkpoint import leave_sigint_alone  # numerics: float64 on, as in the command's process
    from proofs_check.registry import REGISTRY, run_claim
    from theory.architecture import parse_spec

    leave_sigint_alone()  # ignored here (_start_worker): no attack or training loop may put a handler back
    for name in (*modules, module):
        importlib.import_module(name)
    claim = REGISTRY[claim_id]
    ctx = Context(profile=profile, seed=seed, out_dir=out_dir,
                  advance=lambda message: _send("advance", claim_id, message))
    ctx.archs = tuple(parse_spec(spec) for spec in arch_specs) if claim.uses_archs else ()
    result = run_claim(claim, ctx, starting=lambda where: _send("step", claim_id, where),
                       finished=lambda where: _send("step done", claim_id, where))
    return result.outcomes, result.seconds


class WorkerStopped(RuntimeError):
    """A worker process ended before its claim did (killed by the system, e.g. for lack of memory, or crashed)."""


def run_in_workers(claims: Sequence[Claim], *, jobs: int, profile: str, seed: int, arch_specs: Sequence[str],
                   out_dir, running: Callable[[dict[str, str]], None] = lambda messages: None,
                   step_finished: Callable[[], None] = lambda: None,
                   claim_finished: Callable[[ClaimResult], None] = lambda result: None,
                   poll: Callable[[], None] = lambda: None, results_so_far: list[ClaimResult] | None = None,
                   where: dict[str, str] | None = None) -> list[ClaimResult]:
    """Run ``claims`` in fresh worker processes, ``jobs`` at a time; return their results in the order of
    ``claims``.

    ``running(messages)`` is called with each running claim's latest progress message (claim id -> "ID: step" or
    the step's own message) whenever one changes, ``step_finished()`` after every step, ``claim_finished(result)`` as
    each claim ends (in the order they end), ``poll()`` about every 0.2 s (it may raise KeyboardInterrupt). Each
    result is appended to ``results_so_far`` and each running claim's current step ("ID: step") kept in ``where``
    as they come, so that a KeyboardInterrupt (raised here, in the command's process) or :class:`WorkerStopped`
    leaves the caller what finished and what was running; the workers are stopped before either propagates."""
    by_id = {claim.id: claim for claim in claims}
    results = [] if results_so_far is None else results_so_far
    where = {} if where is None else where
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    messages, ended = {}, set()
    # SIGINT blocked in this thread while it starts the pool, its manager thread and the first workers: the workers
    # (also those the manager thread starts later, with the mask it inherited) begin with it blocked
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])  # the mask now (a pending press may raise here)
    executor = None
    try:
        try:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            executor = concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context,
                                                              max_tasks_per_child=1, initializer=_start_worker,
                                                              initargs=(events,))
            modules = project_modules()
            pending = {executor.submit(_run_claim_in_worker, modules, claim.module, claim.id, profile, seed,
                                       tuple(arch_specs), str(out_dir)): claim.id for claim in longest_first(claims)}
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        while pending:
            poll()
            done, _ = concurrent.futures.wait(pending, timeout=0.2, return_when=concurrent.futures.FIRST_COMPLETED)
            _drain(events, where, messages, running, step_finished, ended)
            broken = False
            for future in done:
                claim_id = pending.pop(future)
                try:
                    outcomes, seconds = future.result()
                except concurrent.futures.process.BrokenProcessPool:
                    broken = True
                    continue
                except Exception as error:  # noqa: BLE001 - the claim could not be run there: a failed outcome
                    outcomes, seconds = [_not_run_outcome(claim_id, error)], 0.0
                where.pop(claim_id, None)
                messages.pop(claim_id, None)
                ended.add(claim_id)
                result = ClaimResult(claim=by_id[claim_id], outcomes=outcomes, seconds=seconds)
                results.append(result)
                claim_finished(result)
            if broken:  # every claim not finished fails with it; those that finished in this wait are kept above
                raise WorkerStopped(f"a worker process ended before its claim did (running: "
                                    f"{', '.join(where) or 'none had started a step'}); the system may have stopped "
                                    "it for lack of memory; --jobs 1 runs every claim in the command's own process")
            if done:
                running(dict(messages))
    except BaseException:
        if executor is not None:
            _stop(executor)
        raise
    executor.shutdown(wait=True)  # the workers have ended, and sent every message on their way out
    _drain(events, where, messages, running, step_finished, ended)
    order = {claim.id: index for index, claim in enumerate(claims)}
    return sorted(results, key=lambda result: order[result.claim.id])


def _not_run_outcome(claim_id: str, error: BaseException) -> Outcome:
    """The failed outcome of a claim its worker could not run (its module did not import, the claim was not
    registered there, a result that could not be sent back)."""
    return Outcome(name=f"{claim_id} in a worker process", passed=False, measured=None, expected="no error",
                   reason="the worker process could not run the claim; --jobs 1 runs it in the command's process",
                   details={"error": f"{type(error).__name__}: {error}"})


def _drain(events, where: dict[str, str], messages: dict[str, str], running, step_finished, ended: set[str]) -> None:
    """Take every message the workers have sent so far (a claim's messages may still arrive after its result: those
    of an ``ended`` claim only count its steps)."""
    changed = False
    while True:
        try:
            kind, claim_id, text = events.get_nowait()
        except queue.Empty:
            break
        if kind == "step done":
            step_finished()
        elif claim_id not in ended:
            if kind == "step":
                where[claim_id] = text
            messages[claim_id] = text
            changed = True
    if changed:
        running(dict(messages))


def _stop(executor: concurrent.futures.ProcessPoolExecutor) -> None:
    """End the workers now (a running claim cannot be cancelled otherwise) and the executor with them. Python 3.11-3.13
    have no public call for it (3.14's ``terminate_workers`` is one), hence the executor's own process table."""
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()
    executor.shutdown(wait=True, cancel_futures=True)
