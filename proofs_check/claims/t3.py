"""T3: reconstruction is dataset distillation, RKIP (docs/claims.md#t3; Loo et al. 2023, arXiv:2302.01428,
Sec. 6)."""

from __future__ import annotations

import numpy as np
import scipy.linalg

from proofs_check.claims.r1 import certified
from proofs_check.registry import Claim, Context, Outcome, Step, at_least, exact, register, within
from theory.architecture import parse_spec

ARCHS = ("relu:2", "erf:3:sw=1.5:sb=0.1")
N_TRAIN, N_DISTILLED, DIM = 10, 4, 6
IDENTITY_TOLERANCE = 1e-12
IDENTITY_REASON = ("the same float64 kernel blocks on both sides, one Cholesky solve apart (cond(K_SS) <= ~1e2): "
                   "measured <= 2.8e-15 of a^T K_TT a for relu:2 (seeds 0-2), <= 2.6e-14 for erf:3 (full, seeds 0-5); a missing K_SS factor in y_S = K_SS lambda is O(1) off")
LOSS_REASON = ("the same formulas on the same float64 kernel blocks, summed block by block (cond(K_SS) <= ~1e2): "
               "measured <= 8e-14 (erf:3, seeds 0-2; relu:2 <= 2.9e-15); a dropped factor (the 2 of the cross term, the 1/2N) is O(1) off")
EQUALITY_TOLERANCE = 1e-12
EQUALITY_REASON = ("attained in exact arithmetic; x_0 enters L, the gap and Theta(x_0, x_0) through separate kernel "
                   "calls, exact at coincident inputs to <= 1.5e-15 (K1(b)): measured <= 1.1e-16 for (a), <= 8.9e-16 "
                   "for (b) at seeds 0-2 (1.4e-9 while edge kernels were off by 1.5e-8); a missing square root or a "
                   "wrong eigenvalue is O(0.1) off")


# ------------------------------------------------------------------------------------------------
# The quantities (float64), from kernel blocks
# ------------------------------------------------------------------------------------------------

def attack_loss(k_tt, k_ts, k_ss, alpha, lam) -> float:
    """alpha^T K_TT alpha - 2 alpha^T K_TS lambda + lambda^T K_SS lambda (R1's kernel form)."""
    return float(alpha @ k_tt @ alpha - 2 * alpha @ k_ts @ lam + lam @ k_ss @ lam)


def distilled_coefficients(k_ss, y_s) -> np.ndarray:
    """beta = K_SS^-1 y_S: f_S = Theta(., X_S) beta is kernel regression (no ridge) on (X_S, y_S)."""
    return scipy.linalg.cho_solve(scipy.linalg.cho_factor(k_ss, lower=True), y_s)


def rkip_loss(k_tt, k_ts, k_ss, alpha, y_s) -> float:
    """||f_T - f_S||_H^2 by the reproducing property: a^T K_TT a - 2 a^T f_S(X_T) + ||f_S||_H^2."""
    beta = distilled_coefficients(k_ss, y_s)
    return float(alpha @ k_tt @ alpha - 2 * alpha @ (k_ts @ beta) + y_s @ beta)


def kip_error(k_tt, k_ts, k_ss, alpha, y_s) -> float:
    """sum_i (y_i - f_S(x_i))^2 with y = K_TT alpha (f_T interpolates y), no ridge."""
    return float(np.sum((k_tt @ alpha - k_ts @ distilled_coefficients(k_ss, y_s)) ** 2))


def pointwise_ratio(gap, loss, theta_xx):
    """|f_T(x) - f_S(x)| / (sqrt(L) sqrt(Theta(x, x))): bound (a) says <= 1."""
    return np.abs(gap) / (np.sqrt(loss) * np.sqrt(theta_xx))


def kip_ratio(k_tt, k_ts, k_ss, alpha, y_s) -> float:
    """KIP error / (lambda_max(K_TT) L_RKIP): bound (b) says <= 1."""
    return kip_error(k_tt, k_ts, k_ss, alpha, y_s) / (float(np.linalg.eigvalsh(k_tt)[-1])
                                                       * rkip_loss(k_tt, k_ts, k_ss, alpha, y_s))


# ------------------------------------------------------------------------------------------------
# Problems
# ------------------------------------------------------------------------------------------------

