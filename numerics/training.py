"""Full-batch gradient descent and heavy-ball momentum on the MSE loss, with the dual coefficients alpha.

Loss L(theta) = (c / 2) sum_i ||f(x_i; theta) - y_i||^2 with c = 1 (``reduction="sum"``) or c = 1 / N
(``"mean"``, the mean over the N samples). The optimizer is optax's sgd (Sutskever et al. 2013):
m_{s+1} = beta m_s + g_s, theta_{s+1} = theta_s - eta m_{s+1}; beta = 0 is plain gradient descent.

For the linearized model f_lin(x; theta) = f(x; theta_0) + J_0(x) (theta - theta_0) the gradient is
g_s = -c J_0^T r_s with r_s = y - f_lin(X; theta_s), so every step lies in the row space of J_0 and
theta_s - theta_0 = J_0^T alpha_s exactly, where alpha follows the same (linear) optimizer fed with the
dual gradient -c r_s: mu_{s+1} = beta mu_s + c r_s, alpha_{s+1} = alpha_s + eta mu_{s+1}. It telescopes
to K alpha_T = r_0 - r_T, so alpha_T -> alpha = K^{-1} (y - f_0) (docs/claims.md#d1; the certificates
are in :mod:`theory.dynamics`). For the network itself alpha is recorded the same way; there
theta_T - theta_0 = J_0^T alpha only up to the finite-width deviation.

Example::

    network = make_network(parse_spec("relu:2"), 256)
    params_0 = network.init(jax.random.PRNGKey(0), x.shape[1])
    result = train(network, params_0, x, y, learning_rate=0.1, linearized=True, loss_threshold=1e-20)
    save_model("model.npz", result.params_0, result.params_f, result.arch, result.width, result.out_dim)
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
import warnings
from pathlib import Path
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from numerics.checkpoint import (Checkpoint, FileError, checkpoint_kind, fingerprint, interruptible, read_npz,
                                 with_article)
from numerics.networks import Network, Params, make_network
from numerics.progress import ChunkSizer, progress_bar
from theory.architecture import Architecture, SpecError, parse_spec

SLOW_TRAINING_WORK = 5e9
"""Parameters x training points x steps of one chunk above which a chunk could take over ~10 s (measured: relu:2
width 2048, N = 20, linearized heavy-ball, 4.3e6 parameters: 0.15 s a step, 1.7e-9 s per unit of this work):
training then times two single steps and cuts its chunks to about numerics.progress.PROGRESS_SECONDS, so that the
bar moves and a Ctrl-C takes effect within seconds (a 1000-step chunk there ran 150 s, the bar at 0 throughout)."""
REDUCTIONS = ("sum", "mean")
STOP_REASONS = ("threshold", "budget", "diverged")
FORMAT_VERSION = 1


# ------------------------------------------------------------------------------------------------
# Pytree helpers
# ------------------------------------------------------------------------------------------------

def _leaves_with_paths(params: Params) -> list[tuple[str, jax.Array]]:
    leaves, _ = jax.tree_util.tree_flatten_with_path(params)
    return [(jax.tree_util.keystr(path), leaf) for path, leaf in leaves]


def check_same_structure(a: Params, b: Params, names: tuple[str, str] = ("params_f", "params_0")) -> None:
    """Raise ValueError naming the first place where two parameter pytrees differ (structure or shape)."""
    structure_a, structure_b = jax.tree.structure(a), jax.tree.structure(b)
    if structure_a != structure_b:
        raise ValueError(f"{names[0]} and {names[1]} have different structures: {structure_a} vs {structure_b}")
    for (path, leaf_a), (_, leaf_b) in zip(_leaves_with_paths(a), _leaves_with_paths(b)):
        if np.shape(leaf_a) != np.shape(leaf_b):
            raise ValueError(f"{names[0]} and {names[1]} differ in shape at {path}: "
                             f"{np.shape(leaf_a)} vs {np.shape(leaf_b)}")


def param_difference(params_f: Params, params_0: Params) -> Params:
    """Delta theta = theta_f - theta_0 as a pytree (stax's ``None`` biases and ``()`` layers are kept)."""
    check_same_structure(params_f, params_0)
    return jax.tree.map(lambda a, b: a - b, params_f, params_0)


def flatten_params(params: Params) -> jax.Array:
    """All parameters as one vector (jax.flatten_util.ravel_pytree order)."""
    return ravel_pytree(params)[0]


def as_float64(params: Params) -> Params:
    return jax.tree.map(lambda leaf: jnp.asarray(leaf, dtype=jnp.float64), params)


def linearized_apply(apply_fn: Callable, params_0: Params) -> Callable:
    """f_lin(params, x) = f(x; theta_0) + J_0(x) (params - theta_0), by one jax.jvp (Lee et al. 2019, eq. 7)."""

    def apply(params: Params, x: jax.Array) -> jax.Array:
        f0, tangent = jax.jvp(lambda p: apply_fn(p, x), (params_0,), (param_difference(params, params_0),))
        return f0 + tangent

    return apply


@functools.partial(jax.jit, static_argnames=("apply_fn",))
def _jacobian_transpose_times(params: Params, x: jax.Array, alpha: jax.Array, *, apply_fn: Callable) -> Params:
    return jax.vjp(lambda p: apply_fn(p, x), params)[1](alpha)[0]


def jacobian_transpose_times(apply_fn: Callable, params: Params, x: jax.Array, alpha: jax.Array) -> Params:
    """J_theta(X)^T alpha = sum_i sum_k alpha_ik d f_k(x_i; theta) / d theta as a pytree (one jitted jax.vjp)."""
    x = jnp.asarray(x)
    out_shape = jax.eval_shape(apply_fn, params, x).shape
    alpha = jnp.asarray(alpha)
    if alpha.shape != out_shape:
        raise ValueError(f"alpha must have the network output's shape (N, C) = {out_shape}, got {alpha.shape}")
    return _jacobian_transpose_times(params, x, alpha.astype(x.dtype), apply_fn=apply_fn)


# ------------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------------

def expected_param_shapes(network: Network, in_dim: int) -> Params:
    """The pytree of ShapeDtypeStructs that ``network.init`` produces for inputs of dimension ``in_dim``."""
    return jax.eval_shape(lambda key: network.init(key, in_dim), jax.random.PRNGKey(0))


def _entry_text(entry) -> str:
    """A layer's parameter entry in the words of README's layout: (W, b), (W, None), () ..."""
    if isinstance(entry, (tuple, list)):
        inner = ", ".join("None" if item is None else "b" if k else "W" for k, item in enumerate(entry))
        return f"({inner})" if isinstance(entry, tuple) else f"[{inner}]"
    return type(entry).__name__


def _structure_difference(params: Params, expected: Params) -> str | None:
    """The first difference between a parameter list and the expected one, in words (a tuple of layers for the list,
    a bias where the spec has none, a layer too many), or None where none is found at that level."""
    if not isinstance(params, list):
        return f"they are a {type(params).__name__}, not a list with one entry per layer"
    if len(params) != len(expected):
        return f"they have {len(params)} entries, the spec's layers are {len(expected)}"
    for index, (entry, wanted) in enumerate(zip(params, expected)):
        if jax.tree.structure(entry) != jax.tree.structure(wanted):
            why = ""
            if isinstance(wanted, tuple) and len(wanted) == 2 and isinstance(entry, (tuple, list)) and len(entry) == 2:
                if wanted[1] is None and entry[1] is not None:
                    why = " (the spec has no biases, sb=0: pass None, or give the spec an sb)"
                elif wanted[1] is not None and entry[1] is None:
                    why = " (the spec has biases: pass b of shape (1, fan-out))"
            return f"entry {index} is {_entry_text(entry)} where the spec needs {_entry_text(wanted)}{why}"
    return None


def check_params(network: Network, params: Params, in_dim: int, name: str = "params_0") -> None:
    """Raise ValueError unless ``params`` has the structure and shapes of ``network`` on ``in_dim`` inputs; the
    message says in words what differs (a tuple for the list of layers, a bias the spec lacks, a matrix stored
    (fan-out, fan-in) as in PyTorch)."""
    expected = expected_param_shapes(network, in_dim)
    if jax.tree.structure(params) != jax.tree.structure(expected):
        difference = _structure_difference(params, expected)
        detail = difference or f"got {jax.tree.structure(params)}, expected {jax.tree.structure(expected)}"
        raise ValueError(f"{name} do not have the structure of {with_article(network.arch.spec)} network "
                         f"(width {network.width}, {network.out_dim} output(s)): {detail}")
    for (path, leaf), (_, spec) in zip(_leaves_with_paths(params), _leaves_with_paths(expected)):
        if np.shape(leaf) != spec.shape:
            shape = np.shape(leaf)
            transposed = len(shape) == 2 and len(spec.shape) == 2 and shape[0] == spec.shape[1] != shape[1]
            hint = (" (a (fan-out, fan-in) matrix, as PyTorch stores one? this layout is (fan-in, fan-out): "
                    "W = A.T * sqrt(fan-in) / sigma_w)") if transposed else ""
            raise ValueError(f"{name}{path} has shape {shape}, but {with_article(network.arch.spec)} "
                             f"network of width {network.width} with {in_dim} inputs and {network.out_dim} output(s) "
                             f"needs {spec.shape}{hint}")
        if not np.all(np.isfinite(np.asarray(leaf))):
            raise ValueError(f"{name}{path} contains NaN or infinite values")


def check_data(network: Network, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """x as (N, d) and y as (N, C = out_dim), finite, in float64; ValueError naming the problem otherwise."""
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"x must have shape (N, d) with N >= 1, got {x.shape}")
    if y.shape != (x.shape[0], network.out_dim):
        hint = " (reshape it with y[:, None])" if y.shape == (x.shape[0],) and network.out_dim == 1 else ""
        raise ValueError(f"y must have shape (N, C) = ({x.shape[0]}, {network.out_dim}) for N = {x.shape[0]} inputs "
                         f"and a network with {network.out_dim} output(s), got {y.shape}{hint}")
    for name, array in (("x", x), ("y", y)):
        if not np.issubdtype(array.dtype, np.number):
            raise ValueError(f"{name} must be numeric, got dtype {array.dtype}")
        bad = ~np.isfinite(array)
        if bad.any():
            rows = np.unique(np.nonzero(bad)[0])[:5].tolist()
            raise ValueError(f"{name} contains NaN or infinite values (rows {rows}{'...' if bad.sum() > 5 else ''})")
    return jnp.asarray(x, dtype=jnp.float64), jnp.asarray(y, dtype=jnp.float64)


def _check_options(reduction: str, learning_rate: float, momentum: float, max_steps: int, chunk_size: int,
                   loss_threshold: float, loss_ceiling: float = float("inf")) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if not (np.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate must be finite and > 0, got {learning_rate!r}")
    if not (0 <= momentum < 1):
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    if not isinstance(max_steps, (int, np.integer)) or max_steps < 0:
        raise ValueError(f"max_steps must be an integer >= 0, got {max_steps!r}")
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    if np.isnan(loss_threshold):
        raise ValueError("loss_threshold must be a number, got NaN")
    if np.isnan(loss_ceiling) or loss_ceiling <= 0:
        raise ValueError(f"loss_ceiling must be > 0, got {loss_ceiling!r}")


# ------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TrainResult:
    """theta_0, theta_f, the dual coefficients alpha (N x C) and the loss curve of one training run.

    ``losses[s]`` is the loss at theta_s for s = 0..steps (so ``len(losses) == steps + 1``).
    ``stop_reason`` is ``"threshold"`` (loss <= loss_threshold), ``"budget"`` (max_steps taken) or
    ``"diverged"`` (the loss became NaN or infinite, or exceeded the ``loss_ceiling`` given to :func:`train`).
    """

    params_0: Params
    params_f: Params
    alpha: jax.Array
    losses: np.ndarray
    steps: int
    arch: Architecture
    width: int
    out_dim: int
    linearized: bool
    reduction: str
    learning_rate: float
    momentum: float
    stop_reason: str
    seconds: float
    resumed_from: int = 0
    """The step a resumed run continued from (0 for a fresh run)."""
    in_dim: int | None = None
    """The input dimension d it was trained on."""

    @property
    def delta(self) -> Params:
        """Delta theta = theta_f - theta_0."""
        return param_difference(self.params_f, self.params_0)

    @property
    def final_loss(self) -> float:
        return float(self.losses[-1])

    def save(self, path: str | Path, *, training_data: tuple[str, int, int] | None = None) -> Path:
        return save_model(path, self.params_0, self.params_f, self.arch, self.width, self.out_dim, in_dim=self.in_dim,
                          training_data=training_data)


def _optimizer(learning_rate, momentum, nesterov: bool) -> optax.GradientTransformation:
    return optax.sgd(learning_rate, momentum=momentum, nesterov=nesterov)


def _model(apply_fn: Callable, params_0: Params, x: jax.Array, linearized: bool) -> Callable:
    """theta -> f(X; theta), or its exact linearization around theta_0 (one jax.linearize per chunk)."""
    if not linearized:
        return lambda params: apply_fn(params, x)
    f0, jvp = jax.linearize(lambda params: apply_fn(params, x), params_0)
    return lambda params: f0 + jvp(param_difference(params, params_0))


def _scale(reduction: str, n: int) -> float:
    return 1.0 if reduction == "sum" else 1.0 / n


@functools.partial(jax.jit, static_argnames=("apply_fn", "linearized", "reduction", "nesterov", "chunk_size"))
def _run_chunk(state, params_0, x, y, hyper, *, apply_fn, linearized, reduction, nesterov, chunk_size):
    """``chunk_size`` optimizer steps; once the run has stopped, the remaining ones are skipped (lax.cond).

    state = (params, opt_state, alpha, dual_state, step, stopped);
    hyper = (eta, beta, threshold, max_steps, ceiling): a loss above ``ceiling`` stops the run untaken.
    """
    learning_rate, momentum, threshold, max_steps, ceiling = hyper
    model = _model(apply_fn, params_0, x, linearized)
    opt = _optimizer(learning_rate, momentum, nesterov)
    c = _scale(reduction, x.shape[0])

    def step(carry):
        params, opt_state, alpha, dual_state, count, _ = carry
        out, pullback = jax.vjp(model, params)
        residual = y - out
        loss = 0.5 * c * jnp.sum(residual**2)
        active = (count < max_steps) & (loss > threshold) & jnp.isfinite(loss) & (loss <= ceiling)
        (grad,) = pullback(-c * residual)
        updates, new_opt_state = opt.update(grad, opt_state, params)
        dual_updates, new_dual_state = opt.update(-c * residual, dual_state)
        candidate = (optax.apply_updates(params, updates), new_opt_state, alpha + dual_updates, new_dual_state)
        current = (params, opt_state, alpha, dual_state)
        kept = jax.tree.map(lambda new, old: jnp.where(active, new, old), candidate, current)
        return (*kept, count + active.astype(count.dtype), ~active), jnp.where(active, loss, jnp.nan)

    def skip(carry):
        return carry, jnp.full((), jnp.nan, dtype=y.dtype)

    def body(carry, _):
        return jax.lax.cond(carry[5], skip, step, carry)

    return jax.lax.scan(body, state, None, length=chunk_size)


@functools.partial(jax.jit, static_argnames=("apply_fn", "linearized", "reduction"))
def _loss(params, params_0, x, y, *, apply_fn, linearized, reduction):
    residual = y - _model(apply_fn, params_0, x, linearized)(params)
    return 0.5 * _scale(reduction, x.shape[0]) * jnp.sum(residual**2)


def _stop_reason(loss: float, threshold: float, ceiling: float) -> str:
    """Why a run that ended with ``loss`` stopped: "diverged" (not finite or above ``ceiling``), "threshold" (at or
    below ``threshold``), else "budget"."""
    if not np.isfinite(loss) or loss > ceiling:
        return "diverged"
    return "threshold" if loss <= threshold else "budget"


def train(network: Network, params_0: Params, x: jax.Array, y: jax.Array, *, learning_rate: float,
          momentum: float = 0.0, nesterov: bool = False, reduction: str = "sum", linearized: bool = False,
          max_steps: int = 10_000, loss_threshold: float = 0.0, chunk_size: int = 1000,
          loss_ceiling: float = float("inf"), progress: bool = True, checkpoint: str | os.PathLike | None = None, resume: bool = False) -> TrainResult:
    """Full-batch GD (``momentum=0``) or heavy-ball momentum on the MSE loss, recording alpha.

    Runs until the loss (with the chosen ``reduction``) is <= ``loss_threshold``, ``max_steps`` steps were
    taken, or the loss stops being finite or exceeds ``loss_ceiling`` (stop reason ``"diverged"``, a
    RuntimeWarning; :func:`numerics.audit.train_on` uses the ceiling to halve a step that is too large). Steps run in jitted ``jax.lax.scan``
    chunks of ``chunk_size`` (fewer where a chunk would take over ~10 s: :data:`SLOW_TRAINING_WORK`); the
    learning rate, momentum, threshold and budget are traced, so runs that
    differ only in those (or in data values) reuse one compilation. ``progress=False`` prints nothing; the
    bar shows the ``train loss`` (the loss above, the quantity recorded in ``losses``).

    With ``checkpoint`` (an ``.npz`` path) the state is saved after every chunk
    (:class:`numerics.checkpoint.Checkpoint`); ``resume=True`` continues from it when it exists, with the same
    network, data, theta_0 and optimizer settings (else :class:`~numerics.checkpoint.SettingsMismatch` names
    the first that differs) and a ``max_steps`` at least the step reached (a larger one extends the run).
    Ctrl-C stops after the current chunk, once it is saved, with :class:`~numerics.checkpoint.Interrupted`.
    """
    _check_options(reduction, learning_rate, momentum, max_steps, chunk_size, loss_threshold, loss_ceiling)
    x, y = check_data(network, x, y)
    params_0 = as_float64(params_0)
    check_params(network, params_0, x.shape[1])
    static = dict(apply_fn=network.apply_fn, linearized=bool(linearized), reduction=reduction)
    opt = _optimizer(learning_rate, momentum, nesterov)
    alpha = jnp.zeros_like(y)
    state = (params_0, opt.init(params_0), alpha, opt.init(alpha), jnp.zeros((), jnp.int64), jnp.zeros((), bool))
    hyper = (jnp.float64(learning_rate), jnp.float64(momentum), jnp.float64(loss_threshold), jnp.int64(max_steps),
             jnp.float64(loss_ceiling))
    losses: list[np.ndarray] = []
    settings = {"arch": network.arch.spec, "width": network.width, "out_dim": network.out_dim,
                "linearized": bool(linearized), "reduction": reduction, "learning_rate": float(learning_rate),
                "momentum": float(momentum), "nesterov": bool(nesterov), "loss_threshold": float(loss_threshold),
                "data": fingerprint(x, y), "params_0": fingerprint(params_0)}
    if np.isfinite(loss_ceiling):  # (absent otherwise: checkpoints written before the ceiling existed still resume)
        settings["loss_ceiling"] = float(loss_ceiling)
    store = None if checkpoint is None else Checkpoint(checkpoint, kind="train", settings=settings)
    resumed_from = 0
    if store is not None and resume and store.exists():
        saved = store.load(state, budget=max_steps)
        # the stop flag is recomputed by the next step, so a run stopped by a smaller budget goes on
        state = (*jax.tree.map(jnp.asarray, saved.state[:5]), jnp.zeros((), bool))
        losses.append(np.asarray(saved.extras["losses"]))
        resumed_from = saved.step
    start = time.perf_counter()
    label = (f"{'linearized ' if linearized else ''}{'heavy-ball' if momentum else 'GD'} "
             f"{network.arch.named(network.width, short=True)}")
    parameters = sum(int(np.size(leaf)) for leaf in jax.tree_util.tree_leaves(params_0))
    sizer = ChunkSizer(chunk_size, heavy=parameters * x.shape[0] * chunk_size > SLOW_TRAINING_WORK)
    with progress_bar(enabled=progress, value_name="train loss") as bar, interruptible() as stop:
        task = bar.add_task(label, total=max_steps, completed=resumed_from, value=None)
        stopped = max_steps == 0
        final = None
        while not stopped:
            # the same length whatever the budget (the steps past it are skipped): one compilation for all budgets
            length = sizer.length(chunk_size)
            started = time.perf_counter()
            state, chunk_losses = _run_chunk(state, params_0, x, y, hyper, nesterov=bool(nesterov),
                                             chunk_size=int(length), **static)
            chunk_losses = np.asarray(chunk_losses)
            taken = chunk_losses[~np.isnan(chunk_losses)]
            losses.append(taken)
            done = int(state[4])
            # no note of the time left: training mostly stops at its loss target long before its budget (relu:2
            # width 2048: 233 of 20000 steps), so the budget's time (30 min there) would mislead
            sizer.ran(time.perf_counter() - started, max_steps - done, length)
            stopped = bool(state[5]) or done >= max_steps
            shown = float(taken[-1]) if taken.size else float("nan")  # each step's loss before its update
            if stopped:  # the loss after the last update: what the run reports (final_train_loss, stop_reason)
                shown = final = float(_loss(state[0], params_0, x, y, **static))
            # a run that met its loss target early ends its bar full at the step it stopped (not red at done/budget);
            # one that diverged or hit the ceiling keeps its budget as the total
            met = stopped and done and _stop_reason(shown, loss_threshold, loss_ceiling) == "threshold"
            bar.update(task, completed=done, total=done if met else None, value=shown)
            if stopped and np.isfinite(loss_ceiling) and shown > loss_ceiling:
                break  # a run stopped above the ceiling is abandoned (train_on restarts it): no checkpoint of it
            if store is not None:
                store.save(state, step=done, budget=max_steps,
                           extras={"losses": np.concatenate(losses), "met_target": np.asarray(bool(met))})
            # a run that met its loss target is complete at ``done``: a Ctrl-C there names no budget still to go
            stop.check(done, total=done if met else max_steps, what="training",
                       path=None if store is None else store.path)
    params_f, _, alpha, _, steps, _ = state
    if final is None:  # no chunk ran (max_steps = 0)
        final = float(_loss(params_f, params_0, x, y, **static))
    curve = np.concatenate([*losses, [final]]) if losses else np.array([final])
    steps = int(steps)
    reason = _stop_reason(final, loss_threshold, loss_ceiling)
    if reason == "diverged":
        above = "" if not np.isfinite(final) else f", above the ceiling {loss_ceiling:g}"
        warnings.warn(f"training diverged after {steps} steps (loss {final}{above}); lower the learning rate "
                      f"(now {learning_rate:g})", RuntimeWarning, stacklevel=2)
    return TrainResult(params_0=params_0, params_f=params_f, alpha=alpha, losses=curve, steps=steps,
                       arch=network.arch, width=network.width, out_dim=network.out_dim, linearized=bool(linearized),
                       reduction=reduction, learning_rate=float(learning_rate), momentum=float(momentum),
                       stop_reason=reason, seconds=time.perf_counter() - start, resumed_from=resumed_from,
                       in_dim=int(x.shape[1]))


# ------------------------------------------------------------------------------------------------
# The kernel solution
# ------------------------------------------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=("network",))
def _ntk_matrix(params: Params, x: jax.Array, *, network: Network) -> jax.Array:
    from numerics._nt import neural_tangents
    from numerics.kernels import empirical_ntk, flatten_ntk

    if network.arch.is_mlp:  # the layer-by-layer formula (numerics.kernels), faster
        return flatten_ntk(empirical_ntk(network.arch, params, x))
    # any other chain: neural-tangents' Jacobian contraction over the network's own apply function
    kernel = neural_tangents().empirical_ntk_fn(network.apply_fn, trace_axes=(), vmap_axes=0, implementation=1)
    return flatten_ntk(kernel(x, None, params))


def ntk_matrix(network: Network, params: Params, x: jax.Array) -> jax.Array:
    """The empirical NTK K = J(X) J(X)^T as an (N C x N C) matrix, rows sample-major like alpha.ravel()."""
    return _ntk_matrix(params, jnp.asarray(x, dtype=jnp.float64), network=network)


class KernelSolution(NamedTuple):
    kernel: jax.Array
    """K_0 = J_0 J_0^T, (N C x N C)."""
    eigenvalues: jax.Array
    """Eigenvalues of K_0, ascending (lambda_max sets the stable learning rate, < 2 / lambda_max for GD)."""
    residual: jax.Array
    """r_0 = y - f_0(X), (N, C)."""
    alpha: jax.Array
    """K_0^{-1} r_0, (N, C)."""


@functools.partial(jax.jit, static_argnames=("network",))
def _kernel_solution(params_0: Params, x: jax.Array, y: jax.Array, *, network: Network) -> KernelSolution:
    kernel = _ntk_matrix(params_0, x, network=network)
    residual = y - network.apply(params_0, x)
    alpha = jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(kernel), residual.reshape(-1))
    return KernelSolution(kernel=kernel, eigenvalues=jnp.linalg.eigvalsh(kernel), residual=residual,
                          alpha=alpha.reshape(y.shape))


OVERFLOWING_KERNEL = 1e100
"""An empirical NTK eigenvalue above this comes from an activation that overflows with depth (exp(2x) at depth 2 on
digits: 1.6e226), not from a data problem, and the singular-K_0 message says so."""


def kernel_solution(network: Network, params_0: Params, x: jax.Array, y: jax.Array) -> KernelSolution:
    """K_0, its eigenvalues, r_0 = y - f_0(X) and alpha = K_0^{-1} r_0 (the accumulator's limit), by Cholesky.

    A ValueError says so when K_0 is numerically singular: lambda_min <= N C eps lambda_max, numpy's
    matrix_rank tolerance (duplicate training points, points that a bias-free ReLU network cannot tell
    apart such as x and 2x, or fewer parameters than N C).
    """
    x, y = check_data(network, x, y)
    solution = _kernel_solution(as_float64(params_0), x, y, network=network)
    eigenvalues = np.asarray(solution.eigenvalues)
    if eigenvalues[0] <= eigenvalues.size * np.finfo(np.float64).eps * eigenvalues[-1] or not bool(
            jnp.all(jnp.isfinite(solution.alpha))):
        if not np.all(np.isfinite(eigenvalues)) or eigenvalues[-1] > OVERFLOWING_KERNEL:
            cause = ("its entries overflow float64's precision: the activation grows too fast for this depth and these "
                     "inputs")
        else:
            cause = "duplicate training points, or fewer parameters than N * C"
        raise ValueError(f"the empirical NTK K_0 = J_0 J_0^T is singular (eigenvalues from {eigenvalues[0]:.3g} to "
                         f"{eigenvalues[-1]:.3g}; {cause}): alpha = K_0^{{-1}} (y - f_0) is undefined")
    return solution


def kernel_alpha(network: Network, params_0: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    """alpha = K_0^{-1} (y - f_0(X)), shape (N, C) (see :func:`kernel_solution`)."""
    return kernel_solution(network, params_0, x, y).alpha


# ------------------------------------------------------------------------------------------------
# Saving and loading
# ------------------------------------------------------------------------------------------------

class _SavedFields(NamedTuple):
    params_0: Params
    params_f: Params
    arch: Architecture
    width: int
    out_dim: int


class SavedModel(_SavedFields):
    """(params_0, params_f, arch, width, out_dim), unpacked as before, and ``in_dim``, the input dimension stored in
    the file (a convolutional network's weights do not fix it), and ``training_data``, the (dataset name, N, seed)
    it was trained on when the file records it (None otherwise)."""

    def __new__(cls, params_0, params_f, arch, width, out_dim, in_dim: int | None = None,
                training_data: tuple[str, int, int] | None = None):
        self = super().__new__(cls, params_0, params_f, arch, width, out_dim)
        self.in_dim = in_dim
        self.training_data = training_data
        return self


def _npz_path(path: str | Path) -> Path:
    path = Path(path)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


MODEL_HEADER: dict[str, tuple[tuple[int, ...], tuple[str, ...]]] = {
    "spec": ((), ("U",)), "width": ((), ("i", "u")), "out_dim": ((), ("i", "u")), "in_dim": ((), ("i", "u")),
    "format_version": ((), ("i", "u")), "data_name": ((), ("U",)), "data_n": ((), ("i", "u")),
    "data_seed": ((), ("i", "u"))}
"""The scalars of a saved model (name -> (shape, dtype kinds)); format_version may be absent (hand-made files), and
data_name / data_n / data_seed (what it was trained on) are all present or all absent."""
TRAINING_DATA_KEYS = ("data_name", "data_n", "data_seed")
MAX_MODEL_DIMENSION = 1 << 24
"""Largest width, input or output dimension a model file may declare (a sanity bound, not a limit of the code)."""


def save_model(path: str | Path, params_0: Params, params_f: Params, arch: Architecture | str, width: int,
               out_dim: int = 1, *, in_dim: int | None = None,
               training_data: tuple[str, int, int] | None = None) -> Path:
    """Write theta_0, theta_f and the architecture (spec string, width, output and input dimension) to .npz, and
    ``training_data`` = (dataset name, N, seed) when given, so that an audit can score against the same points.

    Arrays are stored under ``params_0[i][j]`` / ``params_f[i][j]`` (their pytree paths, any chain's). The input
    dimension ``in_dim`` is read from the first dense layer when not given (a convolutional network needs it:
    its weights do not fix the image size). The file is written under a temporary name and renamed, so it
    exists only complete. ``arch`` is an Architecture or its spec string (parsed by
    :func:`theory.architecture.parse_spec`). Returns the path.
    """
    if isinstance(arch, str):
        arch = parse_spec(arch)
    elif not isinstance(arch, Architecture):
        raise TypeError(f"arch must be an Architecture or a spec string such as 'relu:2', got {type(arch).__name__}")
    network = make_network(arch, int(width), int(out_dim))
    layers = [leaf for _, leaf in _leaves_with_paths(params_0)]
    if not layers:
        raise ValueError("params_0 has no arrays")
    if in_dim is None:
        if arch.is_convolutional:
            raise ValueError(f"{arch.spec}: a convolutional network's weights do not fix its input size; pass in_dim")
        in_dim = int(np.shape(layers[0])[0])
    check_params(network, params_0, in_dim, "params_0")
    check_params(network, params_f, in_dim, "params_f")
    arrays = {"spec": np.array(arch.spec), "width": np.array(int(width)), "out_dim": np.array(int(out_dim)),
              "in_dim": np.array(in_dim), "format_version": np.array(FORMAT_VERSION)}
    if training_data is not None:
        from numerics.audit import check_training_data

        if isinstance(training_data, str) or len(training_data) != 3:
            raise ValueError(f"training_data must be (dataset name, N, seed), got {training_data!r}")
        name, n, seed = check_training_data(*training_data, in_dim=in_dim, out_dim=int(out_dim))
        arrays.update(data_name=np.array(str(name)), data_n=np.array(int(n)), data_seed=np.array(int(seed)))
    for name, params in (("params_0", params_0), ("params_f", params_f)):
        for leaf_path, leaf in _leaves_with_paths(params):
            arrays[f"{name}{leaf_path}"] = np.asarray(leaf, dtype=np.float64)
    path = _npz_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(temporary, path)
    return path


def load_model(path: str | Path) -> SavedModel:
    """Read a model written by :func:`save_model` (or by hand in the same layout), executing nothing.

    The file is read without pickle; its stored spec goes through :func:`theory.architecture.parse_spec`
    (activation formulas through the whitelist parser); every array's shape and dtype is checked against
    the network that spec, width and dimensions describe before its data is read, and every value must be
    finite. Raises FileNotFoundError for a missing file and :class:`numerics.checkpoint.FileError` (a
    ValueError, one line) for anything else: not an .npz, from another program, a bad spec, arrays
    missing, extra or of the wrong shape or dtype.
    """
    path = _npz_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no saved model at {path}")
    header = read_npz(path, what="saved model", expected=MODEL_HEADER, only=MODEL_HEADER)
    missing = [key for key in ("spec", "width", "out_dim", "in_dim") if key not in header]
    if missing:
        kind = checkpoint_kind(path)
        if kind is not None:  # e.g. train_checkpoint.npz beside a run folder's model.npz
            raise FileError(f"{path} is {with_article(kind)} checkpoint of this program (what --resume continues), "
                            "not a saved model: pass the model.npz of its run folder (written when training ends)")
        raise FileError(f"{path} is not a saved model of this program: it lacks {', '.join(missing)}")
    version = int(header.get("format_version", FORMAT_VERSION))
    if version > FORMAT_VERSION:
        raise FileError(f"{path} has model format {version}; this version reads format {FORMAT_VERSION}")
    try:
        arch = parse_spec(str(header["spec"]))
    except SpecError as error:
        raise FileError(f"{path}: bad architecture spec: {error}") from None
    width, out_dim, in_dim = (int(header[key]) for key in ("width", "out_dim", "in_dim"))
    for key, value in (("width", width), ("out_dim", out_dim), ("in_dim", in_dim)):
        if not 1 <= value <= MAX_MODEL_DIMENSION:
            raise FileError(f"{path}: {key} = {value} is not between 1 and {MAX_MODEL_DIMENSION}")
    try:
        arch.check_input(in_dim)
    except SpecError as error:
        raise FileError(f"{path}: in_dim = {in_dim} does not fit {arch.spec}: {error}") from None
    network = make_network(arch, width, out_dim)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(expected_param_shapes(network, in_dim))
    expected = {f"{name}{jax.tree_util.keystr(leaf_path)}": (spec.shape, ("f",))
                for name in ("params_0", "params_f") for leaf_path, spec in leaves}
    described = f"{with_article(arch.spec)} network of width {width} with {in_dim} inputs and {out_dim} output(s)"
    try:
        contents = read_npz(path, what="saved model", expected={**MODEL_HEADER, **expected}, max_other_bytes=0)
    except FileError as error:
        raise FileError(f"{error} ({described})") from None
    absent = [key for key in expected if key not in contents]
    if absent:
        raise FileError(f"{path} lacks {absent[0]} ({described} needs {expected[absent[0]][0]})")
    loaded = {}
    for name in ("params_0", "params_f"):
        arrays = []
        for leaf_path, _ in leaves:
            key = f"{name}{jax.tree_util.keystr(leaf_path)}"
            array = contents[key]
            if not np.all(np.isfinite(array)):
                raise FileError(f"{path}: {key} contains NaN or infinite values")
            arrays.append(jnp.asarray(array, dtype=jnp.float64))
        loaded[name] = jax.tree_util.tree_unflatten(treedef, arrays)
    recorded = [key for key in TRAINING_DATA_KEYS if key in header]
    if recorded and len(recorded) != len(TRAINING_DATA_KEYS):
        raise FileError(f"{path} records {', '.join(recorded)} but not all of {', '.join(TRAINING_DATA_KEYS)}")
    training_data = None
    if recorded:
        from numerics.audit import check_training_data

        try:
            training_data = check_training_data(str(header["data_name"]), int(header["data_n"]),
                                                int(header["data_seed"]), in_dim=in_dim, out_dim=out_dim)
        except ValueError as error:
            raise FileError(f"{path}: {error} (its record of the training data)") from None
    return SavedModel(params_0=loaded["params_0"], params_f=loaded["params_f"], arch=arch, width=width,
                      out_dim=out_dim, in_dim=in_dim, training_data=training_data)
