"""R1's "attack surrogate" derivation: the finite-width attack's smooth stand-in must tend to phi. A flipped sign
in the relu family's stand-in (a_- softplus(-beta x) added, not subtracted) left every default claim run green,
since relu has a_- = 0 (mutation review); the derivation covers every registered stand-in, so R1 now fails."""

from __future__ import annotations

from claim_mutation import failed_outcomes
from proofs_check.claims import r1
from theory import activations


def _flipped_sign(neg, pos):
    """The reviewer's mutation: + a_- softplus(-beta x) / beta; its limit is a_+ relu(x) + a_- relu(-x), not phi."""
    exact = activations.exact
    return (exact(pos) * activations.softplus(activations.beta * activations.x)
            + exact(neg) * activations.softplus(-activations.beta * activations.x)) / activations.beta


def test_r1_attack_surrogate_fails_on_a_stand_in_that_does_not_tend_to_phi(monkeypatch, tmp_path):
    assert not failed_outcomes(r1.CLAIM, "attack surrogate", tmp_path / "real", ["leaky_relu:2:alpha=0.3"],
                               all_applicable=True)
    monkeypatch.setattr(activations, "_abrelu_surrogate", _flipped_sign)
    failed = failed_outcomes(r1.CLAIM, "attack surrogate", tmp_path / "mutated")
    # relu (a_- = 0) is untouched; leaky_relu and abrelu fail both the exact limit and its evaluation
    assert len(failed) == 4 and not any(line.startswith("relu:") for line in failed), failed
