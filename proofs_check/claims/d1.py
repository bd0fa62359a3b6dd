"""D1: lazy-training dynamics and the dual coefficients alpha (docs/claims.md#d1).

Derivations: the closed form of linearized gradient flow solves its ODE with the right initial value and
limit, alpha is the time-integrated residual, and GD / heavy-ball accumulators telescope to
K alpha_T = r_0 - r_T (:mod:`theory.dynamics`). Checks: linearized training reaches J_0^T alpha to
round-off; for the network itself the deviation ||Delta theta - J_0^T alpha|| / ||Delta theta|| shrinks
with width at a fitted rate. Counterexamples: the accumulators that the reference code got wrong (no 1/N
for a mean loss; the plain residual sum under momentum) fail the certificates.
"""

from __future__ import annotations

import numpy as np

from proofs_check.figures import readable_log_ticks, save_figure
from proofs_check.registry import (Claim, Context, Outcome, Step, at_least, bootstrap_loglog_slope, exact,
                                   geometric_mean_over_seeds, not_applicable, rate_interval, register, slope_below,
                                   within)
from theory.architecture import Architecture, parse_spec

LINEARIZED_ARCH = "relu:2"
RATE_ARCHS = {"quick": ("relu:2",), "full": ("relu:2", "erf:2")}
"""relu:2 is the paper's setting; erf:2 (full profile) shows the m^-1/2 rate of a smooth activation beside it."""
LINEARIZED_WIDTH = {"quick": 256, "full": 512}
CONV_LINEARIZED_WIDTH = {"quick": 64, "full": 128}
"""Channels of (i) on convolutional chains: (i) is exact at any width, and 64 costs a sixteenth of 256 (cond(K_0) of
conv3x3 > relu > conv3x3 > relu > gap > dense on 3x3 images: 57 and 62 at 64 channels, 41 and 64 at 256)."""
RATE_WIDTHS = {"quick": (32, 64, 128, 256), "full": (64, 128, 256, 512, 1024, 2048)}
CONV_RATE_WIDTHS = {"quick": (32, 48, 64, 96), "full": (32, 48, 64, 96, 128, 192, 256)}
"""Channel counts of (ii) on convolutional chains (3x3 images): a unit costs the window (9 taps) times the pixels
more than a dense unit."""
N_TRAIN = 8
IN_DIM = 8
SPOT_TOLERANCE = 1e-20
"""The unreduced expressions are evaluated with 30 digits: true identities leave <= 2e-28 (measured over 600 samples per certificate)."""
ENDPOINT_TOLERANCE = 1e-10
"""(i)'s endpoint: float64 round-off times cond(K_0) <= MAX_CONDITION, ~1e-12 (measured <= 1.7e-13 for relu:2 at seeds
0-2, <= 3.4e-13 with pooling)."""
ACCUMULATOR_TOLERANCE = 2e-10
"""(i)'s alpha: the run stops at loss 1e-26 x loss_0, so ||K^-1 r_T|| <= 1e-13 cond(K_0) <= 1e-10 relative, plus
round-off (measured <= 3.1e-13); twice the bound."""
RECURSION_TOLERANCE = 1e-12
"""(i)'s 25 steps against the residual recursion in numpy: round-off of 25 matrix-vector products (measured
<= 7.3e-16, relu:2, seeds 0-2)."""
DEVIATION_FLOOR = 1e-6
"""(ii) measures a deviation only where there is one: at the smallest width the geometric mean must be at least this
(measured 0.45 for relu:2 at width 32 on the quick profile; a network that is its own linearization leaves 3e-12 to
7e-12, round-off, whose 'rate' is noise)."""
OPTIMIZER_TOLERANCE = 1e-12
OPTIMIZER_MEASURED = 0.0
"""The unrolled symbolic loop at exact dyadic rationals against numerics.training.train in float64: at most round-off
of a few 2x3 matrix-vector products, and none here (k/4 entries, k/2^j step sizes and beta: every float64 operation
is exact; measured 0 over the four variants, quick and full, seeds 0-2)."""
TELESCOPING_TOLERANCE = 1e-12
"""(i)'s telescoping identity holds at every step: round-off of a few matmuls (measured <= 1.7e-15 at seeds 0-2)."""
MAX_CONDITION = 1e3
"""The linearized-endpoint tolerances (ENDPOINT_TOLERANCE and ACCUMULATOR_TOLERANCE) assume cond(K_0) <= MAX_CONDITION; check (i) asserts it. Pooling
makes the kernel ill-conditioned: cond(K_0) measured 7-13 for relu:2, 94-112 for conv3x3 > relu > gap > dense on
3x3 images and 265-723 for conv3 > relu > gap > dense, the errors 0.8e-13 ... 3.4e-13 throughout."""
RATE_TRAIN_STEPS = 20_000
RATE_LOSS_THRESHOLD = 1e-22
"""(ii) trains every network to this loss (the kernel solution's alpha is the endpoint's only at convergence)."""
SMOOTH_EXPONENT = -0.5
"""Predicted exponent of the deviation for smooth activations (Lee et al. 2019, arXiv:1902.06720, Thm 2.1)."""


