"""Claims for tests/test_parallel_run.py: cheap, registered by this module, so that the worker processes of
``run --jobs`` find them by importing it (as they find a claim registered outside proofs_check.claims)."""

from __future__ import annotations

import os
import signal
import time

import numpy as np

from proofs_check.parallel import project_modules
from proofs_check.registry import Claim, Outcome, Step, register


def _exact(ctx):
    return Outcome(name="exact zero", passed=True, measured=0, expected="== 0", reason="a stand-in")


def _with_details(ctx):
    ctx.advance("PX1 halfway")
    time.sleep(0.5)  # the command's process polls its workers' messages every 0.2 s: this one is seen
    return Outcome(name="seed and archs", passed=True, measured=ctx.seed, expected="the run's", reason="a stand-in",
                   details={"pid": os.getpid(), "archs": [arch.spec for arch in ctx.archs], "array": np.arange(3.0),
                            "sigint_ignored": signal.getsignal(signal.SIGINT) is signal.SIG_IGN,
                            "sigint_blocked": signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []),
                            "modules": project_modules(), "sigint_in_a_loop": _handler_in_an_interruptible_loop()})


def _handler_in_an_interruptible_loop() -> bool:
    """Whether an attack's or a training's Ctrl-C loop (numerics.checkpoint.interruptible) still ignores SIGINT."""
    from numerics.checkpoint import interruptible

    with interruptible():
        return signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def _raises(ctx):
    raise RuntimeError("kaput in a worker")


def _figure(ctx):
    path = ctx.figure_path("px2.txt")
    path.write_text("a figure's stand-in")
    return Outcome(name="figure written", passed=True, measured=1, expected="1", reason="a stand-in",
                   figures=[str(path.relative_to(ctx.out_dir))], details={"pid": os.getpid()})


def _blocks(ctx):
    time.sleep(120)  # the test stops it: a claim that cannot finish before the Ctrl-C
    return _exact(ctx)


def _dies(ctx):
    marker, waited = ctx.out_dir / "figures" / "px2.txt", 0.0
    while not marker.exists() and waited < 60:  # PX2's first step wrote it; its second and its result follow
        time.sleep(0.1)
        waited += 0.1
    time.sleep(2.0)
    os._exit(3)  # as the system's OOM killer would end it: no exception, no result


def _claim(claim_id: str, seconds: float, *steps, uses_archs: bool = False) -> Claim:
    return register(Claim(id=claim_id, title=f"parallel test claim {claim_id}", statement="a stand-in",
                          assumptions=[], checks=[Step(name=f.__name__.strip("_"), description="", run=f)
                                                  for f in steps], uses_archs=uses_archs, quick_seconds=seconds))


FIRST = _claim("PX1", 1, _exact, _with_details, _raises, uses_archs=True)
SECOND = _claim("PX2", 5, _figure, _exact)
BLOCKING = _claim("PX3", 9, _blocks)
DYING = _claim("PX5", 8, _dies)
