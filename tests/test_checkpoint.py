"""numerics.checkpoint and the loops that use it: save/load, settings, budgets, Ctrl-C, resumption.

Ctrl-C is a real SIGINT sent by the process to itself right after a chunk's checkpoint is written, so the
signal handler of :func:`numerics.checkpoint.interruptible` is what is tested.
"""

import gc
import os
import signal
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from numerics import attack, checkpoint
from numerics.checkpoint import (BudgetTooSmall, Checkpoint, CheckpointError, FileError, Interrupted,
                                 SettingsMismatch, interruptible, read_npz)
from numerics.networks import make_network
from numerics.training import train
from theory import parse_spec

D = 4


def _state():
    return {"x": jnp.arange(6.0).reshape(2, 3), "count": jnp.asarray(3, jnp.int32), "nested": (jnp.ones(2),)}


def test_save_and_load_round_trip(tmp_path):
    store = Checkpoint(tmp_path / "c.npz", kind="demo", settings={"lr": 0.1, "schedule": (10.0, 200.0)})
    store.save(_state(), step=7, budget=10, extras={"curve": np.arange(7.0)})
    assert not (tmp_path / "c.npz.tmp").exists()  # written under a temporary name, then renamed
    template = jax.tree.map(jnp.zeros_like, _state())
    saved = Checkpoint(tmp_path / "c.npz", kind="demo", settings={"lr": 0.1, "schedule": [10.0, 200.0]}).load(
        template, budget=20)
    assert saved.step == 7 and saved.budget == 10
    for mine, theirs in zip(jax.tree.leaves(saved.state), jax.tree.leaves(_state())):
        np.testing.assert_array_equal(mine, theirs)
        assert mine.dtype == theirs.dtype
    np.testing.assert_array_equal(saved.extras["curve"], np.arange(7.0))
    assert store.peek() == (7, 10, {"lr": 0.1, "schedule": [10.0, 200.0]})


def test_peek_extra_reads_one_extra_and_none_when_absent(tmp_path):
    """Checkpoint.peek_extra (attack --resume asks a training checkpoint whether it met its loss target): the saved
    extra, None for one the file lacks (checkpoints written before it existed), and another kind's file refused."""
    store = Checkpoint(tmp_path / "c.npz", kind="demo", settings={})
    store.save(_state(), step=7, budget=10, extras={"met_target": np.asarray(True), "curve": np.arange(7.0)})
    assert store.peek_extra("met_target").shape == () and bool(store.peek_extra("met_target"))
    np.testing.assert_array_equal(store.peek_extra("curve"), np.arange(7.0))
    assert store.peek_extra("absent") is None
    with pytest.raises(CheckpointError, match="is a demo checkpoint, not a train checkpoint"):
        Checkpoint(tmp_path / "c.npz", kind="train").peek_extra("met_target")


def test_load_names_the_setting_that_differs(tmp_path):
    Checkpoint(tmp_path / "c.npz", kind="demo", settings={"lr": 0.1, "n": 3}).save(_state(), step=1, budget=2)
    with pytest.raises(SettingsMismatch, match="lr=0.1, this run has lr=0.2") as error:
        Checkpoint(tmp_path / "c.npz", kind="demo", settings={"lr": 0.2, "n": 3}).load(_state())
    assert error.value.setting == "lr" and (error.value.stored, error.value.current) == (0.1, 0.2)
    with pytest.raises(SettingsMismatch, match="extra"):
        Checkpoint(tmp_path / "c.npz", kind="demo", settings={"lr": 0.1, "n": 3, "extra": 1}).load(_state())


def test_budget_may_grow_but_not_shrink_below_the_step(tmp_path):
    store = Checkpoint(tmp_path / "c.npz", kind="demo")
    store.save(_state(), step=50, budget=50)
    assert store.load(_state(), budget=80).step == 50
    assert store.load(_state(), budget=50).step == 50
    with pytest.raises(BudgetTooSmall, match="already at step 50, beyond the budget of 40"):
        store.load(_state(), budget=40)


def _saved_with(path, **replaced):
    """A demo checkpoint whose header arrays ``replaced`` are swapped for others (a damaged or forged file)."""
    Checkpoint(path, kind="demo").save(_state(), step=1, budget=1)
    with np.load(path) as data:
        contents = {name: data[name] for name in data.files}
    np.savez(path, **{**contents, **replaced})


