"""Deliberate bugs in the kernels (helper "arch"), each making K1 FAIL (see tests/test_mutations.py)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from numerics import kernels
from proofs_check.claims import k1
from proofs_check.registry import Context, run_step
from theory.architecture import parse_spec

EDGE_ARCHS = (parse_spec("relu:2"), parse_spec("abrelu:3:a=-0.5:b=1:sb=0.1"))


@pytest.fixture(autouse=True)
def fresh_caches():
    def clear():
        jax.clear_caches()
        kernels._clear_caches()

    clear()
    yield
    clear()


def _edge_outcomes(tmp_path):
    step = next(step for step in k1.CLAIM.checks if step.name.startswith("(b)"))
    outcomes = run_step("check", step, Context(profile="quick", out_dir=tmp_path, archs=EDGE_ARCHS))
    return {o.name: o for o in outcomes}


def _unguarded_gap_sqrt(a, b, c):
    """Today's bug: sqrt of the rounded gap ab - c^2, which is a few eps instead of 0 at coincident inputs."""
    return jnp.sqrt(jnp.maximum(a * b - c * c, 0.0))


def test_edges_pass_unmutated(tmp_path):
    outcomes = _edge_outcomes(tmp_path)
    assert all(o.passed for o in outcomes.values()), {n: o.measured for n, o in outcomes.items()}


def test_unguarded_angle_fails_k1(tmp_path, monkeypatch):
    monkeypatch.setattr(kernels, "edge_gap_sqrt", _unguarded_gap_sqrt)
    outcomes = _edge_outcomes(tmp_path)
    exact = next(o for name, o in outcomes.items() if "exact (40-digit) recursion" in name)
    assert not exact.passed and exact.measured > 1e-10, exact.measured


def test_gradients_stay_finite_at_the_edges():
    """d Theta(x, y) / dy at y = x and y = -2x: finite (the cusp of the step kernel takes a subgradient)."""
    x = np.random.default_rng(0).normal(size=(3, 7))
    for arch in EDGE_ARCHS:
        fn = kernels.analytic_kernel_fn(arch)
        for y in (x[::-1], -2.0 * x[::-1]):
            grad = jax.grad(lambda y_: jnp.sum(fn(jnp.asarray(x), y_)[1]))(jnp.asarray(y))
            assert np.all(np.isfinite(np.asarray(grad))), arch.spec


def test_coincident_entries_are_exact_in_the_jitted_kernel():
    """k(x, x) as an entry of K(X, X[::-1]) at d = 784, jitted, vs the 40-digit recursion: <= 1e-13 relative
    (an unguarded angle gives ~1e-8 here)."""
    x = np.random.default_rng(1).normal(size=(5, 784))
    for arch in EDGE_ARCHS:
        ntk = np.asarray(kernels.analytic_kernel_fn(arch)(jnp.asarray(x), jnp.asarray(x[::-1]))[1])
        for i in range(5):
            reference = k1.exact_edge_kernels(arch, x[i], x[i], width=1)[1]
            assert abs(ntk[i, 4 - i] - reference) <= 1e-13 * abs(reference), arch.spec
