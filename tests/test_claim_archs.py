"""`--arch` reaches every check of a claim that declares uses_archs (D1, R1).

Running every check with a user architecture would take minutes, so the test hands each check a probe in
place of the architectures: a non-empty tuple whose iteration raises. A check that consults ``ctx.archs``
stops at once with that error; a check that ignores them runs to completion, and must be one of the checks
that do not depend on an architecture by construction.
"""

import pytest

from proofs_check.claims import d1, r1
from proofs_check.registry import Context, run_step

ARCHITECTURE_FREE = {"D1": set(), "R1": {"scoring"}}
"""Checks that need no architecture: R1's scoring tests numerics.metrics.match on fixed point sets."""


class ArchitecturesConsulted(Exception):
    pass


class Probe(tuple):
    """Stands in for ``ctx.archs``: truthy, and iterating it raises ArchitecturesConsulted."""

    def __new__(cls):
        return super().__new__(cls, (None,))

    def __iter__(self):
        raise ArchitecturesConsulted


@pytest.mark.parametrize("claim", [d1.CLAIM, r1.CLAIM], ids=lambda c: c.id)
def test_every_check_consults_the_architectures(claim, tmp_path):
    assert claim.uses_archs
    ignored = set()
    for step in claim.checks:
        ctx = Context(profile="quick", out_dir=tmp_path, archs=Probe())
        outcomes = run_step("check", step, ctx)
        errors = [o.details.get("error", "") for o in outcomes]
        if not any(e.startswith("ArchitecturesConsulted") for e in errors):
            ignored.add(step.name)
    assert ignored == ARCHITECTURE_FREE[claim.id], f"{claim.id}: checks that ignore --arch: {ignored}"