def _saved_without(path, name):
    """A demo checkpoint that lacks the array ``name``."""
    Checkpoint(path, kind="demo").save(_state(), step=1, budget=1)
    with np.load(path) as data:
        contents = {key: data[key] for key in data.files if key != name}
    np.savez(path, **contents)


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b"not a zip"), "not an .npz archive"),
    (lambda p: np.savez(p, something=np.ones(3)), "not a demo checkpoint: it lacks"),
    (lambda p: Checkpoint(p, kind="other").save(_state(), step=1, budget=1), "is an other checkpoint, not a demo "
                                                                            "checkpoint"),
    (lambda p: np.savez(p, evil=np.array([object()], dtype=object)), "holds Python objects"),
    # a step or budget that is text, negative or an array ended in int()'s traceback, or resumed "from step -5"
    (lambda p: _saved_with(p, step=np.asarray("abc")), "its step is 'abc', not a count >= 0"),
    (lambda p: _saved_with(p, step=np.asarray(-5)), "its step is -5, not a count >= 0"),
    (lambda p: _saved_with(p, budget=np.asarray([1, 2])), r"its budget is \[1, 2\], not a count >= 0"),
    (lambda p: _saved_with(p, settings=np.asarray("[" * 5000)), "its settings are not valid JSON"),  # RecursionError
    (lambda p: _saved_without(p, "state_1"), "lacks state array 1 of its 3"),
])
def test_unusable_files_are_one_clear_error(tmp_path, make, message):
    path = tmp_path / "c.npz"
    make(path)
    with pytest.raises(CheckpointError, match=message) as error:
        Checkpoint(path, kind="demo").load(_state())
    assert "\n" not in str(error.value)


def test_messages_take_the_article_of_the_word_they_name(tmp_path):
    """"holds a 'attack' run" and "is a attack checkpoint" (a new user's trial): the article follows the word, past a
    quote; a file that is no checkpoint has no kind."""
    assert [checkpoint.with_article(word) for word in ("attack checkpoint", "'attack'", "train", "'distill'")] == [
        "an attack checkpoint", "an 'attack'", "a train", "a 'distill'"]
    Checkpoint(tmp_path / "attack.npz", kind="attack").save(_state(), step=1, budget=1)
    with pytest.raises(CheckpointError, match="is an attack checkpoint, not a train checkpoint"):
        Checkpoint(tmp_path / "attack.npz", kind="train").peek()
    assert checkpoint.checkpoint_kind(tmp_path / "attack.npz") == "attack"
    np.savez(tmp_path / "plain.npz", kind=np.array("train"))  # a "kind" alone does not make a checkpoint
    assert checkpoint.checkpoint_kind(tmp_path / "plain.npz") is None


def test_state_of_another_shape_is_refused(tmp_path):
    store = Checkpoint(tmp_path / "c.npz", kind="demo")
    store.save(_state(), step=1, budget=1)
    other = {**_state(), "x": jnp.zeros((3, 3))}
    with pytest.raises(CheckpointError, match="state array"):
        store.load(other)


def test_read_npz_checks_headers_before_reading(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, w=np.zeros((3, 2)), note=np.array("hi"))
    assert set(read_npz(path, what="file")) == {"w", "note"}
    assert set(read_npz(path, what="file", only=["w"])) == {"w"}
    with pytest.raises(FileError, match=r"w has shape \(3, 2\)"):
        read_npz(path, what="file", expected={"w": ((2, 2), ("f",))})
    with pytest.raises(FileError, match="unexpected array 'w'"):
        read_npz(path, what="file", expected={"note": ((), ("U",))}, max_other_bytes=0)
    with pytest.raises(FileError, match="no file at"):
        read_npz(tmp_path / "none.npz", what="file")


def test_first_ctrl_c_sets_the_flag_second_one_raises():
    previous = signal.getsignal(signal.SIGINT)
    with interruptible() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested
        with pytest.raises(Interrupted, match="interrupted at step 5") as error:
            stop.check(5, total=9, what="demo")
        assert isinstance(error.value, KeyboardInterrupt) and error.value.step == 5
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is previous


