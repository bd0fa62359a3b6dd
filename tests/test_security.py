"""Untrusted text is never evaluated: a malicious activation formula through --arch, through a crafted model
file and through the Python API creates no file and gives one clear error.

The payload would run ``touch pwned`` if anything evaluated it; the first test shows that sympy.sympify (what
the project used before) does run it, so these tests can fail.
"""

import subprocess
import sys

import jax
import numpy as np
import pytest

from numerics.networks import activation_fn, make_network
from numerics.training import load_model, save_model
from proofs_check.cli import main
from theory import layers as L
from theory.architecture import Architecture, SpecError, parse_spec
from theory.dual import activation_expression, dual_for

PAYLOAD = "__import__('os').system('touch pwned')"
SPEC = f"expr:2:phi={PAYLOAD}"


def _untouched(folder) -> bool:
    return not (folder / "pwned").exists()


def test_sympify_would_have_run_the_payload(tmp_path):
    """The threat is real: sympy.sympify evaluates the text (this is why the project parses with a whitelist)."""
    code = f"import sympy; sympy.sympify({PAYLOAD!r})"
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, timeout=120)
    assert (tmp_path / "pwned").exists()


def test_python_api_refuses_the_payload(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError, match="name '__import__' is not allowed"):
        parse_spec(SPEC)
    with pytest.raises(SpecError, match="name '__import__' is not allowed"):
        activation_expression(PAYLOAD)
    # an Architecture built directly (no spec parsing) is refused as it is built: its variance path parses the formula
    with pytest.raises(SpecError, match="name '__import__' is not allowed"):
        Architecture("expr", 2, activation_params=(("phi", PAYLOAD),))
    with pytest.raises(SpecError, match="name '__import__' is not allowed"):
        Architecture.of(parse_spec("expr:2:phi=tanh(x)").layers[:1] + (L.Activation("expr", (("phi", PAYLOAD),)),
                                                                       L.Dense()))
    # and wherever its formula is used, should one get past construction (the construction-time rule switched off)
    import theory.architecture

    monkeypatch.setattr(theory.architecture, "_check_variance_path", lambda chain: None)
    arch = Architecture("expr", 2, activation_params=(("phi", PAYLOAD),))
    for use in (lambda: dual_for(arch), lambda: activation_fn(arch), lambda: make_network(arch, 8)):
        with pytest.raises(SpecError, match="name '__import__' is not allowed"):
            use()
    assert _untouched(tmp_path)


def _crafted_model(folder):
    arch = parse_spec("relu:2")
    params_0 = make_network(arch, 8, 1).init(jax.random.PRNGKey(0), 64)
    path = save_model(folder / "honest.npz", params_0, jax.tree.map(lambda a: 2 * a, params_0), arch, 8, 1)
    with np.load(path) as data:
        contents = dict(data)
    np.savez(folder / "crafted.npz", **{**contents, "spec": np.array(SPEC)})
    return folder / "crafted.npz"


def test_crafted_model_file_through_the_api(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    crafted = _crafted_model(tmp_path)
    with pytest.raises(ValueError, match="bad architecture spec: name '__import__' is not allowed") as error:
        load_model(crafted)
    assert "\n" not in str(error.value)
    assert _untouched(tmp_path)


def test_crafted_model_file_through_the_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    crafted = _crafted_model(tmp_path)
    assert main(["attack", "--model", str(crafted), "--n", "4", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "name '__import__' is not allowed" in err and "Traceback" not in err
    assert _untouched(tmp_path) and not (tmp_path / "run").exists()


def test_payload_through_arch_in_a_separate_process(tmp_path):
    """The installed command, as a user runs it: exit 2, one line, no file."""
    for argv in (["run", "K1", "--arch", SPEC], ["attack", "--arch", SPEC, "--out", "run"]):
        done = subprocess.run([sys.executable, "-m", "proofs_check.cli", *argv], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert "name '__import__' is not allowed" in done.stderr and done.stdout == ""
        assert _untouched(tmp_path) and not (tmp_path / "run").exists()


class _Payload:
    """Unpickling this calls os.system('touch pwned')."""

    def __reduce__(self):
        import os

        return os.system, ("touch pwned",)


def test_crafted_cifar_batch_runs_nothing(tmp_path, monkeypatch):
    import pickle

    from numerics.data import load_cifar10

    monkeypatch.chdir(tmp_path)
    batch = {b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": [0, 1], b"evil": _Payload()}
    for name in ("test_batch", *(f"data_batch_{k}" for k in range(1, 6))):
        (tmp_path / name).write_bytes(pickle.dumps(batch))
    with pytest.raises(ValueError, match="refused to load posix.system") as error:
        load_cifar10(tmp_path, split="test")
    assert "\n" not in str(error.value) and _untouched(tmp_path)
    # the same file without the payload loads
    clean = {b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": [0, 1]}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(clean, protocol=2))
    assert load_cifar10(tmp_path, split="test").n == 2
