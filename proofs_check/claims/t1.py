"""T1: provable recovery at infinite width (docs/claims.md#t1; Theorem 1 of Loo et al. 2023, arXiv:2302.01428)."""

from __future__ import annotations

import numpy as np

from proofs_check.registry import Claim, Context, Outcome, Step, at_least, register, within
from proofs_check.claims.r1 import certified
from theory.architecture import parse_spec

ATTACK_ARCH = "relu:2"
N_POINTS, DIM = 8, 10
RECOVERY_TOLERANCE = 3e-5
"""Matched distance: measured 3e-8 ... 6.6e-6 at seeds 0-7 (16 attacks, M = 2N and M = N; Adam with a decaying step,
then L-BFGS, reaches the cusp of the ReLU NTK at a training point to ~1e-5); a local minimum leaves some point O(0.1)
away."""
WEIGHT_TOLERANCE = 3e-5
"""Merged coefficient error / max |alpha|: measured 2.8e-9 ... 2.6e-6 at seeds 0-7, at most the location error
(a reconstruction 1e-5 from x_i changes its kernel row by ~1e-5); a missing or doubled point gives O(1)."""
LOSS_TOLERANCE = 1e-6
LOSS_REASON = ("Theorem 1: the minimum is 0; the L-BFGS polish takes the best restarts from 2.0e-6 ... 4.8e-6 (Adam "
               "alone, measured at seeds 0-2) to <= 1.9e-7 (measured -2.8e-14 ... 1.85e-7 at seeds 0-7); without "
               "the polish the distances (4.9e-6 ... 7.9e-6) and, at seeds 0-1, the coefficient errors (<= 9.1e-6) "
               "stay within their tolerances")
SCORING_TOLERANCE = 1e-12
SCORING_REASON = ("known answers in float64: a sum of two halves and a |coefficient|-weighted mean of two points 2e-6 "
                  "apart are exact to round-off (measured 0 at seeds 0-2); averaging instead of summing the merged "
                  "coefficients is off by |alpha_i| / 2 max |alpha|, a sign or a spurious point by O(1), a plain "
                  "mean location beside a weightless point 5e-3 away by 2.5e-3")
OMISSION_TOLERANCE = 1e-12
OMISSION_REASON = ("block inversion makes the two equal; the kernels are exact at coincident inputs (<= 1.5e-15, "
                   "K1(b)) and cond(Theta) ~ 1e3 amplifies round-off: measured <= 3.6e-16 at seeds 0-2 (5e-9 while the "
                   "edge kernels were off by 1.5e-8); the inverted formula alpha_i^2 (Theta^-1)_ii is off by O(1)")


SCALE_TOLERANCE = 1e-12
SCALE_REASON = ("Theta(k x, x') = k Theta(x, x') exactly (certified above) and the kernels are exact at coincident "
                "inputs (K1(b)): measured <= 5.7e-16 at seeds 0-5 (a bias sb would show as ~1.1 sb)")


