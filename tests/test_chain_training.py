"""Standard (non-linearized) training of a convolutional chain: the step-halving guard of audit.train_on."""

import jax
import numpy as np
import pytest

import numerics  # noqa: F401  (float64 on)
from numerics import audit
from numerics.networks import make_network
from numerics.training import train
from theory import parse_spec

CONV = "conv3x3:c=8 > relu > conv3x3:c=8 > relu > gap > dense"
N, STEPS = 10, 150


@pytest.fixture(scope="module")
def digits():
    return audit.load_dataset("digits-odd-even", N, seed=0)


def test_standard_training_of_a_conv_chain_lowers_the_loss(digits):
    result = audit.train_on(parse_spec(CONV), 16, digits, linearized=False, max_steps=STEPS, progress=False)
    start = result.losses[0]
    assert result.stop_reason != "diverged"
    assert np.nanmax(result.losses) <= start * (1 + 1e-9)  # the guard's rule: never above L_0
    # a network whose ReLUs died outputs 0 and stays at N / 2, within 1% of L_0 here; measured: 1e-3 L_0 after 150 steps
    assert result.final_loss < 0.1 * start
    outputs = make_network(result.arch, 16, 1).apply(result.params_f, digits.x)
    assert float(np.abs(np.asarray(outputs)).max()) > 0.5  # the labels are +-1: not a dead network


def test_without_the_halving_the_conv_chain_diverges_at_one_over_lambda_max(digits, monkeypatch):
    """The guard is what makes the run above fit: at 1 / lambda_max(K_0) this chain's loss shoots up."""
    monkeypatch.setattr(audit, "MAX_HALVINGS", 0)
    with pytest.warns(RuntimeWarning, match="diverged"):
        result = audit.train_on(parse_spec(CONV), 16, digits, linearized=False, max_steps=STEPS, progress=False)
    assert result.stop_reason == "diverged"
    assert result.steps < STEPS


def test_a_loss_above_the_ceiling_stops_training_untaken(digits, tmp_path):
    network = make_network(parse_spec("relu:1"), 16, 1)
    params_0 = network.init(jax.random.PRNGKey(0), digits.x.shape[1])
    with pytest.warns(RuntimeWarning, match="above the ceiling"):
        result = train(network, params_0, digits.x, digits.y, learning_rate=0.1, max_steps=10, progress=False,
                       loss_ceiling=1e-3, checkpoint=tmp_path / "train.npz")
    assert (result.stop_reason, result.steps) == ("diverged", 0)
    assert not (tmp_path / "train.npz").exists()  # an abandoned run leaves nothing to resume
    with pytest.raises(ValueError, match="loss_ceiling"):
        train(network, params_0, digits.x, digits.y, learning_rate=0.1, max_steps=10, progress=False, loss_ceiling=0)