def _sphere(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    z = rng.normal(size=(n, d))
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def _blocks(spec: str, x_t: np.ndarray, x_s: np.ndarray):
    """K_TT, K_TS, K_SS by the same calls numerics.attack.profiled_loss makes (so the values agree bitwise)."""
    from numerics.kernels import analytic_ntk

    arch = parse_spec(spec)
    return (np.asarray(analytic_ntk(arch, x_t)), np.asarray(analytic_ntk(arch, x_s, x_t)).T,
            np.asarray(analytic_ntk(arch, x_s)))


def _problem(ctx: Context, spec: str, draw: int):
    """N = 10 training points on S^5 with +-1 labels (alpha = K_TT^-1 y), M = 4 distilled points, and two
    coefficient vectors: random lambda and the attack's profiled lambda* (numerics.attack.profiled_loss)."""
    import jax.numpy as jnp

    from numerics.attack import profiled_loss

    rng = ctx.rng("t3-problem", spec, draw)
    x_t, x_s = _sphere(rng, N_TRAIN, DIM), _sphere(rng, N_DISTILLED, DIM)
    k_tt, k_ts, k_ss = _blocks(spec, x_t, x_s)
    alpha = np.linalg.solve(k_tt, rng.choice([-1.0, 1.0], size=N_TRAIN))
    profiled, lam_star = profiled_loss(parse_spec(spec), jnp.asarray(x_t), jnp.asarray(alpha[:, None]),
                                       jnp.asarray(x_s))
    return dict(x_t=x_t, x_s=x_s, k_tt=k_tt, k_ts=k_ts, k_ss=k_ss, alpha=alpha,
                lam_random=rng.normal(size=N_DISTILLED) * np.max(np.abs(alpha)),
                lam_star=np.asarray(lam_star)[:, 0], profiled=float(profiled))


# ------------------------------------------------------------------------------------------------
# Derivations
# ------------------------------------------------------------------------------------------------

def derive_identity(ctx: Context) -> list[Outcome]:
    """Attack loss = RKIP under y_S = K_SS lambda, its inverse map, and RKIP as a feature-space distance."""
    from theory.distillation import rkip_certificates

    rng = ctx.rng("t3-identity")
    return [certified(c, rng, needs_algebra=True) for c in rkip_certificates()]


def derive_bounds(ctx: Context) -> list[Outcome]:
    """(a) Lagrange's identity; (b) the residual decomposition, orthogonality and the Rayleigh sum of squares."""
    from theory.distillation import kip_bound_certificates, pointwise_bound_certificate

    rng = ctx.rng("t3-bounds")
    return [certified(c, rng) for c in [pointwise_bound_certificate()] + kip_bound_certificates()]


def derive_rationals(ctx: Context) -> list[Outcome]:
    """The identity, both bounds and the converse's counterexample at random exact-rational kernels."""
    from theory.distillation import rational_evaluations

    outcomes = []
    for seed in range(ctx.pick(3, 20)):
        for evaluation in rational_evaluations(ctx.seed_for("t3-rational", seed)):
            if not evaluation.name.startswith("T3"):
                continue
            name = f"{evaluation.name} (exact rationals, draw {seed})"
            if evaluation.relation == "== 0":
                outcomes.append(exact(name, evaluation.value))
            else:
                text = str(evaluation.value)  # the near-tight instance's rationals run to ~70 digits
                measured = (text if len(text) <= 40
                            else f"{float(evaluation.value):.6g} (a rational of {len(text)} chars)")
                outcomes.append(Outcome(name=name, passed=evaluation.holds, measured=measured,
                                        expected=f"{evaluation.relation} (exact)",
                                        reason="exact rational arithmetic: no tolerance", kind="derivation"))
    return outcomes


# ------------------------------------------------------------------------------------------------
# Checks
# ------------------------------------------------------------------------------------------------

def _specs(ctx: Context) -> tuple[str, ...]:
    return ctx.pick(ARCHS[:1], ARCHS)


def check_identity(ctx: Context) -> list[Outcome]:
    """L(X_S, lambda) = L_RKIP(X_S, K_SS lambda) at random lambda, and at the attack's lambda* the profiled loss
    of numerics.attack equals L_RKIP(X_S, K_SS lambda*)."""
    outcomes = []
    for spec in _specs(ctx):
        random_error = profiled_error = 0.0
        draws = ctx.pick(10, 50)
        for draw in range(draws):
            p = _problem(ctx, spec, draw)
            blocks = (p["k_tt"], p["k_ts"], p["k_ss"])
            scale = float(p["alpha"] @ p["k_tt"] @ p["alpha"])
            lam = p["lam_random"]
            random_error = max(random_error, abs(attack_loss(*blocks, p["alpha"], lam)
                                                 - rkip_loss(*blocks, p["alpha"], p["k_ss"] @ lam)) / scale)
            profiled_error = max(profiled_error, abs(p["profiled"] - rkip_loss(*blocks, p["alpha"],
                                                                                p["k_ss"] @ p["lam_star"])) / scale)
        label = f"{spec}, {draws} draws, N = {N_TRAIN}, M = {N_DISTILLED} on S^{DIM - 1}"
        outcomes += [
            within(f"{label}: max |L(X_S, lambda) - L_RKIP(X_S, K_SS lambda)| / a^T K_TT a, random lambda",
                   random_error, IDENTITY_TOLERANCE, IDENTITY_REASON),
            within(f"{label}: max |profiled L*(X_S) (numerics.attack) - L_RKIP(X_S, K_SS lambda*)| / a^T K_TT a",
                   profiled_error, IDENTITY_TOLERANCE, IDENTITY_REASON),
        ]
    return outcomes


LOSS_BLOCK_ROWS = 4
"""numerics.distill's losses are read in blocks of 4 target rows: N = 10 gives 3 blocks, the last padded with 2
masked rows, so the blocking and the mask are both exercised."""


def check_distill_losses(ctx: Context) -> list[Outcome]:
    """numerics.distill's rkip_loss and kip_loss (the losses `proofs-check distill` and claim T4 optimize; blocked,
    masked, ridge 0) against L_RKIP and the KIP error computed here from the same kernel blocks."""
    import jax
    import jax.numpy as jnp

    from numerics import distill

    outcomes = []
    for spec in _specs(ctx):
        arch = parse_spec(spec)
        rkip = jax.jit(lambda *args: distill.rkip_loss(arch, *args[:5], alpha_norm_sq=args[5], ridge_factor=0.0))
        kip = jax.jit(lambda *args: distill.kip_loss(arch, *args, ridge_factor=0.0))
        rkip_error = kip_error_found = 0.0
        draws = ctx.pick(10, 50)
        for draw in range(draws):
            p = _problem(ctx, spec, draw)
            blocks = (p["k_tt"], p["k_ts"], p["k_ss"])
            y_s = p["k_ss"] @ p["lam_random"]
            y_t = p["k_tt"] @ p["alpha"]
            scale = float(p["alpha"] @ p["k_tt"] @ p["alpha"])
            x_blocks, alpha_blocks, mask = distill.target_blocks(p["x_t"], p["alpha"][:, None], LOSS_BLOCK_ROWS)
            _, y_blocks, _ = distill.target_blocks(p["x_t"], y_t[:, None], LOSS_BLOCK_ROWS)
            ours = float(rkip(jnp.asarray(p["x_s"]), jnp.asarray(y_s[:, None]), x_blocks, alpha_blocks, mask, scale))
            rkip_error = max(rkip_error, abs(ours - rkip_loss(*blocks, p["alpha"], y_s)) / scale)
            ours = float(kip(jnp.asarray(p["x_s"]), jnp.asarray(y_s[:, None]), x_blocks, y_blocks, mask))
            kip_error_found = max(kip_error_found, abs(2 * N_TRAIN * ours - kip_error(*blocks, p["alpha"], y_s))
                                  / float(y_t @ y_t))
        label = f"{spec}, {draws} draws, N = {N_TRAIN} in blocks of {LOSS_BLOCK_ROWS} (2 rows masked), M = {N_DISTILLED}"
        outcomes += [
            within(f"{label}: max |numerics.distill.rkip_loss - L_RKIP| / a^T K_TT a, y_S = K_SS lambda", rkip_error,
                   IDENTITY_TOLERANCE, LOSS_REASON),
            within(f"{label}: max |2 N numerics.distill.kip_loss - KIP error| / ||y||^2", kip_error_found,
                   IDENTITY_TOLERANCE, LOSS_REASON),
        ]
    return outcomes


def _gap_and_diagonal(spec: str, x, p, beta):
    """(f_T - f_S)(x) and Theta(x, x) for a batch of points x (n, d), jax-differentiable."""
    import jax
    import jax.numpy as jnp

    from numerics.kernels import analytic_ntk

    arch = parse_spec(spec)
    gap = analytic_ntk(arch, x, jnp.asarray(p["x_t"])) @ jnp.asarray(p["alpha"]) \
        - analytic_ntk(arch, x, jnp.asarray(p["x_s"])) @ jnp.asarray(beta)
    diagonal = jax.vmap(lambda point: analytic_ntk(arch, point[None], point[None])[0, 0])(x)
    return gap, diagonal


def _configurations(ctx: Context, spec: str):
    """(name, problem, beta, L) for the bound checks: the attack's lambda* and a random lambda."""
    p = _problem(ctx, spec, 0)
    for name, lam in (("lambda*", p["lam_star"]), ("random lambda", p["lam_random"])):
        y_s = p["k_ss"] @ lam
        yield name, p, distilled_coefficients(p["k_ss"], y_s), rkip_loss(p["k_tt"], p["k_ts"], p["k_ss"],
                                                                           p["alpha"], y_s)


def _equality_problem(spec: str):
    """T = {x_0, x_1}, S = {x_1} with beta = alpha_1: f_T - f_S = alpha_0 Theta(x_0, .), so at x = x_0 the
    bound (a) holds with equality (Cauchy-Schwarz with parallel vectors)."""
    rng = np.random.default_rng(7)
    x_t = _sphere(rng, 2, DIM)
    k_tt, k_ts, k_ss = _blocks(spec, x_t, x_t[1:])
    alpha = np.array([0.8, -1.3])
    p = dict(x_t=x_t, x_s=x_t[1:], alpha=alpha, k_tt=k_tt, k_ts=k_ts, k_ss=k_ss)
    beta = alpha[1:]
    return p, beta, attack_loss(k_tt, k_ts, k_ss, alpha, beta)


def check_pointwise_random(ctx: Context) -> list[Outcome]:
    """Bound (a) at >= 1000 random points of the sphere (and a Gaussian cloud), plus its equality case."""
    import jax.numpy as jnp

    outcomes = []
    rng = ctx.rng("t3-random-points")
    count = ctx.pick(1000, 5000)
    for spec in _specs(ctx):
        points = np.concatenate([_sphere(rng, count // 2, DIM), 2.0 * rng.normal(size=(count - count // 2, DIM))])
        worst = {}
        for name, p, beta, loss in _configurations(ctx, spec):
            gap, diagonal = _gap_and_diagonal(spec, jnp.asarray(points), p, beta)
            worst[name] = float(np.max(pointwise_ratio(np.asarray(gap), loss, np.asarray(diagonal))))
        outcomes.append(within(f"{spec}: max over {count} random points of |f_T - f_S|(x) / (sqrt(L) "
                               "sqrt(Theta(x, x))), lambda* and random lambda", max(worst.values()), 1.0,
                               "bound (a) is a theorem: no tolerance (the equality case below shows the ratio is "
                               "computed at full scale)", per_configuration=worst))
        p, beta, loss = _equality_problem(spec)
        gap, diagonal = _gap_and_diagonal(spec, jnp.asarray(p["x_t"][:1]), p, beta)
        ratio = float(pointwise_ratio(np.asarray(gap), loss, np.asarray(diagonal))[0])
        outcomes.append(within(f"{spec}: equality case f_T - f_S = alpha_0 Theta(x_0, .): |ratio(x_0) - 1|",
                               abs(ratio - 1.0), EQUALITY_TOLERANCE, EQUALITY_REASON, ratio=ratio))
    return outcomes


def _ascend(spec: str, p, beta, loss: float, starts: np.ndarray, steps: int) -> np.ndarray:
    """Gradient ascent (optax Adam, step 0.05 decaying to 1e-3) on the ratio of bound (a) over x = z / |z|,
    from every start at once; returns the final ratios."""
    import jax
    import jax.numpy as jnp
    import optax

    def ratio(z):
        x = z / jnp.linalg.norm(z, axis=-1, keepdims=True)
        gap, diagonal = _gap_and_diagonal(spec, x, p, beta)
        return jnp.abs(gap) / (jnp.sqrt(loss) * jnp.sqrt(diagonal))

    optimizer = optax.adam(optax.exponential_decay(0.05, steps, 1e-3 / 0.05))

    def step(carry, _):
        z, state = carry
        grad = jax.grad(lambda v: -jnp.sum(ratio(v)))(z)
        with jax.numpy_dtype_promotion("standard"):
            updates, state = optimizer.update(grad, state, z)
        return (optax.apply_updates(z, updates), state), None

    @jax.jit
    def run(z0):
        (z, _), _ = jax.lax.scan(step, (z0, optimizer.init(z0)), None, length=steps)
        return ratio(z)

    return np.asarray(run(jnp.asarray(starts)))


def check_pointwise_adversarial(ctx: Context) -> list[Outcome]:
    """Bound (a) at >= 20 points found by gradient ascent on the ratio; on the equality configuration the same
    ascent must find the maximum 1 (so the search can find what it looks for)."""
    outcomes = []
    rng = ctx.rng("t3-adversarial")
    starts_count, steps = ctx.pick(24, 64), ctx.pick(200, 600)
    for spec in _specs(ctx):
        found = {}
        for name, p, beta, loss in _configurations(ctx, spec):
            found[name] = _ascend(spec, p, beta, loss, rng.normal(size=(starts_count, DIM)), steps)
        best = max(float(np.max(v)) for v in found.values())
        outcomes.append(within(f"{spec}: max ratio after {steps} ascent steps from {starts_count} starts per "
                               "configuration (lambda*, random lambda)", best, 1.0,
                               "bound (a) is a theorem: no tolerance",
                               per_configuration_max={k: float(np.max(v)) for k, v in found.items()},
                               per_configuration_median={k: float(np.median(v)) for k, v in found.items()}))
        p, beta, loss = _equality_problem(spec)
        ratios = _ascend(spec, p, beta, loss, rng.normal(size=(starts_count, DIM)), steps)
        outcome = within(f"{spec}: equality configuration, |max ascended ratio - 1|", abs(float(np.max(ratios)) - 1),
                         1e-4, "the ascent reaches the attained maximum (measured 9e-6 below it; Adam's final step "
                         f"is 1e-3); never above 1 + {EQUALITY_TOLERANCE:g} (the equality tolerance)",
                         max_ratio=float(np.max(ratios)))
        outcome.passed = outcome.passed and float(np.max(ratios)) <= 1 + EQUALITY_TOLERANCE
        outcomes.append(outcome)
    return outcomes


def check_kip_bound(ctx: Context) -> list[Outcome]:
    """Bound (b) on drawn sets (random and profiled lambda), and its equality case y = top eigenvector of K_TT,
    f_S = 0 (beta = 0)."""
    outcomes = []
    for spec in _specs(ctx):
        ratios = []
        draws = ctx.pick(10, 50)
        for draw in range(draws):
            p = _problem(ctx, spec, draw)
            blocks = (p["k_tt"], p["k_ts"], p["k_ss"])
            for lam in (p["lam_random"], p["lam_star"]):
                ratios.append(kip_ratio(*blocks, p["alpha"], p["k_ss"] @ lam))
        outcomes.append(within(f"{spec}, {draws} draws x 2 lambdas: max KIP error / (lambda_max(K_TT) L_RKIP)",
                               max(ratios), 1.0, "bound (b) is a theorem: no tolerance",
                               median_ratio=float(np.median(ratios))))
        p = _problem(ctx, spec, 0)
        top = np.linalg.eigh(p["k_tt"])[1][:, -1]
        ratio = kip_ratio(p["k_tt"], p["k_ts"], p["k_ss"], np.linalg.solve(p["k_tt"], top), np.zeros(N_DISTILLED))
        outcomes.append(within(f"{spec}: equality case y = top eigenvector of K_TT, y_S = 0: |ratio - 1|",
                               abs(ratio - 1), EQUALITY_TOLERANCE, EQUALITY_REASON, ratio=ratio))
    return outcomes


# ------------------------------------------------------------------------------------------------
# Counterexample
# ------------------------------------------------------------------------------------------------

def counterexample_converse(ctx: Context) -> list[Outcome]:
    """KIP error 0 does not imply f_T = f_S: label the training set with f_S itself (y = K_TS beta). Then
    f_S fits every training label exactly, but f_T, the interpolant of those labels on X_T, is the projection
    of f_S onto span Theta(., X_T) and differs from f_S off the training set."""
    import jax.numpy as jnp

    spec = ARCHS[0]
    rng = ctx.rng("t3-converse")
    x_t, x_s = _sphere(rng, N_TRAIN, DIM), _sphere(rng, N_DISTILLED, DIM)
    k_tt, k_ts, k_ss = _blocks(spec, x_t, x_s)
    beta = rng.normal(size=N_DISTILLED)
    y = k_ts @ beta
    alpha = np.linalg.solve(k_tt, y)
    y_s = k_ss @ beta
    kip = kip_error(k_tt, k_ts, k_ss, alpha, y_s)
    loss = rkip_loss(k_tt, k_ts, k_ss, alpha, y_s)
    norm_s = float(y_s @ distilled_coefficients(k_ss, y_s))
    probe = _sphere(rng, 1000, DIM)
    p = dict(x_t=x_t, x_s=x_s, alpha=alpha)
    gap, _ = _gap_and_diagonal(spec, jnp.asarray(probe), p, beta)
    from numerics.kernels import analytic_ntk

    f_s = np.asarray(analytic_ntk(parse_spec(spec), jnp.asarray(probe), jnp.asarray(x_s))) @ beta
    relative_gap = float(np.max(np.abs(np.asarray(gap)))) / float(np.max(np.abs(f_s)))
    return [
        within(f"{spec}, N = {N_TRAIN}, M = {N_DISTILLED}, y = f_S(X_T): KIP error / ||y||^2", kip / float(y @ y),
               1e-20, "exact in real arithmetic; float64 leaves 1.9e-31 (measured): the squared residual of a solve"),
        at_least("the same sets: L_RKIP / ||f_S||_H^2", loss / norm_s, 1e-2,
                 "f_S has a component orthogonal to span Theta(., X_T) (strictly PD kernel, X_S off X_T): measured "
                 "0.84; the converse would need 0"),
        at_least("the same sets: max over 1000 sphere points |f_T - f_S| / max |f_S|", relative_gap, 0.05,
                 "the functions differ off the training set by a visible fraction (measured 0.80)"),
    ]


CLAIM = register(Claim(
    id="T3",
    quick_seconds=7,
    title="Reconstruction is dataset distillation (RKIP)",
    statement=(
        "Run the infinite-width attack with fewer reconstructions than training points (M < N) and relabel its "
        "coefficients as targets, y_S = K_SS lambda (one-to-one when K_SS is invertible). Then the attack loss is "
        "exactly the RKIP distillation loss ||f_T - f_S||_H^2, the squared RKHS distance between the trained "
        "function change f_T = Theta(., X_T) alpha and kernel regression on the reconstructed set, f_S = "
        "Theta(., X_S) K_SS^-1 y_S: the attack distils. Two consequences: (a) at every input x, |f_T(x) - "
        "f_S(x)| <= sqrt(L) sqrt(Theta(x, x)), so a small attack loss means the reconstructed set reproduces the "
        "model's predictions everywhere; (b) if f_T interpolates the targets y, the KIP error sum_i (y_i - "
        "f_S(x_i))^2 (no ridge) is at most lambda_max(K_TT) times L. The converse of (b) is false: the KIP error "
        "can vanish while f_S and f_T differ away from the training points."),
    assumptions=["K_SS invertible (distinct distilled points, strictly PD kernel)",
                 "f_T = Theta(., X_T) alpha with alpha the trained dual coefficients (D1); for (b), y = K_TT alpha",
                 "no ridge in the KIP error"],
    derivation=(
        "Expand ||f_T - f_S||_H^2 with the reproducing property <Theta(., a), Theta(., b)>_H = Theta(a, b): it is "
        "alpha^T K_TT alpha - 2 alpha^T K_TS beta + beta^T K_SS beta with beta = K_SS^-1 y_S, which is the attack's "
        "kernel-form loss at lambda = beta. For (a), g = f_T - f_S satisfies g(x) = <g, Theta(x, .)>_H, and "
        "Cauchy-Schwarz bounds it by ||g||_H ||Theta(x, .)||_H = sqrt(L) sqrt(Theta(x, x)); written in features "
        "this is Lagrange's identity, an explicit sum of squares. For (b), the KIP residual y - f_S(X_T) is g "
        "evaluated on the training set, J_T u with u the feature vector of g and |u|^2 = L; |J_T u|^2 <= "
        "lambda_max(J_T^T J_T) |u|^2 and J_T^T J_T has the nonzero eigenvalues of K_TT. Conversely, labelling "
        "the training set with f_S itself makes the KIP error zero while f_T is only the projection of f_S onto "
        "the span of the training sections."),
    derivations=[
        Step("attack loss = RKIP", "the identity under y_S = K_SS lambda, its inverse under lambda = K_SS^-1 y_S "
             "(symbolic kernels, N = 3, M = 2), and L_RKIP as a squared feature-space distance", derive_identity,
             tolerance="exact symbolic identities, each also evaluated with 30 digits at a random point"),
        Step("bounds (a) and (b)", "(a) L Theta(x, x) - g(x)^2 as a sum of squares; (b) the KIP residual as J_T u, "
             "Cayley-orthogonal factors of J_T, and the Rayleigh sum of squares", derive_bounds,
             tolerance="exact, as above"),
        Step("exact rationals", "the identity, both bounds and the converse's counterexample at random rational "
             "Gram matrices K = J J^T + I/2 (N = 4, M = 2); (b) decided exactly by Sylvester's criterion, also at "
             "a near-tight instance (y_S = 0, alpha = K_TT's top eigenvector rounded to a rational) where every "
             "leading minor of r I - K_TT but the determinant is > 0, so the determinant alone decides",
             derive_rationals, tolerance="exact rational arithmetic"),
    ],
    checks=[
        Step("identity on NTK blocks", "attack loss against L_RKIP at random lambda, and numerics.attack's "
             "profiled loss against L_RKIP at lambda* (N = 10, M = 4, d = 6; relu:2 quick, also erf:3 full)",
             check_identity, tolerance=f"{IDENTITY_TOLERANCE:g} of a^T K_TT a (measured <= 2.6e-14)"),
        Step("the distillation code", "numerics.distill's rkip_loss and kip_loss (what distillation optimizes; "
             f"blocks of {LOSS_BLOCK_ROWS} target rows, the last padded and masked, ridge 0) against L_RKIP and the "
             "KIP error from the same kernel blocks, at random lambda (N = 10, M = 4; relu:2 quick, also erf:3 full)",
             check_distill_losses, tolerance=f"{IDENTITY_TOLERANCE:g} relative (measured <= 8e-14)"),
        Step("bound (a), random points", "the ratio |f_T - f_S|(x) / (sqrt(L) sqrt(Theta(x, x))) at 1000 random "
             "points (5000 full), half on the sphere, half Gaussian, for lambda* and a random lambda; and at the "
             "equality configuration", check_pointwise_random,
             tolerance="ratio <= 1 with no tolerance (measured max 0.52 relu:2, 0.74 erf:3); equality case within "
                       f"{EQUALITY_TOLERANCE:g} of 1 (measured <= 1.1e-16: the kernel at coincident inputs, "
                       "evaluated in separate calls)"),
        Step("bound (a), adversarial points", "gradient ascent on the ratio from 24 starts (64 full) per "
             "configuration; the same ascent on the equality configuration must reach 1", check_pointwise_adversarial,
             tolerance="ratio <= 1 with no tolerance (measured max 0.55 for relu:2, 0.84 for erf:3); the ascent "
                       "reaches the attained maximum within 1e-4 (measured 9e-6 below it)"),
        Step("bound (b)", "KIP error / (lambda_max(K_TT) L_RKIP) on drawn sets (random and profiled lambda), and "
             "its equality case (y the top eigenvector of K_TT, y_S = 0)", check_kip_bound,
             tolerance="ratio <= 1 with no tolerance (measured max 0.49 relu:2, 0.52 erf:3); equality within "
                       f"{EQUALITY_TOLERANCE:g} (measured <= 8.9e-16)"),
    ],
    counterexamples=[
        Step("converse of (b)", "training labels produced by f_S itself: KIP error 0, RKIP loss and the gap off "
             "the training set clearly positive", counterexample_converse,
             tolerance="KIP error <= 1e-20 of ||y||^2 (round-off), L_RKIP >= 1e-2 ||f_S||^2, gap >= 5% of max |f_S|"),
    ],
    observations=[
        "Away from the equality configurations the bounds are loose by a factor 2 or so: over random and "
        "adversarially ascended points the ratio of (a) stayed at or below 0.55 (relu:2) and 0.84 (erf:3), the "
        "ratio of (b) at or below 0.52, both for the attack's profiled lambda* and for random lambda.",
    ],
    references=["Loo et al. 2023, arXiv:2302.01428, Sec. 6 (RKIP)", "Nguyen et al. 2021, arXiv:2011.00050 (KIP)",
                "Aronszajn 1950 (reproducing property)"],
))
