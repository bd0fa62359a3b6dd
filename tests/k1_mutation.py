"""Shared by the K1 mutation tests: run one step of claim K1 and list the outcomes that failed."""

from proofs_check.claims import k1
from proofs_check.registry import Context, run_step
from theory.architecture import parse_spec


def failed_outcomes(step_name: str, tmp_path, archs=()) -> list[str]:
    """Names of the failed outcomes of K1's step ``step_name`` on the quick profile (``archs``: --arch specs)."""
    for kind, step in k1.CLAIM.steps():
        if step.name == step_name:
            ctx = Context(profile="quick", out_dir=tmp_path, archs=tuple(parse_spec(a) for a in archs))
            return [o.name for o in run_step(kind, step, ctx) if o.failed]
    raise KeyError(step_name)