def press_ctrl_c_where_python_discards_it():
    """Press Ctrl-C (a real SIGINT) inside a garbage-collection callback: Python runs the handler there, and the
    KeyboardInterrupt it raises is discarded ("Exception ignored in ..."), as in JAX's _xla_gc_callback, which made
    runs go on and exit 0 after a Ctrl-C."""
    pressed = []

    def callback(phase, info):
        if phase == "start" and not pressed:
            pressed.append(True)
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(100):  # the Python-level handler runs at a bytecode boundary: here, in the callback
                pass

    gc.callbacks.append(callback)
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(callback)
    assert pressed



STUCK_LOOP = """
import sys, time
import jax, jax.numpy as jnp
jax.config.update("jax_enable_x64", True)
from numerics.checkpoint import interruptible

spin = jax.jit(lambda x: jax.lax.fori_loop(0, 10**11, lambda i, v: v * 0.5 + 1.0, x))  # minutes in one XLA call
with interruptible() as stop:
    stop.check(3, total=10, what="the test loop", path="loop_checkpoint.npz")
    print("computing", flush=True)
    spin(jnp.float64(0.0)).block_until_ready()
print("the computation returned", flush=True)
"""


def test_a_second_ctrl_c_ends_the_program_while_a_compiled_chunk_computes(tmp_path):
    """Python runs no signal handler inside a long XLA call: the second press, meant to stop at once, waited for the
    chunk (43 s per distillation step with a formula activation). The stuck-press watcher ends the program within
    a second or two of it, with one line naming what was saved, and status 130."""
    import subprocess
    import sys
    import time

    process = subprocess.Popen([sys.executable, "-c", STUCK_LOOP], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert process.stdout.readline().strip() == "computing", process.communicate()
    time.sleep(1.0)  # inside the compiled loop
    process.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert process.poll() is None  # the first press only asks the loop to stop after its chunk
    pressed = time.monotonic()
    process.send_signal(signal.SIGINT)
    try:
        out, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("the second Ctrl-C did not end the program within 30 s")
    assert time.monotonic() - pressed < 10  # grace 1 s, and the machine may be loaded
    assert process.returncode == 130 and "returned" not in out
    assert err.splitlines() == ["proofs-check: interrupted at once (a second Ctrl-C) with step 3 of 10 (the test loop) "
                                "saved; rerun with --resume to continue"]

def test_a_ctrl_c_python_discards_is_recorded_and_stops_the_next_loop():
    """Within recording_interrupts (the CLI's whole command) a Ctrl-C outside any loop raises and is counted; when
    Python discards its KeyboardInterrupt, raise_if_interrupted raises it again and the next interruptible block
    starts with its flag set (it stops after its first chunk, once saved); a further Ctrl-C raises at once."""
    previous = signal.getsignal(signal.SIGINT)
    with checkpoint.recording_interrupts() as requests:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
        assert requests.count == 1
        press_ctrl_c_where_python_discards_it()  # no exception reaches here
        assert requests.count == 2
        with pytest.raises(KeyboardInterrupt):
            checkpoint.raise_if_interrupted()
        with interruptible() as stop:
            assert stop.requested
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
        assert requests.count == 3 and signal.getsignal(signal.SIGINT) is requests
        assert requests.finish()
        os.kill(os.getpid(), signal.SIGINT)  # once the work is over a press is only counted
        assert requests.count == 4
        checkpoint.raise_if_interrupted()
    assert signal.getsignal(signal.SIGINT) is previous
    checkpoint.raise_if_interrupted()  # outside a command: nothing recorded, nothing raised
    with interruptible() as stop:
        assert not stop.requested  # a command's presses do not outlive it


def test_training_stops_after_its_first_chunk_when_ctrl_c_came_before_it(key, tmp_path):
    network, params_0, x, y = _training_problem(key)
    path = tmp_path / "train.npz"
    with checkpoint.recording_interrupts():
        press_ctrl_c_where_python_discards_it()
        with pytest.raises(Interrupted) as error:
            train(network, params_0, x, y, learning_rate=0.05, momentum=0.9, max_steps=60, chunk_size=20,
                  progress=False, checkpoint=path)
    assert error.value.step == 20 and Checkpoint(path, kind="train").peek()[0] == 20


def _ctrl_c_after_first_save(monkeypatch):
    """Make Checkpoint.save press Ctrl-C (a real SIGINT) right after its first write."""
    original = Checkpoint.save
    calls = []

    def save_then_interrupt(self, *args, **kwargs):
        path = original(self, *args, **kwargs)
        calls.append(path)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return path

    monkeypatch.setattr(checkpoint.Checkpoint, "save", save_then_interrupt)
    return calls


def _span_problem(key, width=32):
    """theta_f = theta_0 + J_0(X_T)^T alpha: Delta theta lies in the span of three training gradients."""
    arch = parse_spec("relu:2")
    network = make_network(arch, width, 1)
    k0, k1, k2 = jax.random.split(key, 3)
    params_0 = network.init(k0, D)
    x_t = jax.random.normal(k1, (3, D))
    alpha = jax.random.uniform(k2, (3, 1), minval=0.5, maxval=1.5)
    delta = attack.jacobian_transpose_lambda(arch, params_0, x_t, alpha)
    return arch, params_0, jax.tree_util.tree_map(lambda a, b: a + b, params_0, delta)


def test_attack_interrupted_by_ctrl_c_resumes_to_the_same_result(key, tmp_path, monkeypatch):
    arch, params_0, params_f = _span_problem(key)
    options = dict(in_dim=D, key=key, steps=60, lr=0.02, progress=False, chunk=20)
    straight = attack.parameter_space_attack(arch, params_0, params_f, 3, **options)
    path = tmp_path / "attack.npz"
    with monkeypatch.context() as patch:
        _ctrl_c_after_first_save(patch)
        with pytest.raises(Interrupted) as error:
            attack.parameter_space_attack(arch, params_0, params_f, 3, checkpoint=path, **options)
    assert error.value.step == 20 and error.value.path == path
    assert Checkpoint(path, kind="attack").peek()[0] == 20  # the checkpoint holds the completed chunk
    resumed = attack.parameter_space_attack(arch, params_0, params_f, 3, checkpoint=path, resume=True, **options)
    assert resumed.info["resumed_from"] == 20
    # deterministic CPU arithmetic: the same sequence of operations gives the same bits
    np.testing.assert_array_equal(resumed.x_recon, straight.x_recon)
    np.testing.assert_array_equal(resumed.coefficients, straight.coefficients)
    np.testing.assert_array_equal(resumed.loss_curve, straight.loss_curve)


def test_attack_extended_on_resume_keeps_the_first_runs_annealing(key, tmp_path):
    arch, params_0, params_f = _span_problem(key)
    options = dict(in_dim=D, key=key, lr=0.02, progress=False, chunk=20, beta_schedule=(10.0, 200.0))
    path = tmp_path / "attack.npz"
    short = attack.parameter_space_attack(arch, params_0, params_f, 3, steps=40, checkpoint=path, **options)
    extended = attack.parameter_space_attack(arch, params_0, params_f, 3, steps=80, checkpoint=path, resume=True,
                                             **options)
    assert extended.steps == 80 and extended.loss_curve.shape == (80,)
    np.testing.assert_array_equal(extended.loss_curve[:40], short.loss_curve)  # the first 40 steps are the short run
    assert extended.info["anneal_steps"] == 40 and extended.info["final_beta"] == pytest.approx(200.0, rel=1e-14)
    # the schedule spans the first budget and holds beta_1 afterwards
    assert float(attack.beta_at(39, 40, (10.0, 200.0), "geometric")) == pytest.approx(200.0, rel=1e-14)
    assert float(attack.beta_at(79, 40, (10.0, 200.0), "geometric")) == pytest.approx(200.0, rel=1e-14)
    assert float(attack.beta_at(79, 40, (10.0, 200.0), "linear")) == pytest.approx(200.0, rel=1e-14)
    # a fresh 80-step run anneals over all 80 steps, so it differs from the extended one
    fresh = attack.parameter_space_attack(arch, params_0, params_f, 3, steps=80, **options)
    assert fresh.info["anneal_steps"] == 80 and not np.array_equal(fresh.loss_curve[:40], short.loss_curve)
    with pytest.raises(BudgetTooSmall):
        attack.parameter_space_attack(arch, params_0, params_f, 3, steps=60, checkpoint=path, resume=True, **options)


def test_attack_on_another_model_is_not_resumed(key, tmp_path):
    arch, params_0, params_f = _span_problem(key)
    path = tmp_path / "attack.npz"
    attack.parameter_space_attack(arch, params_0, params_f, 3, in_dim=D, key=key, steps=4, progress=False,
                                  checkpoint=path)
    other_f = jax.tree_util.tree_map(lambda a: 1.01 * a, params_f)
    with pytest.raises(SettingsMismatch, match="model="):
        attack.parameter_space_attack(arch, params_0, other_f, 3, in_dim=D, key=key, steps=4, progress=False,
                                      checkpoint=path, resume=True)


def _training_problem(key):
    arch = parse_spec("relu:2")
    network = make_network(arch, 32, 1)
    k0, k1 = jax.random.split(key)
    x = jax.random.normal(k1, (5, D))
    y = jnp.sign(x[:, :1])
    return network, network.init(k0, D), x, y


def test_training_interrupted_by_ctrl_c_resumes_to_the_same_result(key, tmp_path, monkeypatch):
    network, params_0, x, y = _training_problem(key)
    options = dict(learning_rate=0.05, momentum=0.9, max_steps=60, chunk_size=20, progress=False)
    straight = train(network, params_0, x, y, **options)
    assert straight.steps == 60  # no threshold: the whole budget runs
    path = tmp_path / "train.npz"
    with monkeypatch.context() as patch:
        _ctrl_c_after_first_save(patch)
        with pytest.raises(Interrupted) as error:
            train(network, params_0, x, y, checkpoint=path, **options)
    assert error.value.step == 20 and error.value.what == "training"
    resumed = train(network, params_0, x, y, checkpoint=path, resume=True, **options)
    assert resumed.resumed_from == 20 and resumed.steps == 60
    np.testing.assert_array_equal(resumed.losses, straight.losses)
    for mine, theirs in ((resumed.params_f, straight.params_f), (resumed.alpha, straight.alpha)):
        for a, b in zip(jax.tree.leaves(mine), jax.tree.leaves(theirs)):
            np.testing.assert_array_equal(a, b)


def test_training_extended_on_resume_equals_a_longer_run(key, tmp_path):
    network, params_0, x, y = _training_problem(key)
    options = dict(learning_rate=0.05, momentum=0.9, chunk_size=20, progress=False)
    path = tmp_path / "train.npz"
    short = train(network, params_0, x, y, max_steps=40, checkpoint=path, **options)
    assert short.stop_reason == "budget"
    # what attack --resume reads to say "training from step 40" (not "met its loss target")
    assert Checkpoint(path, kind="train").peek_extra("met_target") == np.asarray(False)
    extended = train(network, params_0, x, y, max_steps=80, checkpoint=path, resume=True, **options)
    longer = train(network, params_0, x, y, max_steps=80, **options)
    assert extended.steps == 80 and extended.resumed_from == 40
    np.testing.assert_array_equal(extended.losses, longer.losses)
    with pytest.raises(SettingsMismatch, match="learning_rate"):
        train(network, params_0, x, y, max_steps=80, checkpoint=path, resume=True,
              **{**options, "learning_rate": 0.04})


def test_an_ignored_ctrl_c_stays_ignored_in_a_worker(monkeypatch):
    """A worker of proofs-check run --jobs ignores SIGINT (its command's process takes Ctrl-C) and calls
    leave_sigint_alone: an attack or a training loop inside it must not put a handler back, which would let a
    terminal's Ctrl-C reach the worker. Elsewhere (also in a process that inherited an ignored SIGINT, as a test
    run in the background does) interruptible() handles Ctrl-C as before."""
    import signal

    from numerics import checkpoint

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with checkpoint.interruptible():
            assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
        monkeypatch.setattr(checkpoint, "_sigint_left_alone", True)
        with checkpoint.interruptible() as flag:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN and not flag.requested
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("text", ["[" * 100000 + "]" * 100000, '{"settings": {"n": ' + "9" * 5000 + "}}"])
def test_a_run_record_nested_too_deep_or_with_a_huge_number_is_one_clear_error(tmp_path, text):
    """json.loads raised RecursionError (arrays nested 10^5 deep) or ValueError (a 5000-digit integer) through
    ``--resume``'s reading of run.json: a traceback; it is the damaged-record line."""
    (tmp_path / "run.json").write_text(text)
    with pytest.raises(CheckpointError, match="run.json is unreadable") as error:
        checkpoint.read_run(tmp_path)
    assert "\n" not in str(error.value)
