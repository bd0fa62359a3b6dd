"""Mutation review 28's survivors in D1 and R1: each mutation now makes the claim's own step FAIL (the real code
passes the same step: tests/test_claim_d1.py, tests/test_claim_r1_t1.py). Each runs one step, not the claim."""

from __future__ import annotations

import dataclasses

import pytest

from claim_mutation import failed_outcomes, mutated
from proofs_check.claims import d1, r1
from theory import activations, dynamics, reconstruction


@pytest.fixture
def fresh_dynamics():
    """gd_certificates caches what unrolled_gd returned: cleared so the mutated loop is read, and no later test
    reuses it."""
    dynamics.gd_certificates.cache_clear()
    yield
    dynamics.gd_certificates.cache_clear()


NOT_GD = ("        r = r0 - J * delta\n        m = beta", "        r = r0\n        m = beta")
"""The residual is never re-evaluated: not gradient descent, yet primal and dual are fed the same residual."""
_LOOP = ("m = beta * m - {}c * J.T * r\n        delta = delta - eta * m\n        if accumulator == \"step\":\n"
         "            mu = beta * mu + {}c_dual * r")
EMA = (_LOOP.format("", ""), _LOOP.format("(1 - beta) * ", "(1 - beta) * "))
"""An exponential moving average (1 - beta) on both sides: not optax's sgd, yet the two sides still agree."""


@pytest.mark.parametrize("mutation, failing", [
    ("residual never updated", ("GD, sum", "GD, mean", "heavy-ball, sum", "heavy-ball, mean")),
    ("EMA momentum", ("heavy-ball, sum", "heavy-ball, mean")),  # beta = 0: GD is unchanged
])
def test_unrolled_loop_that_is_not_optax_sgd_fails_d1(monkeypatch, tmp_path, fresh_dynamics, mutation, failing):
    """Review 28, mutations 1 and 2: the certificates theta_T - theta_0 = J^T alpha_T and K alpha_T = r_0 - r_T hold
    for any loop that feeds primal and dual the same residual, and both loops certified; the unrolled iterates at
    exact rationals against numerics.training.train do not match."""
    edit = NOT_GD if mutation == "residual never updated" else EMA
    monkeypatch.setattr(dynamics, "unrolled_gd", mutated(dynamics, "unrolled_gd", *edit))
    failed = failed_outcomes(d1.CLAIM, "GD and heavy-ball, unrolled", tmp_path, all_applicable=True)
    assert len(failed) == len(failing), failed
    for label, line in zip(failing, failed):
        assert line.startswith(label) and "= numerics.training.train" in line, failed


def test_relu_registered_as_smooth_fails_r1_finite_attack(tmp_path):
    """Review 28, mutation 13: relu registered with piecewise_linear=False made the finite-width attack n/a on its
    only default architecture (relu:2), and R1 passed having run no attack; an n/a on the default now fails (an
    --arch the step is not calibrated for stays n/a)."""
    smooth_relu = dataclasses.replace(activations.get("relu"), piecewise_linear=False)
    with activations.registered(smooth_relu):
        failed = failed_outcomes(r1.CLAIM, "finite-width attack", tmp_path / "default")
        given = failed_outcomes(r1.CLAIM, "finite-width attack", tmp_path / "arch", ["relu:2"])
    assert len(failed) == 1 and failed[0].startswith("relu:2: finite-width attack: not applicable: "), failed
    assert "applicable on the step's default architecture (relu:2)" in failed[0], failed
    assert given == [], given  # the user's --arch: n/a, not a failure


def test_schur_side_built_from_the_loss_fails_r1(monkeypatch, tmp_path):
    """Review 28, mutation 3: schur = loss.subs(lambda*) made "L(lambda*) = Schur complement form" the identity 0 = 0,
    which R1 certified; an identity that is 0 before simplification now fails."""
    mutation = mutated(reconstruction, "profile_certificates",
                       "schur = scalar_entry(alpha.T * (k_tt - k_tr * inverse * k_rt) * alpha)",
                       "schur = loss.subs(at_optimum, simultaneous=True)")
    monkeypatch.setattr(reconstruction, "profile_certificates", mutation)
    failed = failed_outcomes(r1.CLAIM, "profiling", tmp_path, all_applicable=True)
    assert len(failed) == 1 and failed[0].startswith("L(lambda*) = Schur complement form"), failed
    assert "a tautology" in failed[0], failed
