"""Deliberate bugs, applied in-process, each make the claim that owns the code FAIL.

A check that cannot fail proves nothing, and the report (not only a unit test) is what users read: each
mutation below is a one-line bug of the kind found by reading the code, and the test runs the owning claim
step(s) with :func:`proofs_check.registry.run_step` and asserts that an applicable outcome failed. The same
steps pass unmutated in tests/test_claim_*.py. K1's mutations are in test_mutations_k1.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from numerics import attack, metrics, omission, training
from proofs_check.claims import d1, r1, t1
from theory import reconstruction
from claim_mutation import clear_attack_caches, failed_outcomes


@pytest.fixture(autouse=True)
def fresh_caches(request):
    """Compiled functions look global names up when they are traced: clear the compilation caches around a
    mutation so that the mutated code is traced, and that no later test reuses a mutated trace. A mutation of code
    that no compiled function calls (NEVER_TRACED) keeps them: recompiling the untouched rest cost each such test
    several seconds. T1's kernel attacks (cached by settings) are kept unless the mutation could have changed them."""
    mutate = request.node.callspec.params.get("mutate") if hasattr(request.node, "callspec") else None
    traced = mutate not in NEVER_TRACED
    if traced:
        clear_attack_caches()
    yield
    if traced:
        clear_attack_caches()
    if mutate in CHANGES_KERNEL_ATTACKS:
        t1._ATTACKS.clear()


def _failed(claim, name: str, tmp_path) -> list[str]:
    """Run one step on the quick profile; one line per failed (applicable) outcome."""
    return failed_outcomes(claim, name, tmp_path)


# ------------------------------------------------------------------------------------------------
# The bugs
# ------------------------------------------------------------------------------------------------

def _alpha_without_momentum(monkeypatch):
    """The dual accumulator alpha takes plain steps eta c r_s while theta moves with heavy-ball momentum."""
    def optimizer(learning_rate, momentum, nesterov):
        real = optax.sgd(learning_rate, momentum=momentum, nesterov=nesterov)

        def update(updates, state, params=None):
            new_updates, new_state = real.update(updates, state, params)
            if params is None:  # train() updates alpha without params, theta with them
                new_updates = jax.tree.map(lambda g: -learning_rate * g, updates)
            return new_updates, new_state

        return optax.GradientTransformation(real.init, update)

    monkeypatch.setattr(training, "_optimizer", optimizer)



def _half_step(monkeypatch):
    """The optimizer takes half the step it is given, for theta and alpha alike (every identity of alpha still
    holds: only the residual recursion with the step asked for can tell)."""
    monkeypatch.setattr(training, "_optimizer",
                        lambda learning_rate, momentum, nesterov: optax.sgd(0.5 * learning_rate, momentum=momentum,
                                                                            nesterov=nesterov))


def _network_trained_as_its_linearization(monkeypatch):
    """train() ignores linearized=False: the 'network' of D1 (ii) is its own linearization, so its deviation is
    round-off (3e-12 to 7e-12), which a slope alone need not reject."""
    real = training.train
    monkeypatch.setattr(training, "train", lambda *args, **kwargs: real(*args, **{**kwargs, "linearized": True}))

def _schur_without_cross_term(monkeypatch):
    """profiled_loss returns alpha^T K_TT alpha, dropping - alpha^T K_TR K_RR^-1 K_RT alpha."""
    real = attack.profiled_loss

    def profiled_loss(arch, x_train, alpha, x_recon, *, ridge=0.0, width=None):
        _, lam = real(arch, x_train, alpha, x_recon, ridge=ridge, width=width)
        k_tt = attack.analytic_ntk(arch, x_train, width=width)
        return jnp.sum(alpha * (k_tt @ alpha)), lam

    monkeypatch.setattr(attack, "profiled_loss", profiled_loss)


def _kernel_form_without_cross_term(monkeypatch):
    """The symbolic kernel form alpha^T K_TT alpha + lambda^T K_RR lambda, without -2 alpha^T K_TR lambda."""
    def kernel_form_loss(alpha, lam, k_tt, k_tr, k_rr):
        return (alpha.T * k_tt * alpha + lam.T * k_rr * lam)[0, 0]

    monkeypatch.setattr(reconstruction, "kernel_form_loss", kernel_form_loss)