def _data(ctx: Context, tag: str, arch: Architecture, out_dim: int = 1,
          seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """N = 8 inputs on the sphere of radius sqrt(d) (so Sigma^1(x, x) = 1) and N(0, 1) targets; d = IN_DIM, or
    the next dimension ``arch`` reads (9: 3x3 images for a 2D convolution); ``seed`` gives a seed its own draw."""
    dim = arch.input_dim_at_least(IN_DIM)
    # every draw tagged "rate" passes a seed (and only those do): no two draws share their tags
    rng = ctx.rng("d1-data", tag, out_dim, *(() if dim == IN_DIM else (dim,)), *(() if seed is None else (seed,)))
    x = rng.normal(size=(N_TRAIN, dim))
    x *= np.sqrt(dim) / np.linalg.norm(x, axis=1, keepdims=True)
    return x, rng.normal(size=(N_TRAIN, out_dim))


def _archs(ctx: Context, default: tuple[str, ...]) -> list[Architecture]:
    return list(ctx.archs) if ctx.archs else [parse_spec(spec) for spec in default]


# ------------------------------------------------------------------------------------------------
# Derivations
# ------------------------------------------------------------------------------------------------

def _certified(ctx: Context, certs) -> list[Outcome]:
    from theory.dynamics import spot_check

    rng = ctx.rng("d1-spot")
    outcomes = []
    for cert in certs:
        spot = spot_check(cert, rng)
        details = {} if spot is None else {"numerical_spot_check": spot}
        outcome = exact(cert.name, cert.residual, **details)
        if spot is not None and spot > SPOT_TOLERANCE:
            outcome.passed = False
            outcome.details["numerical_failure"] = "the unreduced identity is nonzero at a random point"
        outcomes.append(outcome)
    return outcomes


def derive_modes(ctx: Context) -> list[Outcome]:
    from theory.dynamics import modal_flow_certificates

    return _certified(ctx, modal_flow_certificates())


def derive_flow(ctx: Context) -> list[Outcome]:
    from theory.dynamics import flow_certificates

    return _certified(ctx, flow_certificates())


def _linear_apply(params, x):
    """f(X; theta) = X theta: a model whose Jacobian is X itself (the rows of X are J's rows)."""
    return x @ params[0]


def _linear_init(key, input_shape):
    return (*input_shape[:-1], 1), [np.zeros((input_shape[-1], 1))]


def _linear_network():
    """The linear model f(theta) = J theta as a numerics.networks.Network, so that numerics.training.train runs it
    (its arch, "dense", only names the run)."""
    from numerics.networks import Network

    return Network(arch=parse_spec("dense"), width=1, out_dim=1, init_fn=_linear_init, apply_fn=_linear_apply,
                   kernel_fn=None)


def _dyadic(rng, low: int, high: int, denominator: int):
    """An exact nonzero rational k / denominator (k uniform in [low, high], 0 drawn as ``high``; a power of 2 as
    denominator: exact in float64). Nonzero entries keep r_0 and K away from 0."""
    import sympy as sp

    return sp.Rational(int(rng.integers(low, high + 1)) or high, denominator)


def optimizer_agreement(ctx: Context, steps: int, momentum: bool, reduction: str) -> Outcome:
    """The symbolic unrolled loop (theory.dynamics.unrolled_gd) evaluated at exact random rationals (J, theta_0,
    r_0, one step size for every step, beta) against the optimizer training uses (numerics.training.train,
    linearized, float64) on the linear model f(theta) = J theta: theta_T - theta_0, alpha_T and r_T. The
    certificates hold for any loop that feeds primal and dual the same residual; this ties the loop to optax's sgd."""
    import jax.numpy as jnp
    import sympy as sp

    from numerics.training import flatten_params, train
    from theory.dynamics import beta_symbol, n_samples_symbol, unrolled_gd

    run = unrolled_gd(steps, momentum=momentum, reduction=reduction)
    (n, p), rng = run.J.shape, ctx.rng("d1-optimizer", steps, momentum, reduction)
    J = sp.Matrix(n, p, lambda i, j: _dyadic(rng, -8, 8, 4))
    theta_0 = sp.Matrix(p, 1, lambda i, j: _dyadic(rng, -8, 8, 4))
    r_0 = sp.Matrix(n, 1, lambda i, j: _dyadic(rng, -8, 8, 4))
    c = sp.S.One if reduction == "sum" else sp.Rational(1, n)
    scale = 2 ** int(np.ceil(np.log2(float(c * (J * J.T).trace()))))  # eta c trace(K) <= 7/8: the run stays bounded
    eta = _dyadic(rng, 1, 7, 8) / scale
    beta = _dyadic(rng, 1, 15, 16) if momentum else sp.S.Zero
    values = {**dict(zip(run.J, J)), **dict(zip(run.r0, r_0)), **{e: eta for e in run.etas}, beta_symbol: beta,
              n_samples_symbol: n}
    exact_values = {name: np.array(matrix.xreplace(values).evalf(30), dtype=np.float64).reshape(-1)
                    for name, matrix in (("delta", run.delta), ("alpha", run.alpha), ("r_T", run.r_final))}
    as_float = lambda m: np.array(m, dtype=np.float64)  # noqa: E731 (dyadic: exact)
    x, params_0 = as_float(J), [jnp.asarray(as_float(theta_0))]
    y = as_float(r_0 + J * theta_0)
    result = train(_linear_network(), params_0, x, y, learning_rate=float(eta), momentum=float(beta),
                   reduction=reduction, linearized=True, max_steps=steps, chunk_size=steps, progress=False)
    theta_f = np.asarray(flatten_params(result.params_f))
    numeric = {"delta": theta_f - as_float(theta_0).reshape(-1), "alpha": np.asarray(result.alpha).reshape(-1),
               "r_T": y.reshape(-1) - x @ theta_f}
    errors = {name: float(np.linalg.norm(numeric[name] - exact_values[name]) / np.linalg.norm(exact_values[name]))
              for name in exact_values}
    label = f"{'heavy-ball' if momentum else 'GD'}, {reduction} loss, {steps} steps"
    return within(f"{label}: the unrolled iterates theta_T - theta_0, alpha_T, r_T at exact rationals = "
                  "numerics.training.train (optax sgd, linearized, float64)", max(errors.values()),
                  OPTIMIZER_TOLERANCE, "the certificates hold for any loop that feeds primal and dual the same "
                  "residual; this ties the loop to the optimizer (float64 round-off of a few 2x3 matmuls at most; "
                  f"dyadic inputs make every operation exact, measured {OPTIMIZER_MEASURED:g})",
                  relative_errors=errors, steps_taken=result.steps, learning_rate=str(eta), momentum=str(beta))


def derive_discrete(ctx: Context) -> list[Outcome]:
    from theory.dynamics import REDUCTIONS, gd_certificates

    certs, agreement = [], []
    for momentum in (False, True):
        for reduction in REDUCTIONS:
            certs += gd_certificates(ctx.pick(2, 3), momentum=momentum, reduction=reduction)
            agreement.append(optimizer_agreement(ctx, ctx.pick(2, 3), momentum, reduction))
    return _certified(ctx, certs) + agreement


def derive_induction(ctx: Context) -> list[Outcome]:
    from theory.dynamics import induction_certificates

    return _certified(ctx, induction_certificates())


# ------------------------------------------------------------------------------------------------
# Checks
# ------------------------------------------------------------------------------------------------

def _relative(a, b) -> float:
    from numerics.training import flatten_params

    a, b = np.asarray(flatten_params(a)), np.asarray(flatten_params(b))
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


LINEARIZED_VARIANTS = (
    # (label, momentum, reduction, out_dim, in the quick profile)
    ("GD, sum, C=1", 0.0, "sum", 1, True),
    ("heavy-ball 0.9, mean, C=2", 0.9, "mean", 2, True),
    ("GD, mean, C=2", 0.0, "mean", 2, False),
    ("heavy-ball 0.9, sum, C=1", 0.9, "sum", 1, False),
)


def residual_recursion(kernel: np.ndarray, r_0: np.ndarray, learning_rate: float, momentum: float, c: float,
                       steps: int) -> np.ndarray:
    """r_T of linearized heavy-ball on (c / 2) ||r||^2, in residual space alone (numpy, independent of the
    optimizer's parameter-space code): mu_{s+1} = beta mu_s + c r_s, r_{s+1} = r_s - eta K mu_{s+1} (optax's sgd:
    m_{s+1} = beta m_s + g_s, theta_{s+1} = theta_s - eta m_{s+1}, g_s = -c J^T r_s, and r moves by -J times the
    step)."""
    r, mu = np.array(r_0, dtype=np.float64), np.zeros_like(r_0, dtype=np.float64)
    for _ in range(steps):
        mu = momentum * mu + c * r
        r = r - learning_rate * (kernel @ mu)
    return r

def check_linearized(ctx: Context) -> list[Outcome]:
    """(i) GD / heavy-ball on the exact linearization: theta_f - theta_0 = J_0^T K^{-1} (y - f_0) to round-off."""
    import jax

    from numerics.networks import make_network
    from numerics.training import jacobian_transpose_times, kernel_solution, linearized_apply, train

    outcomes = []
    for arch in _archs(ctx, (LINEARIZED_ARCH,)):
        width = (CONV_LINEARIZED_WIDTH if arch.is_convolutional else LINEARIZED_WIDTH)[ctx.profile]
        for label, momentum, reduction, out_dim, quick in LINEARIZED_VARIANTS:
            if ctx.quick and not quick:
                continue
            network = make_network(arch, width, out_dim)
            x, y = _data(ctx, "linearized", arch, out_dim)
            params_0 = network.init(jax.random.PRNGKey(ctx.seed_for("d1-linearized", arch.spec, label)), x.shape[1])
            solution = kernel_solution(network, params_0, x, y)
            kernel, eigenvalues, r_0, alpha = (np.asarray(a) for a in solution)
            scale = N_TRAIN if reduction == "mean" else 1.0
            learning_rate = scale * (1.0 / eigenvalues[-1] if momentum else 2.0 / (eigenvalues[-1] + eigenvalues[0]))
            loss_0 = 0.5 * float(np.sum(r_0**2)) / scale
            common = dict(learning_rate=learning_rate, momentum=momentum, reduction=reduction, linearized=True,
                          progress=False)
            result = train(network, params_0, x, y, max_steps=50_000, loss_threshold=1e-26 * loss_0, **common)
            endpoint = _relative(result.delta, jacobian_transpose_times(network.apply_fn, params_0, x, alpha))
            accumulator = float(np.linalg.norm(np.asarray(result.alpha) - alpha) / np.linalg.norm(alpha))
            early = train(network, params_0, x, y, max_steps=25, **common)
            r_t = y - np.asarray(linearized_apply(network.apply_fn, params_0)(early.params_f, x))
            telescoped = r_0.reshape(-1) - kernel @ np.asarray(early.alpha).reshape(-1)
            telescoping = float(np.linalg.norm(telescoped - r_t.reshape(-1)) / np.linalg.norm(r_0 - r_t))
            predicted = residual_recursion(kernel, r_0.reshape(-1), learning_rate, momentum,
                                           1.0 / scale, early.steps)
            recursion = float(np.linalg.norm(predicted - r_t.reshape(-1)) / np.linalg.norm(r_0 - r_t))
            name = f"{arch.named(width, short=True)}, {label}"
            condition = float(eigenvalues[-1] / eigenvalues[0])
            details = dict(steps=result.steps, stop_reason=result.stop_reason, final_loss=result.final_loss,
                           condition_number=condition, learning_rate=learning_rate)
            outcomes += [
                within(f"{name}: cond(K_0) (assumed by the tolerances below)", condition, MAX_CONDITION,
                       "the endpoint and accumulator errors are round-off times cond(K_0) (measured 7-13 for "
                       "relu:2 on these 8 sphere points, up to 723 with gap); above 1e3 the tolerances below lose "
                       "their reason"),
                within(f"{name}: ||Delta theta - J_0^T K^-1 r_0|| / ||Delta theta||", endpoint, ENDPOINT_TOLERANCE,
                       "exact in real arithmetic; float64 round-off times cond(K) <= 1e3 is ~1e-12 (measured <= 3.4e-13)",
                       **details),
                within(f"{name}: ||alpha_T - K^-1 r_0|| / ||K^-1 r_0||", accumulator, ACCUMULATOR_TOLERANCE,
                       "alpha_T = K^-1 (r_0 - r_T) exactly; the run stops at loss 1e-26 x loss_0, so "
                       "||K^-1 r_T|| <= 1e-13 cond(K) relative, plus round-off", **details),
                within(f"{name}: after 25 steps, r_0 - K alpha_T = y - f_lin(theta_T) (telescoping)", telescoping,
                       TELESCOPING_TOLERANCE, "exact at every step (no convergence needed); float64 round-off of a "
                       "few matmuls (measured <= 1.7e-15)",
                       steps=early.steps),
                within(f"{name}: after 25 steps, y - f_lin(theta_T) = the residual recursion with eta, beta, c",
                       recursion, RECURSION_TOLERANCE,
                       "the step the optimizer takes is the one asked for: the telescoping identity holds for any "
                       "step size, this does not (float64 round-off, measured <= 7.3e-16)",
                       steps=early.steps, learning_rate=learning_rate),
            ]
    return outcomes


def _rate_outcome(arch: Architecture, fit, seeds: int, **details) -> Outcome:
    """Smooth networks (Architecture.smooth): the predicted exponent -1/2 must lie in the bootstrap interval.
    With a piecewise-linear activation anywhere in the chain only that the deviation decreases is known, so the
    interval must lie below 0, and the measured exponent is reported beside -1/2 as an open observation."""
    name = f"{arch.spec}: slope of ||Delta theta - J_0^T alpha|| / ||Delta theta|| vs width"
    sample = f"{seeds} seeds x {len(details['widths'])} widths, {fit.level:.0%} expanded percentile bootstrap over seeds"
    if not arch.smooth:
        outcome = slope_below(
            name, fit, 0.0,
            f"{sample}; a piecewise-linear phi: no rate is proven here (units whose pre-activation changes sign "
            "flip their gradient), only that the deviation shrinks; the exponent is reported beside the "
            "smooth-activation prediction -1/2, not tested against it", **details)
        outcome.details["open_observation"] = (
            f"measured exponent {fit.slope:.3f} [{fit.low:.3f}, {fit.high:.3f}] vs {SMOOTH_EXPONENT} predicted "
            "for smooth activations; the difference is not explained here")
        return outcome
    return rate_interval(
        name, fit, SMOOTH_EXPONENT,
        f"{sample}; every phi smooth: the Jacobian is Lipschitz in theta with constant O(m^-1/2) while ||Delta theta|| "
        "= O(1) (Lee et al. 2019, arXiv:1902.06720, Thm 2.1); an interval wider than 0.5 is inconclusive and "
        "fails (the full profile has more seeds and widths)", max_width=0.5, **details)


def check_deviation_rate(ctx: Context) -> list[Outcome]:
    """(ii) Standard training: ||Delta theta - J_0^T alpha|| / ||Delta theta|| vs width, fitted log-log slope
    with a bootstrap interval over seeds."""
    import jax

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from numerics.networks import make_network
    from numerics.training import jacobian_transpose_times, kernel_solution, train

    seeds = ctx.pick(4, 8)
    outcomes = []
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    plotted_widths = []
    for arch in _archs(ctx, RATE_ARCHS[ctx.profile]):
        widths = (CONV_RATE_WIDTHS if arch.is_convolutional else RATE_WIDTHS)[ctx.profile]
        if arch.width_rate_obstacle:
            outcomes.append(not_applicable(f"{arch.spec}: slope of ||Delta theta - J_0^T alpha|| / ||Delta theta|| "
                                           "vs width", arch.width_rate_obstacle))
            continue
        # every seed draws its own data as well as its network, so the interval over seeds covers both draws (one
        # draw shared by all seeds made it conditional on that draw)
        data = [_data(ctx, "rate", arch, seed=seed) for seed in range(seeds)]
        deviations = np.zeros((seeds, len(widths)))
        accumulator_deviations = np.zeros((seeds, len(widths)))
        unconverged = None
        for column, width in enumerate(widths):
            network = make_network(arch, width, 1)
            for seed, (x, y) in enumerate(data):
                key = jax.random.PRNGKey(ctx.seed_for("d1-rate", arch.spec, width, seed))
                params_0 = network.init(key, x.shape[1])
                solution = kernel_solution(network, params_0, x, y)
                eigenvalues = np.asarray(solution.eigenvalues)
                result = train(network, params_0, x, y, learning_rate=2.0 / (eigenvalues[-1] + eigenvalues[0]),
                               max_steps=RATE_TRAIN_STEPS, loss_threshold=RATE_LOSS_THRESHOLD, progress=False)
                if result.stop_reason != "threshold":
                    unconverged = (f"m={width} seed {seed}: training stopped by {result.stop_reason} at loss "
                                   f"{result.final_loss:.3g} after {result.steps} steps")
                    break
                delta = result.delta
                deviations[seed, column] = _relative(
                    jacobian_transpose_times(network.apply_fn, params_0, x, solution.alpha), delta)
                accumulator_deviations[seed, column] = _relative(
                    jacobian_transpose_times(network.apply_fn, params_0, x, result.alpha), delta)
            if unconverged:
                break
            ctx.advance(f"D1(ii) {arch.spec} width {width}")
        if unconverged:  # this architecture's rate is not measured; the other architectures' still are
            outcomes.append(Outcome(
                name=f"{arch.spec}: slope of ||Delta theta - J_0^T alpha|| / ||Delta theta|| vs width", passed=False,
                measured=f"not computable: {unconverged}",
                expected=f"training to loss <= {RATE_LOSS_THRESHOLD:g} within {RATE_TRAIN_STEPS} steps",
                reason="the endpoint alpha is the kernel solution only at convergence: a rate measured on unconverged "
                       "networks would mix the deviation with the remaining loss"))
            continue
        rng = ctx.rng("d1-bootstrap", arch.spec)
        fit = bootstrap_loglog_slope(widths, deviations, rng=rng, aggregate=geometric_mean_over_seeds)
        accumulator_fit = bootstrap_loglog_slope(widths, accumulator_deviations, rng=rng,
                                                 aggregate=geometric_mean_over_seeds)
        geometric = geometric_mean_over_seeds(deviations)
        outcomes.append(at_least(
            f"{arch.spec}: geometric-mean deviation at the smallest width ({widths[0]})", geometric[0], DEVIATION_FLOOR,
            "the rate is a rate of a deviation only above round-off (a network trained as its own linearization "
            "leaves ~1e-11)"))
        outcomes.append(_rate_outcome(arch, fit, seeds, widths=list(widths),
                                      geometric_mean_deviation=geometric, per_seed=deviations,
                                      accumulator_alpha_fit=accumulator_fit.as_dict(),
                                      accumulator_alpha_geometric_mean=geometric_mean_over_seeds(
                                          accumulator_deviations)))
        line = ax.loglog(widths, geometric, "o",
                         label=f"{arch.spec}: slope {fit.slope:.2f} [{fit.low:.2f}, {fit.high:.2f}]")
        color = line[0].get_color()
        for column, width in enumerate(widths):
            ax.loglog([width] * seeds, deviations[:, column], ".", color=color, alpha=0.35)
        intercept = np.mean(np.log(geometric) - fit.slope * np.log(np.asarray(widths, float)))
        ax.loglog(widths, np.exp(intercept) * np.asarray(widths, float) ** fit.slope, "-", color=color)
        plotted_widths += list(widths)
    drawn = [o for o in outcomes if o.applicable and "widths" in o.details]  # measured (not n/a, not unconverged)
    if not drawn:
        plt.close(fig)
        return outcomes
    reference = np.asarray(drawn[0].details["widths"], float)
    ax.loglog(reference, drawn[0].details["geometric_mean_deviation"][0] * (reference / reference[0]) ** -0.5,
              "k:", label="m^-1/2 (smooth-activation prediction)")
    ax.plot([], [], ".", color="gray", alpha=0.5, label="single seeds")
    import matplotlib.ticker

    ticks = sorted(set(plotted_widths))
    ax.set_xticks(ticks, [str(w) for w in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("width m (hidden units or channels)")
    ax.set_ylabel("||dtheta - J_0^T alpha|| / ||dtheta|| (ratio)")
    readable_log_ticks(ax, "y")
    ax.set_title("D1(ii): distance from the linearized endpoint")
    ax.legend(fontsize=8)
    save_figure(ctx, fig, "d1_deviation_vs_width.png", drawn)
    return outcomes


# ------------------------------------------------------------------------------------------------
# Counterexamples
# ------------------------------------------------------------------------------------------------

def counterexample_accumulators(ctx: Context) -> list[Outcome]:
    """The wrong accumulators (no 1/N for a mean loss; plain residual sum under momentum) fail."""
    from theory.dynamics import gd_certificates, spot_check

    rng = ctx.rng("d1-wrong")
    cases = (("mean loss, alpha = sum_s eta_s r_s (1/N missing)",
              gd_certificates(2, reduction="mean", dual_scale=1)),
             ("heavy-ball, alpha = sum_s eta_s r_s (momentum ignored)",
              gd_certificates(2, momentum=True, accumulator="residual")))
    outcomes = []
    for label, certs in cases:
        telescoping = certs[-1]
        spot = spot_check(telescoping, rng)
        outcomes.append(Outcome(
            name=f"{label}: K alpha_T - (r_0 - r_T) is not 0", passed=not telescoping.proven and spot > 1e-6,
            measured=spot, expected="!= 0 (symbolic) and > 1e-6 at a random point",
            reason="a wrong accumulator must leave a residual the certificate detects", kind="counterexample",
            details={"residual": str(telescoping.residual)[:400]}))
    return outcomes


CLAIM = register(Claim(
    id="D1",
    quick_seconds=15,
    title="Lazy-training dynamics and the dual coefficients alpha",
    statement=("For the linearized model under gradient flow on MSE, "
               "theta_t - theta_0 = J_0^T K^-1 (I - exp(-eta K t)) (y - f_0) -> J_0^T alpha, "
               "alpha = K^-1 (y - f_0) = eta int_0^inf r(t) dt; for discrete GD and "
               "heavy-ball momentum the dual accumulator (the optimizer's step applied to -c r_s, c = 1 or 1/N) "
               "telescopes to K alpha_T = r_0 - r_T. For the network itself the deviation from J_0^T alpha shrinks "
               "with width."),
    assumptions=["MSE loss, full batch", "K_0 = J_0 J_0^T invertible (distinct inputs, P >= N C)",
                 "NTK parametrization for the width rate",
                 "convolutional chains (--arch): inputs are 3x3 images (the next square of d = 8); the width rate needs "
                 "every convolution's channels set by the width (no c=)"],
    derivation=(
        "Along an eigenvector of K (eigenvalue k) the residual obeys dr/dt = -eta k r, so r(t) = exp(-eta K t) r_0 "
        "and theta_t - theta_0 = J^T a(t) with da/dt = eta r(t): integrating gives "
        "a(t) = K^-1 (I - exp(-eta K t)) r_0, "
        "which is 0 at t = 0 and tends to alpha = K^-1 r_0 = eta int_0^inf r(t) dt. For discrete steps every "
        "gradient -c J^T r_s lies in the row space of J, and so does heavy-ball's velocity; by induction "
        "theta_s - theta_0 = J^T alpha_s and m_s = -J^T mu_s with mu_{s+1} = beta mu_s + c r_s and "
        "alpha_{s+1} = alpha_s + eta_s mu_{s+1}, and the sum telescopes to K alpha_T = r_0 - r_T. The "
        "accumulators of the reference code (no 1/N for a mean loss; the plain residual sum under momentum) "
        "break the telescoping. At finite width the network is not its linearization; the deviation of "
        "theta_f - theta_0 from J_0^T alpha is measured against width."),
    derivations=[
        Step("flow modes", "one eigen-mode of K: ODE, initial value, limit, integral (any size)", derive_modes,
             tolerance="exact symbolic identities; the unreduced expressions are also evaluated with 30 digits at "
                       f"random points and must be below {SPOT_TOLERANCE:g} (measured <= 2e-28)"),
        Step("flow, explicit Jacobian", "generic 2x3 Jacobian J = Q diag(s) W: ODE, initial value, r(t), limit, "
             "integral", derive_flow, tolerance="exact, as above"),
        Step("GD and heavy-ball, unrolled", "2 (quick) or 3 (full) steps, free step sizes, sum and mean loss: "
             "theta_T - theta_0 = J^T alpha_T and K alpha_T = r_0 - r_T; the unrolled iterates (theta_T - theta_0, "
             "alpha_T, r_T) at exact random dyadic rationals (J 2x3, theta_0, r_0, one step size, beta) against "
             "numerics.training.train on f(theta) = J theta (the identities hold for any loop that feeds primal and "
             "dual the same residual; this ties the loop to optax's sgd)", derive_discrete,
             tolerance=f"exact, as above; {OPTIMIZER_TOLERANCE:g} relative against training (float64 round-off of a "
                       "few 2x3 products; dyadic inputs make it exact: measured 0)"),
        Step("induction", "one step preserves the row-space hypotheses, any sizes (matrix symbols)",
             derive_induction, tolerance="exact (matrix-symbol algebra), and exactly 0 at explicit random matrices "
                                         "(sizes 3 and 4, exact rationals; theory.dynamics.matrix_spot_check)"),
    ],
    checks=[
        Step("(i) linearized endpoint", "GD / heavy-ball / mean loss on the exact linearization "
             "(numerics.training.train): theta_f - theta_0 against J_0^T K^-1 r_0, the recorded alpha against "
             "K^-1 r_0, the telescoping identity after 25 steps, and the residual after 25 steps against the "
             "residual recursion with the step size asked for (numpy); cond(K_0) is asserted", check_linearized,
             tolerance=f"{ENDPOINT_TOLERANCE:g} relative for the endpoint: exact in real arithmetic, float64 "
                       "round-off times cond(K_0) <= 1e3 (asserted; measured 7-13 for relu:2, up to 723 with gap) is "
                       f"~1e-12 (measured <= 3.4e-13); {ACCUMULATOR_TOLERANCE:g} for alpha, as the run stops at loss "
                       f"1e-26 x loss_0; {TELESCOPING_TOLERANCE:g} for the telescoping identity, which holds at every "
                       f"step without convergence (measured <= 1.7e-15); {RECURSION_TOLERANCE:g} for the recursion "
                       "(measured <= 7.3e-16)"),
        Step("(ii) deviation rate", "standard (non-linearized) training to loss 1e-22 at widths 32-256 (quick; "
             "32-96 channels for convolutional chains), 4 seeds each, every seed drawing its own data and network: "
             "||Delta theta - J_0^T alpha|| / ||Delta theta|| against width, log-log slope of the geometric mean over "
             "seeds with a 95% bootstrap interval over seeds; the deviation at the smallest width must be above "
             "round-off", check_deviation_rate,
             tolerance="smooth activations: the predicted exponent -1/2 must lie in the interval, and an interval "
                       "wider than 0.5 is inconclusive and fails (measured -0.50 [-0.61, -0.44] to -0.57 [-0.63, "
                       "-0.50] for erf:2 over --seed 0-4); a ReLU-type activation anywhere in the chain: only a "
                       "decrease is known, so the whole interval must lie below 0 (measured -0.36 [-0.50, -0.14] for "
                       "relu:2, upper ends -0.10 to -0.30 over --seed 0-9; -0.29 [-0.53, -0.15] for conv3x3 > relu > "
                       "conv3x3 > relu > gap > dense), and the exponent is reported beside -1/2; deviation at the "
                       f"smallest width >= {DEVIATION_FLOOR:g} (measured 0.45 for relu:2)"),
    ],
    counterexamples=[
        Step("wrong accumulators", "missing 1/N; momentum ignored", counterexample_accumulators,
             tolerance="the symbolic residual must be nonzero and exceed 1e-6 at a random point (true "
                       "identities give < 1e-25 there)"),
    ],
    uses_archs=True,
    observations=[
        "For bias-free ReLU networks (relu:2, widths 32-256) the deviation shrinks, but the fitted exponent "
        "(-0.33 to -0.51 over --seed 0-9, quick) is mostly above the -1/2 proven for smooth activations. Units whose "
        "pre-activation changes sign during training flip their gradient by O(1), which could give a slower rate; this "
        "is not derived here, so the check asks only for a decrease and reports the exponent.",
        "With --arch \"conv3:sb=0.1 > erf > conv3 > erf > gap > dense\" (smooth, 1D, 8-pixel inputs) the deviation rate "
        "fails: the fitted exponent is -0.25 [-0.43, -0.16] at 32-96 channels (quick) and was -0.29 [-0.30, -0.28] at "
        "32-256 (a plain percentile interval, one data draw shared by the seeds), while the relative deviation itself "
        "is still 1.7 ... 0.95. Global average pooling leaves K_0 ill-conditioned (cond 185-202 against 7-13 for "
        "relu:2), so Delta theta is large and these widths are not yet lazy; the check reports this as a failure "
        "rather than widening its interval.",
        "The quick profile's widths (32-256) are pre-asymptotic for some smooth activations: --arch "
        "\"expr:2:phi=tanh(x)\" fits -0.396 [-0.551, -0.336] (seed 0: passes, near the edge), while the full profile "
        "(widths 64-2048, 8 seeds, then one data draw shared by the seeds; 349 s) fitted -0.486 [-0.513, -0.456] "
        "(plain percentile) and passed; the Extending example's softplus:2 (docs/extending.md) fits -0.326 "
        "[-0.384, -0.227] on the quick profile and fails (full not run). Use --profile full before reading a "
        "quick-profile failure of (ii) as a failure of the rate."],
    references=["Lee et al. 2019, Wide neural networks of any depth evolve as linear models under gradient "
                "descent, arXiv:1902.06720", "Loo et al. 2023, arXiv:2302.01428"],
))
