"""Claim D1 on the quick profile: every derivation, check and counterexample passes."""

from proofs_check.registry import Context, run_claim


def test_claim_d1_quick(tmp_path):
    from proofs_check.claims import d1

    ctx = Context(profile="quick", out_dir=tmp_path)
    result = run_claim(d1.CLAIM, ctx)
    failed = [(o.name, o.measured, o.expected, o.details.get("error")) for o in result.outcomes if o.failed]
    assert not failed, failed
    kinds = {o.kind for o in result.outcomes}
    assert kinds == {"derivation", "check", "counterexample"}
    assert (tmp_path / "figures" / "d1_deviation_vs_width.png").stat().st_size > 0


def test_width_rate_is_not_applicable_in_standard_parametrization(tmp_path):
    """The width rate is stated for NTK parametrization (as R1's width limit): on param=standard it says so instead
    of running a check whose step size and data are not calibrated there (it ran and failed before)."""
    from proofs_check.claims import d1
    from proofs_check.registry import run_step
    from theory.architecture import parse_spec

    (step,) = [step for kind, step in d1.CLAIM.steps() if step.run is d1.check_deviation_rate]
    outcomes = run_step("check", step, Context(profile="quick", out_dir=tmp_path,
                                               archs=(parse_spec("relu:2:param=standard"),)))
    assert len(outcomes) == 1 and not outcomes[0].applicable
    assert "NTK parametrization" in outcomes[0].reason


def test_every_seed_of_the_deviation_rate_draws_its_own_data(monkeypatch, tmp_path):
    """The interval over seeds covers the data draw as well as the network's: one draw shared by every seed made it
    conditional on that draw (a statistics review)."""
    import numpy as np
    import pytest

    import numerics.networks
    from proofs_check.claims import d1

    drawn = []
    real = d1._data

    def spy(*args, **kwargs):
        drawn.append(real(*args, **kwargs))
        return drawn[-1]

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(d1, "_data", spy)
    monkeypatch.setattr(numerics.networks, "make_network", stop)  # the data are drawn before the first network
    with pytest.raises(Stop):
        d1.check_deviation_rate(Context(profile="quick", out_dir=tmp_path))
    assert len(drawn) == 4  # the quick profile's seeds
    inputs = [x for x, _ in drawn]
    assert all(not np.allclose(a, b) for i, a in enumerate(inputs) for b in inputs[i + 1:])
