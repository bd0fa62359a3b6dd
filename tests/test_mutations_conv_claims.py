"""Deliberate bugs in the code that D1 and R1 cover make those claims FAIL on a convolutional chain.

Each test plants one bug and runs one step of the claim with `--arch` a convolutional chain (claim_mutation.
failed_outcomes, every outcome applicable), then asserts that the step's own measurement fails, not an error.
The chains are single-convolution ones, and two sizes are narrowed where the unmutated step still passes
(monkeypatched constants, the claims' code unchanged), to keep the tests short."""

from __future__ import annotations

import jax
import pytest

import numerics.networks
import numerics.training
from claim_mutation import failed_outcomes
from numerics import kernels
from proofs_check.claims import d1, r1
from theory import layers

CONV_GAP = "conv3x3 > relu > gap > dense"
CONV_FLATTEN = "conv3x3 > relu > flatten > dense"
SMALL_GRID = {"quick": (16, 32, 64, 128), "full": (16, 32, 64, 128)}
"""R1's width limit on CONV_GAP on a cheaper grid (the claim's code unchanged): unmutated it passes there (measured
-0.39 [-0.55, -0.24] with probes drawn per seed and the expanded interval; before them -0.50 [-0.65, -0.36]).
CONV_FLATTEN keeps the claim's grid, where it passes unmutated (-0.55 [-0.68, -0.41]; before, -0.53 [-0.63, -0.42])."""


@pytest.fixture(autouse=True)
def fresh_caches():
    """The mutated code is traced afresh, and no later test reuses a mutated trace or compiled kernel."""
    jax.clear_caches()
    kernels._clear_caches()
    yield
    jax.clear_caches()
    kernels._clear_caches()


def _measured_failures(claim, step: str, tmp_path, spec: str) -> list[str]:
    failed = failed_outcomes(claim, step, tmp_path, (spec,), all_applicable=True)
    assert all("Error" not in line for line in failed), failed  # the check's measurement fails, nothing raised
    return failed


def test_nested_draw_of_dense_layers_only_fails_the_r1_rate(monkeypatch, tmp_path):
    """The nested draw before convolutions were covered (R1's own, which found the dense (W, b) pairs only and cut
    their hidden sides): on conv > gap > dense the readout is the only dense layer, so nothing is cut, every
    "width m" is the widest network, and L_m does not approach L_inf."""
    real = numerics.networks.sub_network

    def dense_only(arch, params, width):
        return params if arch.is_convolutional else real(arch, params, width)

    monkeypatch.setattr(numerics.networks, "sub_network", dense_only)
    monkeypatch.setattr(r1, "CONV_RATE_WIDTHS", SMALL_GRID)
    failed = _measured_failures(r1.CLAIM, "width limit", tmp_path, CONV_GAP)
    assert len(failed) == 1 and "slope of RMS (L_m - L_inf)" in failed[0], failed


def test_conv_kernel_step_with_replicate_padding_fails_the_r1_rate(monkeypatch, tmp_path):
    """The analytic conv step (theory.layers, compiled by numerics.kernels) reads the nearest border pixel where
    SAME padding reads zeros: the finite networks (stax's zero padding) converge to another limit than L_inf."""
    def clamped(position, offset, shape):
        return tuple(min(max(p + o, 0), n - 1) for p, o, n in zip(position, offset, shape))

    monkeypatch.setattr(layers, "shifted_position", clamped)
    failed = _measured_failures(r1.CLAIM, "width limit", tmp_path, CONV_FLATTEN)
    assert len(failed) == 1 and "slope of RMS (L_m - L_inf)" in failed[0], failed


def test_corrupted_empirical_ntk_of_a_conv_chain_fails_the_r1_identity(monkeypatch, tmp_path):
    """The empirical NTK of non-MLP chains (neural-tangents' Jacobian contraction) off by 1e-6 relative (unmutated
    the identity holds to 3e-16 on this chain)."""
    real = kernels._stax_empirical_ntk
    monkeypatch.setattr(kernels, "_stax_empirical_ntk", lambda *args: real(*args) * (1 + 1e-6))
    failed = _measured_failures(r1.CLAIM, "identity", tmp_path, CONV_GAP)
    assert len(failed) == 1 and "|L_param - L_kernel|" in failed[0], failed


def test_linearizing_around_the_current_parameters_fails_d1(monkeypatch, tmp_path):
    """`linearized=True` linearizes around the current parameters instead of theta_0, i.e. trains the network
    itself: Delta theta leaves the row space of J_0 and the endpoint is not J_0^T K^-1 r_0."""
    monkeypatch.setattr(numerics.training, "_model", lambda apply_fn, params_0, x, linearized: (
        lambda params: apply_fn(params, x)))
    # a cheaper network, the claim's code unchanged: unmutated, (i) passes at 16 channels (errors <= 1.5e-13)
    monkeypatch.setattr(d1, "CONV_LINEARIZED_WIDTH", {"quick": 16, "full": 16})
    failed = _measured_failures(d1.CLAIM, "(i) linearized endpoint", tmp_path, CONV_GAP)
    assert any("||Delta theta - J_0^T K^-1 r_0||" in line for line in failed), failed
