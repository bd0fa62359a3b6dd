"""Shared by the mutation tests: run one step of a claim and describe its failed outcomes, and clear the
compilation caches that a mutation must not leak into later tests."""

from __future__ import annotations

import inspect
import textwrap

import jax

from numerics import attack
from proofs_check.registry import Context, run_step
from theory.architecture import parse_spec


def failed_outcomes(claim, step_name: str, tmp_path, archs=(), *, profile: str = "quick",
                    all_applicable: bool = False) -> list[str]:
    """``claim``'s step ``step_name`` run on ``profile`` (``archs``: --arch specs); one line per failed outcome,
    "name: measured vs expected error". ``all_applicable``: assert that every outcome applied (so a mutation
    cannot hide behind n/a)."""
    for kind, step in claim.steps():
        if step.name == step_name:
            ctx = Context(profile=profile, out_dir=tmp_path, archs=tuple(parse_spec(a) for a in archs))
            outcomes = run_step(kind, step, ctx)
            if all_applicable:
                assert outcomes and all(o.applicable for o in outcomes), [o.name for o in outcomes]
            return [f"{o.name}: {o.measured} vs {o.expected} {o.details.get('error', '')}"
                    for o in outcomes if o.failed]
    raise KeyError(f"{claim.id} has no step {step_name!r}")


def mutated(module, name: str, old: str, new: str):
    """``module.name`` recompiled from its source with ``old`` replaced by ``new`` (once, exactly), in a copy of the
    module's namespace: a reviewer's one-token edits, made the same way."""
    source = textwrap.dedent(inspect.getsource(getattr(module, name)))
    assert source.count(old) == 1, f"{name} no longer contains {old!r}"
    namespace = dict(vars(module))
    exec(compile(source.replace(old, new), inspect.getsourcefile(module), "exec"), namespace)
    return namespace[name]


def clear_attack_caches() -> None:
    """Compiled functions look global names up when traced: clear them so the mutated code is traced and no later
    test reuses a mutated trace."""
    jax.clear_caches()
    attack._chunk_runner.cache_clear()