def _identity_matching(monkeypatch):
    """Hungarian matching replaced by pairing reconstruction i with original i."""
    def identity(cost, maximize=False):
        count = min(np.shape(cost))
        return np.arange(count), np.arange(count)

    monkeypatch.setattr(metrics, "linear_sum_assignment", identity)


def _inverted_omission_cost(monkeypatch):
    """numerics.omission.omission_costs returns alpha_i^2 * (K^-1)_ii instead of alpha_i^2 / (K^-1)_ii."""
    monkeypatch.setattr(omission, "omission_costs", lambda kernel, alpha: alpha**2 * np.diag(np.linalg.inv(kernel)))


def _jvp_gradient_wrong_factor(monkeypatch):
    """The attack's JVP gradient with respect to X_R is off by a factor 2 (e.g. -gx for -2 gx)."""
    real = attack.loss_and_grad

    def loss_and_grad(*args, method="jvp", **kwargs):
        loss, (grad_x, grad_lam) = real(*args, method=method, **kwargs)
        return loss, ((0.5 * grad_x if method == "jvp" else grad_x), grad_lam)

    monkeypatch.setattr(attack, "loss_and_grad", loss_and_grad)


def _reversed_annealing(monkeypatch):
    """The softplus sharpness annealed from 200 down to 10 instead of 10 up to 200."""
    real = attack.beta_at

    def beta_at(step, steps, schedule, anneal):
        return real(step, steps, None if schedule is None else tuple(schedule)[::-1], anneal)

    monkeypatch.setattr(attack, "beta_at", beta_at)
    # 2 networks instead of the quick profile's 4: the step then passes with 1 of 2 recovered, a lower bar for the
    # bug to slip under (with the annealing reversed none of 20 networks met the loss bar), at half the test's cost
    monkeypatch.setattr(r1, "ATTACK_NETWORKS", (2, r1.ATTACK_NETWORKS[1]))


MUTATIONS = [
    # (bug, claim, owning steps: every one must fail)
    (_inverted_omission_cost, t1.CLAIM, ("(iii) M < N",)),
    (_alpha_without_momentum, d1.CLAIM, ("(i) linearized endpoint",)),
    (_half_step, d1.CLAIM, ("(i) linearized endpoint",)),
    (_network_trained_as_its_linearization, d1.CLAIM, ("(ii) deviation rate",)),
    (_alpha_without_momentum, r1.CLAIM, ("zero at the training set",)),
    (_schur_without_cross_term, r1.CLAIM, ("profiled loss",)),
    (_kernel_form_without_cross_term, r1.CLAIM, ("kernel form", "profiling")),
    (_identity_matching, r1.CLAIM, ("scoring",)),
    (_jvp_gradient_wrong_factor, r1.CLAIM, ("attack gradient",)),
    (_reversed_annealing, r1.CLAIM, ("finite-width attack",)),
]

NEVER_TRACED = {_inverted_omission_cost, _kernel_form_without_cross_term, _identity_matching,
                _network_trained_as_its_linearization}
"""Mutations of numpy, scipy or sympy code (a tracer would not pass through them) or of a Python wrapper around a
jitted function: no compiled function holds them, so the compilation caches stay."""

CHANGES_KERNEL_ATTACKS = {_schur_without_cross_term}
"""Mutations after which T1's cached kernel-attack results (numerics.attack.profiled_loss) must be dropped."""


@pytest.mark.parametrize("mutate,claim,steps", MUTATIONS,
                         ids=[f"{m.__name__.strip('_')}-{c.id}" for m, c, _ in MUTATIONS])
def test_mutation_fails_its_claim(mutate, claim, steps, monkeypatch, tmp_path):
    mutate(monkeypatch)
    for name in steps:
        assert _failed(claim, name, tmp_path), f"{claim.id} {name!r} passed with the bug {mutate.__name__}"


def test_mutations_are_undone(tmp_path):
    """After the mutations (and the cache clearing), the cheapest owning steps pass again."""
    for claim, name in ((r1.CLAIM, "scoring"), (r1.CLAIM, "kernel form")):
        assert not _failed(claim, name, tmp_path), f"{claim.id} {name!r} fails unmutated"