def _sphere(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    z = rng.normal(size=(n, d))
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def _problem(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """N = 8 points uniform on S^9 and alpha = Theta^-1 y for random +-1 labels (kernel regression's dual
    coefficients, D1)."""
    from numerics.kernels import analytic_ntk

    rng = ctx.rng("t1-problem")
    x = _sphere(rng, N_POINTS, DIM)
    y = rng.choice([-1.0, 1.0], size=N_POINTS)
    alpha = np.linalg.solve(np.asarray(analytic_ntk(parse_spec(ATTACK_ARCH), x)), y)
    return x, alpha


def _kernel_loss(arch, x_t, alpha, x_r, lam) -> tuple[float, float]:
    """L_inf(X_R, lambda) = a^T Theta_TT a - 2 a^T Theta_TR l + l^T Theta_RR l and the scale a^T Theta_TT a."""
    from numerics.kernels import analytic_ntk

    k_tt, k_tr, k_rr = (np.asarray(analytic_ntk(arch, a, b)) for a, b in ((x_t, x_t), (x_t, x_r), (x_r, x_r)))
    scale = float(alpha @ k_tt @ alpha)
    return float(scale - 2 * alpha @ k_tr @ lam + lam @ k_rr @ lam), scale


# ------------------------------------------------------------------------------------------------
# Derivations
# ------------------------------------------------------------------------------------------------

def derive_proof_steps(ctx: Context) -> list[Outcome]:
    """Merging coincident reconstructions, and L_inf = c^T Theta_U c for every coincidence pattern."""
    from theory.reconstruction import merge_certificate, union_form_certificates

    rng = ctx.rng("t1-proof")
    outcomes = [certified(merge_certificate(), rng)]
    certificates = union_form_certificates(n_train=2, n_recon=3)
    results = [certified(certificate, rng, samples=1) for certificate in certificates]
    failed = [o.name for o in results if not o.passed]
    outcomes.append(Outcome(
        name=f"L_inf = c^T Theta_U c for all {len(results)} placements of M = 3 reconstructions (N = 2)",
        passed=not failed, measured=f"{len(results) - len(failed)} of {len(results)} residuals == 0",
        expected="every residual == 0 (exact)", reason="symbolic identities: no tolerance", kind="derivation",
        details={"failed": failed}))
    return outcomes


def derive_counterexample_identities(ctx: Context) -> list[Outcome]:
    """Why the assumptions matter: bias-free ReLU kernels are homogeneous; the linear activation's kernel
    is <x, x'> times a constant (rank <= d)."""
    from theory.reconstruction import homogeneity_certificates, linear_kernel_certificate

    rng = ctx.rng("t1-counter-identities")
    outcomes = [certified(c, rng) for c in homogeneity_certificates(parse_spec("relu:2"))]
    outcomes += [certified(linear_kernel_certificate(parse_spec(spec)), rng)
                 for spec in ("identity:2", "identity:3:sw=1.3")]
    return outcomes


# ------------------------------------------------------------------------------------------------
# Checks
# ------------------------------------------------------------------------------------------------

PD_CONTROL = "identity:2"
"""A kernel of rank d (the linear network's NTK is a multiple of x . x'): on more than d points it is singular, so the
same eigenvalue test must fail for it (measured lambda_min / lambda_max ~ -3e-16 on 20 points of S^9)."""


def check_strict_pd(ctx: Context) -> list[Outcome]:
    """Theta of relu:2 is strictly PD on random sets of 8 and of 2 d = 20 distinct points of S^9 (and on the attack's
    set); on the sets of 20 > d points the rank-d linear kernel, which the test must tell apart, is singular."""
    from numerics.kernels import analytic_ntk

    arch = parse_spec(ATTACK_ARCH)
    rng = ctx.rng("t1-pd")
    count = ctx.pick(20, 200)
    large = [_sphere(rng, 2 * DIM, DIM) for _ in range(count)]
    sets = [_problem(ctx)[0]] + [_sphere(rng, N_POINTS, DIM) for _ in range(count)] + large
    close = _sphere(rng, N_POINTS, DIM)
    close[1] = close[0] + 1e-2 * _sphere(rng, 1, DIM)[0]
    close[1] /= np.linalg.norm(close[1])
    sets.append(close)

    def ratio(spec_arch, points):
        eig = np.linalg.eigvalsh(np.asarray(analytic_ntk(spec_arch, points)))
        return eig[0] / eig[-1]

    ratios = [ratio(arch, points) for points in sets]
    control = [ratio(parse_spec(PD_CONTROL), points) for points in large]
    strict = at_least(f"{ATTACK_ARCH}: min lambda_min / lambda_max over {len(sets)} sets of {N_POINTS} or {2 * DIM} "
                      f"points on S^{DIM - 1}",
                      min(ratios), 1e-10,
                      "eigensolver round-off is ~1e-15 relative; a ratio above 1e-10 is a genuinely positive eigenvalue "
                      "(one set has two points 1e-2 apart; measured 9.6e-4 at the quick profile's seed, median 0.078)",
                      ratios_min_median=[min(ratios), float(np.median(ratios))])
    singular = within(f"control, {PD_CONTROL} (rank {DIM}): max lambda_min / lambda_max over the {len(large)} sets of "
                      f"{2 * DIM} points", max(control), 1e-10,
                      "the same test must fail a kernel of rank d < N: round-off only (measured ~ -3e-16)",
                      ratios_min_max=[min(control), max(control)])
    return [strict, singular]


def check_scoring(ctx: Context) -> list[Outcome]:
    """numerics.attack.recovery on reconstructions whose score is known: X_T with alpha, altered one way per case
    (x_i split into two reconstructions 2e-6 apart carrying alpha_i / 2 each; alpha_k negated; a weighted point
    added away from X_T, beside a weightless one that must be dropped; a point carrying 1e-2 max |alpha|, 10x
    min_weight, that must count as spurious; a weightless reconstruction 5e-3 from x_i, inside the merge radius,
    whose merge must stay at x_i, the location being |coefficient|-weighted)."""
    from numerics.attack import recovery

    x, alpha = _problem(ctx)
    rng = ctx.rng("t1-scoring")
    split, flipped = (int(i) for i in rng.choice(N_POINTS, size=2, replace=False))
    largest = float(np.max(np.abs(alpha)))
    offset = 1e-6 * _sphere(rng, 1, DIM)[0]
    extra = _sphere(rng, 2, DIM)
    faint, beside = _sphere(rng, 1, DIM), 5e-3 * _sphere(rng, 1, DIM)[0]
    signs = np.ones(N_POINTS)
    signs[flipped] = -1.0
    flip_errors = np.zeros(N_POINTS)
    flip_errors[flipped] = 2 * abs(alpha[flipped]) / largest
    cases = [  # (name, reconstructions, coefficients, expected weight errors, expected spurious count)
        (f"x_{split} as two reconstructions 2e-6 apart, alpha_{split} / 2 each",
         np.vstack([np.delete(x, split, axis=0), x[split] + offset, x[split] - offset]),
         np.concatenate([np.delete(alpha, split), [alpha[split] / 2] * 2]), np.zeros(N_POINTS), 0),
        (f"alpha_{flipped} negated", x, signs * alpha, flip_errors, 0),
        ("a point carrying max |alpha| away from X_T, and one carrying 1e-4 max |alpha| (below min_weight)",
         np.vstack([x, extra]), np.concatenate([alpha, [largest, 1e-4 * largest]]), np.zeros(N_POINTS), 1),
        ("a point carrying 1e-2 max |alpha| away from X_T (10x min_weight: still weighted)",
         np.vstack([x, faint]), np.concatenate([alpha, [1e-2 * largest]]), np.zeros(N_POINTS), 1),
        (f"a weightless reconstruction 5e-3 from x_{split} (inside the merge radius 1e-2): merged at x_{split}",
         np.vstack([x, x[split] + beside]), np.concatenate([alpha, [0.0]]), np.zeros(N_POINTS), 0),
    ]
    outcomes = []
    for name, x_recon, coefficients, expected_errors, expected_spurious in cases:
        scored = recovery(x_recon, coefficients, x, alpha)
        error = max(scored.max_distance, float(np.max(np.abs(scored.weight_errors - expected_errors))))
        outcome = within(f"{name}: max |score - known answer| (distances 0, coefficient errors "
                         f"{'2 |alpha_k| / max |alpha| at k' if expected_errors.any() else '0'}), "
                         f"{expected_spurious} spurious", error, SCORING_TOLERANCE, SCORING_REASON,
                         distances=scored.distances, weight_errors=scored.weight_errors,
                         expected_weight_errors=expected_errors, spurious=scored.spurious)
        outcome.passed = outcome.passed and scored.spurious == expected_spurious
        outcomes.append(outcome)
    return outcomes


_ATTACKS: dict[tuple, object] = {}
"""Kernel attacks already run, by (seed, profile, M): the M < N counterexample compares with M = N."""


def _attack(ctx: Context, n_recon: int):
    import jax

    from numerics.attack import kernel_space_attack

    restarts = {2 * N_POINTS: ctx.pick(4, 8), N_POINTS: ctx.pick(32, 64)}.get(n_recon, ctx.pick(8, 16))
    key = (ctx.seed, ctx.profile, n_recon)
    if key not in _ATTACKS:
        x, alpha = _problem(ctx)
        _ATTACKS[key] = kernel_space_attack(parse_spec(ATTACK_ARCH), x, alpha, n_recon,
                                            key=jax.random.PRNGKey(ctx.seed_for("t1-attack", n_recon)),
                                            steps=ctx.pick(1500, 4000), restarts=restarts)
    return _ATTACKS[key]


def _attack_outcomes(ctx: Context, n_recon: int) -> list[Outcome]:
    from numerics.attack import recovery

    x, alpha = _problem(ctx)
    result = _attack(ctx, n_recon)
    restarts = len(result.restart_losses)
    scored = recovery(result.x_recon, result.coefficients, x, alpha)
    scale = result.info["alpha_norm_sq_rkhs"]
    successes = float(np.mean(np.asarray(result.restart_losses) / scale < 1e-4))
    details = dict(relative_loss=result.info["relative_loss"], distances=scored.distances,
                   spurious_weighted_locations=scored.spurious,
                   restart_relative_losses=np.asarray(result.restart_losses) / scale,
                   restarts_below_1e_4_relative=successes)
    label = f"M = {n_recon}, N = {N_POINTS}, d = {DIM}, {restarts} restarts"
    distance = within(f"{label}: max matched distance of training points to weighted reconstructions",
                      scored.max_distance, RECOVERY_TOLERANCE,
                      "Theorem 1: every global minimizer contains X_T; the attack reaches the cusp of the ReLU NTK "
                      "to ~1e-5 (measured 3e-8 ... 6.6e-6 at seeds 0-7), a local minimum leaves a point O(0.1) away",
                      **details)
    distance.passed = distance.passed and scored.spurious == 0
    weights = within(f"{label}: max |merged coefficient - alpha_i| / max |alpha|", scored.max_weight_error,
                     WEIGHT_TOLERANCE,
                     "Theorem 1: the coefficients on x_i sum to alpha_i; the error follows the location error "
                     "(measured 2.8e-9 ... 2.6e-6 at seeds 0-7, locations within 1e-5); a missing or doubled point "
                     "gives O(1)")
    loss = within(f"{label}: L* / a^T Theta a of the returned reconstructions", result.info["relative_loss"],
                  LOSS_TOLERANCE, LOSS_REASON)
    return [distance, weights, loss]


def check_attack_overparametrized(ctx: Context) -> list[Outcome]:
    """The kernel-space attack with M = 2N recovers the training set (the paper's M = 2N setting)."""
    return _attack_outcomes(ctx, 2 * N_POINTS)


def check_attack_exact_budget(ctx: Context) -> list[Outcome]:
    """The kernel-space attack with M = N: the landscape has local minima, so many restarts."""
    return _attack_outcomes(ctx, N_POINTS)


# ------------------------------------------------------------------------------------------------
# Counterexamples
# ------------------------------------------------------------------------------------------------

def counterexample_scale(ctx: Context) -> list[Outcome]:
    """(i) Bias-free ReLU off the sphere: (k X_T, alpha / k) has zero loss but is not the training set."""
    x, alpha = _problem(ctx)
    k = 1.7
    bias_free, _ = _kernel_loss(parse_spec("relu:2"), x, alpha, k * x, alpha / k)
    with_bias, _ = _kernel_loss(parse_spec("relu:2:sb=0.5"), x, alpha, k * x, alpha / k)
    _, scale_free = _kernel_loss(parse_spec("relu:2"), x, alpha, x, alpha)
    _, scale_bias = _kernel_loss(parse_spec("relu:2:sb=0.5"), x, alpha, x, alpha)
    zero = within(f"relu:2 (no bias): L_inf({k} X_T, alpha / {k}) / a^T Theta a, every point {k - 1:.1f} away from X_T",
                  abs(bias_free) / scale_free, SCALE_TOLERANCE, SCALE_REASON,
                  distance_to_training_points=(k - 1.0))
    positive = at_least("relu:2:sb=0.5 (biases): the same pair has L_inf / a^T Theta a", with_bias / scale_bias, 1e-3,
                        "biases break the homogeneity: the pair is then distinguishable, so the ambiguity is the "
                        "missing sphere constraint, not an artefact")
    return [zero, positive]


def counterexample_finite_rank(ctx: Context) -> list[Outcome]:
    """(ii) Identity activation: Theta = kappa <x, x'> has rank d, so with N > d a different point set of
    the sphere reaches zero loss: pick M = N fresh points and solve X_R^T lambda = X_T^T alpha."""
    from numerics.attack import profiled_loss

    rng = ctx.rng("t1-rank")
    n, d = 8, 4
    x_t = _sphere(rng, n, d)
    alpha = rng.choice([-1.0, 1.0], size=n) * rng.uniform(0.5, 1.5, size=n)
    x_r = _sphere(rng, n, d)
    lam = np.linalg.lstsq(x_r.T, x_t.T @ alpha, rcond=None)[0]
    loss, scale = _kernel_loss(parse_spec("identity:2"), x_t, alpha, x_r, lam)
    separation = float(np.min(np.linalg.norm(x_t[:, None] - x_r[None], axis=-1)))
    zero = within(f"identity:2, N = {n} > d = {d}: L_inf / a^T Theta a for {n} fresh sphere points", abs(loss) / scale,
                  1e-12, "X_R^T lambda = X_T^T alpha solved to round-off, and L_inf = kappa ||X_T^T a - X_R^T l||^2",
                  min_distance_between_sets=separation)
    zero.passed = zero.passed and separation > 0.05
    relu_loss = float(profiled_loss(parse_spec("relu:2"), x_t, alpha[:, None], x_r)[0])
    _, relu_scale = _kernel_loss(parse_spec("relu:2"), x_t, alpha, x_t, alpha)
    positive = at_least("relu:2 on the same sets: profiled L* / a^T Theta a", relu_loss / relu_scale, 1e-3,
                        "strictly PD kernel: a point set disjoint from X_T cannot reach zero loss")
    return [zero, positive]


def counterexample_budget(ctx: Context) -> list[Outcome]:
    """(iii) M = N - 1: the kernel attack ends at a strictly positive loss, far above what the same attack
    reaches with M = N on the same data; the omission cost alpha_i^2 / (Theta^-1)_ii equals the profiled loss
    with x_i left out, and the floor is at most the cheapest omission."""
    import jax.numpy as jnp

    from numerics.attack import profiled_loss
    from numerics.kernels import analytic_ntk
    from numerics.omission import omission_costs

    arch = parse_spec(ATTACK_ARCH)
    x, alpha = _problem(ctx)
    result = _attack(ctx, N_POINTS - 1)
    reference = _attack(ctx, N_POINTS)
    scale = result.info["alpha_norm_sq_rkhs"]
    floor = result.final_loss / scale
    reached = max(reference.final_loss / scale, np.finfo(float).eps)
    costs = omission_costs(np.asarray(analytic_ntk(arch, x)), alpha)  # Cholesky; left_out re-solves without x_i
    left_out = np.array([float(profiled_loss(arch, jnp.asarray(x), jnp.asarray(alpha[:, None]),
                                             jnp.asarray(np.delete(x, i, axis=0)))[0]) for i in range(N_POINTS)])
    positive = at_least(f"M = {N_POINTS - 1} < N = {N_POINTS}: best L* over {len(result.restart_losses)} restarts / "
                        f"the L* reached with M = N", floor / reached, 100.0,
                        "the M = N attack measures this attack's convergence error on the same data; a floor 100x "
                        "above it is the missing point, not an optimization shortfall", floor_relative=floor,
                        reached_with_m_equal_n=reached)
    formula = within("max_i |alpha_i^2 / (Theta^-1)_ii - L*(X_T without x_i)| / a^T Theta a",
                     float(np.max(np.abs(costs - left_out))) / scale, OMISSION_TOLERANCE,
                     OMISSION_REASON, omission_relative=costs / scale, profiled_relative=left_out / scale)
    upper = within("(floor - min_i alpha_i^2 / (Theta^-1)_ii) / a^T Theta a", floor - float(np.min(costs)) / scale,
                   1e-6, "dropping the cheapest point is a feasible M = N - 1 configuration, so the floor is at most "
                   "its cost (it may be lower: distillation, T3); 1e-6 is the attack's convergence error",
                   floor_relative=floor, omission_relative=float(np.min(costs)) / scale)
    return [positive, formula, upper]


CLAIM = register(Claim(
    id="T1",
    quick_seconds=16,
    title="Provable recovery at infinite width (Theorem 1)",
    statement=("If Theta is strictly PD on distinct points of the domain, the x_i are distinct, every alpha_i != 0 "
               "and M >= N, then L_inf(X_R, lambda) = 0 iff every training point is among the reconstructions with "
               "coefficients summing to alpha_i there and to 0 elsewhere; so every global minimizer of the attack "
               "reveals the whole training set. With M < N the minimum is positive."),
    assumptions=["inputs on the unit sphere (bias-free ReLU networks are positively homogeneous; with biases the "
                 "kernel can be strictly PD on all of R^d)",
                 "non-polynomial activation and at least one hidden layer (depth >= 1 in the spec; Jacot et al. 2018 count "
                 "L >= 2 weight layers): strict PD on the sphere, as K1 (d) checks",
                 "distinct training points, every alpha_i != 0", "M >= N"],
    derivation=(
        "Reconstructions that coincide can be merged: the loss depends on their coefficients only through the sum. "
        "After merging, L_inf = c^T Theta_U c, where U is the union of the distinct training and reconstruction "
        "locations and c holds alpha_i minus the coefficients placed on x_i, and minus the coefficients at every "
        "other location. Strict positive definiteness of Theta on U makes L_inf = 0 equivalent to c = 0: every "
        "x_i must carry reconstructions whose coefficients sum to alpha_i != 0, and all other locations must "
        "carry zero in total. With M < N some x_i carries nothing, so c != 0 and L_inf > 0; leaving out x_i "
        "exactly (reconstructions on the other points) costs alpha_i^2 / (Theta^-1)_ii by block inversion. The "
        "counterexamples drop one assumption each: bias-free ReLU kernels satisfy Theta(k x, x') = k Theta(x, x'), "
        "so (k X_T, alpha / k) has zero loss off the sphere; a linear activation gives Theta = kappa <x, x'> of "
        "rank d, so another point set reaches zero loss once N > d."),
    derivations=[
        Step("proof steps", "merging coincident points; L_inf as a quadratic form on the union, for every placement "
             "of 3 reconstructions relative to 2 training points", derive_proof_steps,
             tolerance="exact symbolic identities, each also evaluated with 30 digits at a random point (below 1e-20)"),
        Step("counterexample identities", "homogeneity of bias-free ReLU kernels (layer by layer); the linear "
             "kernel's closed form", derive_counterexample_identities, tolerance="exact, as above"),
    ],
    checks=[
        Step("strict PD", "smallest eigenvalue ratio of the relu:2 NTK on sets of 8 and of 20 distinct points of S^9 "
             "(quick: 20 of each, full: 200) and on one with two points 1e-2 apart; the same test on the 20-point "
             "sets for the rank-10 linear kernel (identity:2), which it must find singular", check_strict_pd,
             tolerance="ratio >= 1e-10 for relu:2, <= 1e-10 for the control: eigensolver round-off is ~1e-15 "
                       "relative (measured minimum ratio ~1e-3 for relu:2, ~ -3e-16 for the control)"),
        Step("recovery scoring", "numerics.attack.recovery, which scores the attacks below, on five altered "
             "copies of (X_T, alpha) with known scores: x_i split into two reconstructions carrying alpha_i / 2 each "
             "(merged, they must carry alpha_i), a negated coefficient, a spurious weighted point beside a weightless "
             "one, a spurious point at 1e-2 max |alpha| (10x min_weight), and a weightless reconstruction 5e-3 from "
             "x_i (merged, the location must stay at x_i)", check_scoring,
             tolerance=f"{SCORING_TOLERANCE:g} (round-off; measured 0 at seeds 0-2) and the exact spurious count; "
                       "averaging the merged coefficients instead of summing them is off by O(1)"),
        Step("attack, M = 2N", "kernel-space attack (lambda profiled out, restarts, L-BFGS polish) on 8 points in "
             "d = 10: matched distances and merged coefficients against X_T and alpha, and the loss it reached",
             check_attack_overparametrized,
             tolerance=f"distance {RECOVERY_TOLERANCE:g} and coefficient error {WEIGHT_TOLERANCE:g} of max |alpha| "
                       "(measured <= 6.6e-6 and <= 2.6e-6 at seeds 0-7; a local minimum or a missing point gives "
                       "O(0.1) or more), no weighted reconstruction left unmatched, and L* <= "
                       f"{LOSS_TOLERANCE:g} a^T Theta a (measured <= 1.9e-7 at seeds 0-7; 2.0e-6 ... 4.8e-6 without "
                       "the L-BFGS polish)"),
        Step("attack, M = N", "the same with an exact budget (the landscape has local minima: 32 restarts, 64 on the full profile)",
             check_attack_exact_budget, tolerance="as for M = 2N"),
    ],
    counterexamples=[
        Step("(i) off the sphere", "scale ambiguity of bias-free ReLU kernels: (1.7 X_T, alpha / 1.7) has zero loss; "
             "with biases the same pair does not", counterexample_scale,
             tolerance=f"{SCALE_TOLERANCE:g} of a^T Theta a (measured <= 5.7e-16 at seeds 0-5); the biased pair "
                       "must stay >= 1e-3"),
        Step("(ii) finite rank", "a second zero-loss point set for the linear kernel (N = 8 > d = 4), which the "
             "strictly PD relu:2 kernel rejects", counterexample_finite_rank,
             tolerance="1e-12 (a least-squares solve to round-off); >= 1e-3 for relu:2"),
        Step("(iii) M < N", "M = N - 1: the attack's floor against its M = N result on the same data; the omission "
             "cost alpha_i^2 / (Theta^-1)_ii against profiled_loss with x_i removed; the floor against the cheapest "
             "omission", counterexample_budget,
             tolerance=f"floor >= 100x the M = N loss; omission formula equal to the profiled loss within "
                       f"{OMISSION_TOLERANCE:g} of a^T Theta a (measured <= 3.6e-16 at seeds 0-2); floor at most "
                       "the cheapest omission + 1e-6 (the attack's convergence error)"),
    ],
    references=["Loo et al. 2023, arXiv:2302.01428, Theorem 1", "Jacot et al. 2018, arXiv:1806.07572 (strict PD "
                "on the sphere)"],
))
