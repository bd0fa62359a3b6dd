"""R1: the reconstruction loss and its kernel form (docs/claims.md#r1; Loo et al. 2023, arXiv:2302.01428)."""

from __future__ import annotations

import numpy as np

from proofs_check.figures import readable_log_ticks, save_figure
from proofs_check.registry import (Claim, Context, Outcome, Step, applicable_on_defaults, at_least,
                                   bootstrap_loglog_slope, exact, not_applicable, rate_interval, register, within)
from theory.architecture import Architecture, parse_spec

IDENTITY_ARCHS = ("relu:2", "erf:3:sw=1.5:sb=0.1", "relu:2:sb=0.2:param=standard", "abrelu:1:sb=0.5")
ZERO_ARCHS = {"quick": ("erf:2:sw=1.5:sb=0.1",), "full": ("relu:2", "erf:2:sw=1.5:sb=0.1")}
RATE_ARCHS = {"quick": ("relu:2",), "full": ("relu:2", "erf:2:sw=1.5:sb=0.1")}
RATE_WIDTHS = {"quick": (64, 128, 256, 512, 1024), "full": (64, 128, 256, 512, 1024, 2048, 4096)}
"""The widths of K1(c): L is linear in the kernel, so both rates are measured on the same grid."""
CONV_RATE_WIDTHS = {"quick": (16, 32, 64, 128, 256), "full": (16, 32, 64, 128, 256, 512)}
"""Channel counts of the width limit on convolutional chains (3x3 images): see :func:`_rate_widths`."""
DIM = 5
"""Input dimension of the synthetic sphere data (a chain that reads images takes the next square, 9)."""
ATTACK_ARCH = "relu:2"
GRADIENT_ARCHS = ("relu:2", "relu:2:sb=0.3")
"""The attack-gradient check's chains: without and with biases (the kernel forms carry the bias term s_b^2 apart)."""
ATTACK_WIDTH, ATTACK_N, ATTACK_M, ATTACK_DIM = 512, 4, 12, 5
"""M = 3N candidates: with M = 2N one of 8 seeds left a training point unrecovered after 1000 steps (a local
minimum); with 3N all 8 recovered every point (network 0 over --seed 0-39: all but 29 and 35; observations), and 4N
converged more slowly."""
ATTACK_STEPS = 1000
ATTACK_NETWORKS = (4, 16)
"""Independent networks (quick, full profile) the finite-width attack runs on, each with its own points,
initialization and attack start: one network recovers its training set at 34 of --seed 0-39, so the claim is a rate
over networks (observations)."""
ATTACK_MAJORITY = 0.5
"""The fraction of the networks on which each row must hold: measured 0.89 (85 of the 96 networks of --seed 0-19, 28,
29, 35, 38 on the quick profile), a broken attack 0 (the annealing reversed: 0 of the 20 networks of --seed 0-4
under the loss bar). With a rate of 0.85 (network 0's 34 of 40, the lower of the two surveys) the binomial chance of
fewer than 2 of 4 is 1.2%, of fewer than 8 of 16 1.6e-4 (at 0.89: 0.56%, 1.9e-5). The bar catches a broken attack,
not a degraded one: at a rate of 0.5 it fails only 31% of the time with 4 networks."""
ATTACK_SURVEY_TEXT = (
    "Measured on the quick profile at --seed 0-19, 28, 29, 35 and 38 (the seeds where network 0 fails included): the "
    "step passes at all 24, with 3 or 4 of the 4 networks recovered at each; 85 of the 96 networks (0.89) recover "
    "their training set. Of the other 11, on 5 the loss ends at 2.0e-3 ... 7.3e-3 with every point within 0.025, on "
    "4 a spurious minimum at a loss of 3.3e-4 ... 1.3e-3 leaves a point 0.18 ... 0.93 away, on 1 both (2.3e-3, 1.04 "
    "away), and on 1 the attack stops far from zero (0.44, 2 of 4 revealed). With the annealing reversed no network "
    "of --seed 0-4 gets under the loss bar (4.4e-3 ... 3.8e-2 on all 20), and the step fails at each.")
ATTACK_SUCCESS_TEXT = ("85 of the 96 networks of the quick profile's --seed 0-19, 28, 29, 35, 38 recover their "
                       "training sets (0.89), 3 or 4 of 4 at each seed; on the others the loss ends above its bar, a "
                       "spurious minimum as low as the data's leaves a point away, or the attack stops")
ATTACK_LOSS_TOLERANCE = 2e-3
"""Relative exact-activation attack loss: with the softplus sharpness annealed 10 -> 200, measured 3.0e-5 ... 1.6e-3
on 89 of the 96 networks of the quick profile's --seed 0-19, 28, 29, 35, 38, and 4.4e-3 ... 3.8e-2 on all 20 of
--seed 0-4 with the schedule reversed (ending at 10, whose smoothing bias the minimizer keeps; network 0 of --seed
0-11: 7.1e-3 ... 2.6e-2); 2e-3 lies between the two ranges. The bar does not separate them on every network: on 6 the
right schedule ends above it after 1000 steps, at 2.0e-3 ... 7.3e-3, inside the reversed range (network 0 at --seed 9,
19, 38 among them: every point still revealed, and a second start reaches 7.9e-4 ... 1.1e-3), and on 1 at 0.44 (a
stuck attack): such a network counts against the rate of ATTACK_MAJORITY (observations)."""
ATTACK_DISTANCE_TOLERANCE = 0.05
"""Matched distance on the unit sphere: measured 0.005 ... 0.025 on 90 of the 96 networks of the quick profile's --seed
0-19, 28, 29, 35, 38 (the smoothing bias at beta = 200); held-out sphere points are typically 0.5 or more away in
d = 5. On the other 6 the farthest point is 0.18 ... 1.13 away, on 4 of them at an exact loss of 3.3e-4 ... 1.3e-3, as
low as correct reconstructions reach (spurious minima; network 0 at --seed 28, 29, 35 among them): such a network
counts against the rate of ATTACK_MAJORITY (observations)."""
TRIVIAL_MAX_REVEALED = 1
"""Of the ATTACK_N = 4 training points, the most that any trivial reconstruction (mean, noise, held-out points) may
reveal: the attack reveals all 4, and a bar of "fewer than the attack" would let a measure that credits 3 of 4 to
reconstructions knowing nothing pass. Simulated (statistics review 28: this geometry, 300 independent baseline
draws) the best trivial reconstruction reveals 0 of 4 in 278, 1 of 4 in 22 (7%), never 2 or more."""


def trivial_within_bar(trivial_fraction: float, n: int = ATTACK_N) -> bool:
    """Whether the best trivial reconstruction's revealed fraction of ``n`` points is at most TRIVIAL_MAX_REVEALED."""
    return round(trivial_fraction * n) <= TRIVIAL_MAX_REVEALED


SPOT_TOLERANCE = 1e-20
COMPLETED_SQUARE_TOLERANCE = 1e-8
"""The completed square around profiled_loss's lambda*: a 1e-3 step makes the excess ~1e-6 of the loss, so float64
cancellation leaves ~1e-10 relative to it (measured 2.7e-10 ... 1.4e-9 at seeds 0-2); a lambda* off by 1e-4
relative gives ~1e-1."""
IDENTITY_TOLERANCE = 1e-12
"""The kernel form against the parameter-space loss, relative to the summed term sizes (measured <= 3.5e-16)."""
"""Spot checks evaluate the unsimplified identity with 30 significant digits: a true identity leaves ~1e-28."""


def certified(certificate, rng, *, samples: int = 3, needs_algebra: bool = False) -> Outcome:
    """An exact outcome for a symbolic certificate, failed also when its numerical spot check is not ~0, or, with
    ``needs_algebra`` (an identity that only matrix algebra can reduce: an inverse, a Schur complement), when it is 0
    before any simplification: its two sides were then built from the same expression, so it proves nothing
    (L(lambda*) compared with loss.subs(lambda*) instead of the Schur complement form read 0 = 0). Identities that
    sympy's automatic evaluation settles on construction (T1's homogeneity and linear-kernel counterexamples) are
    0 unreduced and true, hence the flag."""
    spot = certificate.spot_check(rng, samples=samples)
    outcome = exact(certificate.name, certificate.residual, numerical_spot_check=spot)
    if spot > SPOT_TOLERANCE:
        outcome.passed = False
        outcome.details["numerical_failure"] = "the unsimplified identity is nonzero at a random point"
    if needs_algebra and certificate.expression == 0:
        outcome.passed = False
        outcome.measured = "0 before any simplification: a tautology"
        outcome.expected = "== 0 (exact) after simplification, and sides built independently"
        outcome.details["tautology"] = "both sides are the same expression, so nothing is proven"
    return outcome


# ------------------------------------------------------------------------------------------------
# Derivations
# ------------------------------------------------------------------------------------------------

def derive_kernel_form(ctx: Context) -> list[Outcome]:
    """||J_T^T alpha - J_R^T lambda||^2 expanded into kernel quadratic forms, single and multi-output."""
    from theory.reconstruction import kernel_form_certificate

    rng = ctx.rng("r1-kernel-form")
    return [certified(kernel_form_certificate(n_out=c), rng, needs_algebra=True) for c in (1, 2)]


def derive_profile(ctx: Context) -> list[Outcome]:
    """lambda* is stationary, L(lambda*) is the Schur complement, the square completes, and L* >= 0."""
    from theory.reconstruction import lagrange_certificate, profile_certificates, schur_norm_certificate

    rng = ctx.rng("r1-profile")
    certificates = profile_certificates() + [schur_norm_certificate(), lagrange_certificate()]
    return [certified(certificate, rng, needs_algebra=True) for certificate in certificates]


SURROGATE_EXPONENT = 6
SURROGATE_BETA, SURROGATE_BETA_TEXT = 10**SURROGATE_EXPONENT, f"1e{SURROGATE_EXPONENT}"
SURROGATE_POINTS = ("-13/10", "0", "7/10")
SURROGATE_TOLERANCE = 1e-5
"""|surrogate - phi| at beta = SURROGATE_BETA, 30 digits: a stand-in that tends to phi is O(1 / beta) off (abrelu:
|a_+ - a_-| log(2) / beta = 1.0e-6 at x = 0, e^{-beta |x|} elsewhere); a wrong sign or coefficient is O(1) off (the
sign of a_- flipped: 1.3 at x = -13/10)."""


def _surrogate_activations(ctx: Context) -> list[tuple[str, dict]]:
    """(name, params) of every registered activation with a surrogate at its defaults, and of every activation layer
    of the user's architectures that has one."""
    from theory import activations

    found = [(a.name, dict(a.defaults)) for a in activations.all_activations() if a.surrogate is not None]
    for arch in _user_archs(ctx):
        found += [(layer.name, dict(layer.params)) for layer in arch.activation_layers
                  if activations.get(layer.name).surrogate is not None]
    return list({(name, tuple(sorted(params.items()))): (name, params) for name, params in found}.values())


def derive_surrogate(ctx: Context) -> list[Outcome]:
    """The attack's smooth stand-in tends to phi: lim_{beta -> oo} (surrogate - phi) = 0 for every x (exact), and
    the gap at beta = 1e6 evaluated with 30 digits."""
    import sympy as sp

    from theory import activations

    outcomes = []
    for name, params in _surrogate_activations(ctx):
        shown = name + "".join(f":{key}={value}" for key, value in sorted(params.items()))
        limits = activations.surrogate_limits(name, params)
        outcomes.append(exact(f"{shown}: lim_(beta -> oo) (surrogate - phi) at "
                              f"{', '.join(activations.SURROGATE_SIDES)}", sp.Add(*map(sp.Abs, limits)),
                              limits=[str(limit) for limit in limits]))
        gap = (activations.get(name).surrogate_expression(params) - activations.get(name).expression(params))
        values = [abs(float(gap.rewrite(sp.log).subs({activations.x: sp.Rational(point),
                                                      activations.beta: SURROGATE_BETA}).evalf(30)))
                  for point in SURROGATE_POINTS]
        evaluated = within(f"{shown}: max |surrogate - phi| at beta = {SURROGATE_BETA_TEXT}, x in "
                           f"{{{', '.join(SURROGATE_POINTS)}}} (30 digits)", max(values), SURROGATE_TOLERANCE,
                           "O(1 / beta) for a stand-in that tends to phi (abrelu at x = 0: 1.0e-6); a wrong sign or "
                           "coefficient is O(1)")
        evaluated.kind = "derivation"
        outcomes.append(evaluated)
    return outcomes


# ------------------------------------------------------------------------------------------------
# Checks
# ------------------------------------------------------------------------------------------------

def _user_archs(ctx: Context) -> list[Architecture]:
    """The user's architectures (--arch)."""
    return list(ctx.archs)


def _identity_archs(ctx: Context) -> list[Architecture]:
    """The user's architectures, else relu:2 and standard-parametrized relu with biases (quick) or all four of
    IDENTITY_ARCHS (full): the identities are exact algebra, so the quick profile samples the two code paths."""
    return _user_archs(ctx) or [parse_spec(spec) for spec in ctx.pick(IDENTITY_ARCHS[::2], IDENTITY_ARCHS)]


def _identity_error_fn(arch: Architecture):
    """Jitted relative error of the kernel form against the parameter-space loss (Delta theta = J_T^T alpha)."""
    import jax
    import jax.numpy as jnp

    from numerics.attack import jacobian_transpose_lambda, reconstruction_loss
    from numerics.kernels import empirical_ntk, flatten_ntk

    @jax.jit
    def error(params, x_t, x_r, alpha, lam):
        delta = jacobian_transpose_lambda(arch, params, x_t, alpha)
        parameter_loss = reconstruction_loss(arch, (params,), delta, x_r, lam)
        k_tt = flatten_ntk(empirical_ntk(arch, params, x_t))
        k_tr = flatten_ntk(empirical_ntk(arch, params, x_t, x_r))
        k_rr = flatten_ntk(empirical_ntk(arch, params, x_r))
        a, l_ = alpha.reshape(-1), lam.reshape(-1)
        terms = jnp.stack([a @ k_tt @ a, -2.0 * (a @ k_tr @ l_), l_ @ k_rr @ l_])
        scale = jnp.sum(jnp.abs(terms))
        gap = jnp.abs(parameter_loss - jnp.sum(terms))
        return jnp.where(scale > 0, gap / jnp.where(scale > 0, scale, 1.0), gap)

    return error


def check_kernel_identity(ctx: Context) -> list[Outcome]:
    """The kernel form equals the parameter-space loss on hypothesis-drawn networks, points and coefficients."""
    from hypothesis import example, given, settings
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    import jax

    from numerics.networks import make_network

    n, m, width = 5, 4, 48
    floats = st.floats(-2, 2, allow_nan=False, allow_infinity=False)
    outcomes = []
    for index, arch in enumerate(_identity_archs(ctx)):
        d = arch.input_dim_at_least(4)
        for out_dim in ctx.pick((1 + index % 2,), (1, 2)):
            network = make_network(arch, width, out_dim)
            error_fn = _identity_error_fn(arch)
            errors = []

            @settings(max_examples=ctx.pick(6, 60), derandomize=True, deadline=None, database=None)
            @given(seed=st.integers(0, 2**31 - 1), x_t=arrays(np.float64, (n, d), elements=floats),
                   x_r=arrays(np.float64, (m, d), elements=floats),
                   alpha=arrays(np.float64, (n, out_dim), elements=floats),
                   lam=arrays(np.float64, (m, out_dim), elements=floats), coincide=st.booleans())
            @example(seed=0, x_t=np.eye(n, d), x_r=-np.eye(m, d), alpha=np.ones((n, out_dim)),
                     lam=np.ones((m, out_dim)), coincide=True)
            def identity(seed, x_t, x_r, alpha, lam, coincide):
                if coincide:
                    x_r = x_r.copy()
                    x_r[: m // 2] = x_t[: m // 2]
                params = network.init(jax.random.PRNGKey(seed), d)
                errors.append(float(error_fn(params, x_t, x_r, alpha, lam)))

            identity()
            ctx.advance(f"R1 identity {arch.spec} C={out_dim}")
            outcomes.append(within(
                f"{arch.spec}, C={out_dim}: |L_param - L_kernel| / sum |terms| over {len(errors)} drawn cases",
                max(errors), IDENTITY_TOLERANCE,
                "both sides sum the same O(P) products in float64; normalized by the term sizes, so cancellation "
                "cannot hide an error; measured <= 3.5e-16 at seeds 0-2", width=width, n_train=n, n_recon=m))
    return outcomes


def _zero_archs(ctx: Context) -> list[Architecture]:
    return _user_archs(ctx) or [parse_spec(spec) for spec in ZERO_ARCHS[ctx.profile]]


def check_zero_at_training_set(ctx: Context) -> list[Outcome]:
    """L(X_T, alpha) = 0 when Delta theta and alpha both come from numerics.training.train on the linearized
    network: heavy-ball momentum 0.9 and a mean loss, so the dual accumulator's momentum and 1/N are checked."""
    import jax
    import jax.numpy as jnp

    from numerics.attack import reconstruction_loss
    from numerics.networks import make_network
    from numerics.training import ntk_matrix, train

    n, width, steps = 6, 128, 400
    outcomes = []
    for index, arch in enumerate(_zero_archs(ctx)):
        d = arch.input_dim_at_least(DIM)
        out_dim = 2 if index % 2 == 0 else 1
        rng = ctx.rng("r1-zero", arch.spec)
        x = rng.normal(size=(n, d))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        y = rng.choice([-1.0, 1.0], size=(n, out_dim))
        network = make_network(arch, width, out_dim)
        params_0 = network.init(jax.random.PRNGKey(ctx.seed_for("r1-zero", arch.spec)), d)
        lambda_max = float(np.linalg.eigvalsh(np.asarray(ntk_matrix(network, params_0, x)))[-1])
        # mean loss: the Hessian is K / N, and heavy-ball 0.9 is stable below eta = 2 (1 + 0.9) N / lambda_max
        result = train(network, params_0, x, y, learning_rate=n / lambda_max, momentum=0.9, reduction="mean",
                       linearized=True, max_steps=steps, progress=False)
        delta = result.delta
        norm_sq = float(sum(jnp.sum(leaf**2) for leaf in jax.tree_util.tree_leaves(delta)))
        loss = float(reconstruction_loss(arch, (result.params_0,), delta, jnp.asarray(x), result.alpha))
        outcomes.append(within(
            f"{arch.spec}, C={out_dim}: sqrt(L(X_T, alpha_T)) / ||Delta theta|| after {result.steps} linearized "
            "heavy-ball steps (momentum 0.9, mean loss)", np.sqrt(max(loss, 0.0) / norm_sq), 1e-10,
            "Delta theta = J_0^T alpha_T holds exactly at every step (D1); float64 round-off over ~400 steps, "
            "amplified ~1/(1 - momentum) = 10 by the velocity, is ~1e-13 (measured <= 4.9e-14 at seeds 0-2)",
            loss=loss, delta_theta_norm_sq=norm_sq, final_training_loss=result.final_loss, width=width))
    return outcomes


def check_profiled_loss(ctx: Context) -> list[Outcome]:
    """numerics.attack.profiled_loss (Cholesky) against the Schur complement computed independently (numpy
    solve), and its lambda* against the minimizer: a perturbed lambda must raise the kernel form."""
    import jax.numpy as jnp

    from numerics.attack import profiled_loss
    from numerics.kernels import analytic_ntk

    outcomes = []
    for arch in _identity_archs(ctx):
        # the identity holds for any kernel; the standard parametrization's NTK needs a width to be defined
        width = 64 if arch.parameterization == "standard" else None
        rng = ctx.rng("r1-profile-numerics", arch.spec)
        worst, excess = 0.0, []
        d = arch.input_dim_at_least(4)
        for _ in range(ctx.pick(3, 16)):
            x_t, x_r = (z / np.linalg.norm(z, axis=1, keepdims=True) for z in (rng.normal(size=(5, d)),
                                                                                rng.normal(size=(3, d))))
            alpha = rng.normal(size=(5, 2))
            k_tt, k_tr, k_rr = (np.asarray(analytic_ntk(arch, a, b, width=width)) for a, b in ((x_t, x_t), (x_t, x_r),
                                                                                                (x_r, x_r)))
            schur = float(np.sum(alpha * ((k_tt - k_tr @ np.linalg.solve(k_rr, k_tr.T)) @ alpha)))
            scale = float(np.sum(alpha * (k_tt @ alpha)))
            loss, lam = profiled_loss(arch, jnp.asarray(x_t), jnp.asarray(alpha), jnp.asarray(x_r), width=width)
            worst = max(worst, abs(float(loss) - schur) / scale)
            lam = np.asarray(lam)
            form = lambda l_: float(np.sum(alpha * (k_tt @ alpha)) - 2 * np.sum(alpha * (k_tr @ l_))  # noqa: E731
                                    + np.sum(l_ * (k_rr @ l_)))
            step = 1e-3 * rng.normal(size=lam.shape)
            excess.append((form(lam + step) - float(loss)) / float(np.sum(step * (k_rr @ step))))
        outcomes.append(within(
            f"{arch.spec}: |profiled_loss - alpha^T (K_TT - K_TR K_RR^-1 K_RT) alpha| / a^T K_TT a",
            worst, 1e-10, "two float64 evaluations of one number (Cholesky vs LU solve) with cond(K_RR) <= 1e3: "
            "~1e-13; dropping any term of the Schur complement changes it by O(1)"))
        outcomes.append(within(
            f"{arch.spec}: max |(L(lambda* + d) - L*) / d^T K_RR d - 1| (completing the square)",
            max(abs(e - 1.0) for e in excess), COMPLETED_SQUARE_TOLERANCE,
            "L(lambda) = L* + (lambda - lambda*)^T K_RR (lambda - lambda*) exactly; a 1e-3 step makes the excess "
            "~1e-6 of the loss, so float64 cancellation leaves ~1e-10 relative to it (measured <= 1.4e-9, seeds 0-2)"))
    return outcomes


def _rate_archs(ctx: Context) -> list[Architecture]:
    return _user_archs(ctx) or [parse_spec(spec) for spec in RATE_ARCHS[ctx.profile]]


def _rate_widths(ctx: Context, arch: Architecture) -> list[int]:
    """K1's widths; a convolutional chain's (its channels, CONV_RATE_WIDTHS) are smaller: a layer costs its
    window (9 taps) times its pixels more per unit."""
    return list((CONV_RATE_WIDTHS if arch.is_convolutional else RATE_WIDTHS)[ctx.profile])


def check_width_limit(ctx: Context) -> list[Outcome]:
    """RMS of (L_m - L_inf) / S_inf against width m over seeds and probes: fitted log-log slope -1/2.

    Each probe is a random (X_T, alpha, X_R, lambda) on the sphere with Delta theta = J_0(X_T)^T alpha;
    L_m is the parameter-space loss of a width-m network, L_inf the kernel form with the analytic NTK, and
    S_inf = |a^T Theta_TT a| + 2 |a^T Theta_TR l| + |l^T Theta_RR l| its scale (probes with small L_inf then
    weigh no more than others). L is linear in the kernel, whose error is O(m^-1/2) (K1), so the fit uses
    K1's widths; every width is fitted and drawn, the smallest ones included.
    """
    import jax
    import jax.numpy as jnp

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from numerics.attack import jacobian_transpose_lambda, reconstruction_loss
    from numerics.kernels import analytic_ntk
    from numerics.networks import make_network, sub_network

    seeds, probes = ctx.pick(16, 48), 4
    outcomes = []
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    plotted_widths = []
    for arch in _rate_archs(ctx):
        widths = _rate_widths(ctx, arch)
        d = arch.input_dim_at_least(DIM)
        rng = ctx.rng("r1-width", *(() if d == DIM else (d,)))

        def sphere(*shape):
            z = rng.normal(size=shape)
            return jnp.asarray(z / np.linalg.norm(z, axis=-1, keepdims=True))

        # every seed draws its own probes, so that seeds are independent replicates of the whole measurement and
        # the bootstrap over seeds sees the probes' spread too (4 probes shared by all seeds: the interval missed
        # -1/2 in 5 of 40 --seed runs whose slopes averaged -0.496; statistics review)
        x_t, x_r = sphere(seeds, probes, 6, d), sphere(seeds, probes, 4, d)
        alpha = jnp.asarray(rng.normal(size=(seeds, probes, 6, 1)))
        lam = jnp.asarray(rng.normal(size=(seeds, probes, 4, 1)))
        name = f"{arch.spec}: slope of RMS (L_m - L_inf) / S_inf vs width"
        if arch.width_rate_obstacle:
            outcomes.append(not_applicable(name, arch.width_rate_obstacle))
            continue

        def limit_terms(xt, xr, a, l_):
            k_tt, k_tr, k_rr = (analytic_ntk(arch, p, q) for p, q in ((xt, xt), (xt, xr), (xr, xr)))
            terms = jnp.stack([(a.T @ k_tt @ a)[0, 0], -2.0 * (a.T @ k_tr @ l_)[0, 0], (l_.T @ k_rr @ l_)[0, 0]])
            return jnp.sum(terms), jnp.sum(jnp.abs(terms))

        limit, scale = (np.asarray(v) for v in jax.vmap(jax.vmap(limit_terms))(x_t, x_r, alpha, lam))

        template = make_network(arch, max(widths)).init(jax.random.PRNGKey(0), d)
        leaves, treedef = jax.tree_util.tree_flatten(template)

        @jax.jit
        def finite_losses(params, x_t, x_r, alpha, lam):
            """(widths, probes) parameter-space losses of the nested sub-networks of one draw at its probes."""
            def one(sub, xt, xr, a, l_):
                delta = jacobian_transpose_lambda(arch, sub, xt, a)
                return reconstruction_loss(arch, (sub,), delta, xr, l_)

            return jnp.stack([jax.vmap(one, in_axes=(None, 0, 0, 0, 0))(sub_network(arch, params, width), x_t, x_r,
                                                                          alpha, lam) for width in widths])

        errors = np.zeros((seeds, len(widths), probes))
        for seed in range(seeds):
            draw = np.random.default_rng(ctx.seed_for("r1-width", arch.spec, seed))
            # NTK parametrization: every weight and bias is N(0, 1) (stax's own init draws the same law)
            params = jax.tree_util.tree_unflatten(treedef, [draw.standard_normal(leaf.shape) for leaf in leaves])
            losses = finite_losses(params, x_t[seed], x_r[seed], alpha[seed], lam[seed])
            errors[seed] = (np.asarray(losses) - limit[seed][None, :]) / scale[seed][None, :]
            ctx.advance(f"R1 width {arch.spec} seed {seed}")
        fit = bootstrap_loglog_slope(widths, errors, rng=ctx.rng("r1-bootstrap", arch.spec), aggregate=_rms)
        rms = _rms(errors)
        outcomes.append(rate_interval(
            name, fit, -0.5,
            f"{seeds} seeds x {probes} probes (drawn per seed) x {len(widths)} widths (K1's), 95% expanded percentile "
            "bootstrap over seeds; "
            "L is linear in the kernel and the kernel's error is O(m^-1/2) (K1); an interval wider than 0.5 is "
            "inconclusive and fails", max_width=0.5, widths=list(widths), rms_errors=rms.tolist()))
        line = ax.loglog(widths, rms, "o", label=f"{arch.spec}: slope {fit.slope:.2f} [{fit.low:.2f}, {fit.high:.2f}]")
        color = line[0].get_color()
        for column, width in enumerate(widths):
            per_seed = np.sqrt(np.mean(errors[:, column] ** 2, axis=-1))
            ax.loglog([width] * seeds, per_seed, ".", color=color, alpha=0.3)
        intercept = np.mean(np.log(rms) - fit.slope * np.log(np.asarray(widths, float)))
        ax.loglog(widths, np.exp(intercept) * np.asarray(widths, float) ** fit.slope, "-", color=color)
        ax.loglog(widths, rms[0] * (np.asarray(widths, float) / widths[0]) ** -0.5, ":", color=color,
                  label="m^-1/2 through the first point")
        ax.plot([], [], ".", color=color, alpha=0.3, label="RMS over probes, single seeds")
        plotted_widths += widths
    if not any(o.applicable for o in outcomes):
        plt.close(fig)
        return outcomes
    ticks = sorted(set(plotted_widths))
    ax.set_xticks(ticks, [str(w) for w in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("width m (hidden units or channels)")
    ax.set_ylabel("RMS (L_m - L_inf) / S_inf (ratio)")
    readable_log_ticks(ax, "y")
    ax.set_title("R1: finite-width loss L_m -> L_inf")
    ax.legend(fontsize=8)
    save_figure(ctx, fig, "r1_loss_vs_width.png", [o for o in outcomes if o.applicable])
    return outcomes


def _rms(errors: np.ndarray) -> np.ndarray:
    """RMS over seeds and probes: errors has shape (seeds, widths, probes)."""
    return np.sqrt(np.mean(errors**2, axis=(0, 2)))


def _attack_archs(ctx: Context) -> list[Architecture]:
    return _user_archs(ctx) or [parse_spec(ATTACK_ARCH)]


def _gradient_error(arch: Architecture, thetas, delta, points, method: str = "jvp") -> float:
    """Max relative difference between the attack's gradient (numerics.attack.loss_and_grad with ``method``, or
    the profiled loss L*(X) = min_lambda L(X, lambda) with ``method="profiled"``) and jax autodiff of the loss as
    written (for the profiled loss: at lambda*(X) from a dense solve of its normal equations, differentiated
    through the solve), over (X, lambda) points and softplus sharpness 10 and 200."""
    import jax
    import jax.numpy as jnp

    from numerics.attack import (factor_delta, fused_delta, fused_weights, loss_and_grad, profiled_loss_and_grad,
                                 reconstruction_loss)
    from numerics.networks import activation_fn, has_surrogate

    smooth = has_surrogate(arch)
    # the fused form gets its operands as parameter_space_attack prepares them (stored transposes, Delta W factored
    # where it is low-rank), so this check covers the path the attack runs
    run_thetas, run_delta = ((tuple(fused_weights(p) for p in thetas), fused_delta(factor_delta(delta)))
                             if method == "fused" else (thetas, delta))

    @jax.jit
    def both(x, lam, beta):
        phi = activation_fn(arch, smooth_beta=beta) if smooth else None
        loss_of = lambda x_, l_: reconstruction_loss(arch, thetas, delta, x_, l_, activation=phi)  # noqa: E731
        if method == "profiled":
            loss, grad_x, _, _ = profiled_loss_and_grad(arch, thetas, delta, x, activation=phi)

            def profiled(x_):
                flat = lambda l: loss_of(x_, l.reshape(lam.shape))  # noqa: E731
                zero = jnp.zeros(lam.size)
                return flat(jnp.linalg.solve(jax.hessian(flat)(zero), -jax.grad(flat)(zero)))

            reference_loss, reference_grad = jax.value_and_grad(profiled)(x)
            return (loss, (grad_x,)), (reference_loss, (reference_grad,))
        ours = loss_and_grad(arch, run_thetas, run_delta, x, lam, activation=phi, method=method)
        return ours, jax.value_and_grad(loss_of, argnums=(0, 1))(x, lam)

    worst = 0.0
    for x, lam in points:
        for beta in (10.0, 200.0):
            (loss, grads), (reference_loss, reference_grads) = both(x, lam, beta)
            worst = max(worst, abs(float(loss - reference_loss)) / float(reference_loss))
            for mine, theirs in zip(grads, reference_grads):
                worst = max(worst, float(np.linalg.norm(mine - theirs) / np.linalg.norm(theirs)))
    return worst


def check_attack_gradient(ctx: Context) -> list[Outcome]:
    """The attack's gradients (numerics.attack.loss_and_grad: JVP, fused and kernel forms; the profiled loss) against
    jax autodiff of the loss as written, at (theta_0, theta_f) (and at theta_0 alone on the full profile), for random
    (X_R, lambda) drawn like the attack's start and at 3x that scale, on GRADIENT_ARCHS or the user's chains."""
    import jax
    import jax.numpy as jnp

    from numerics.networks import make_network

    outcomes = []
    defaults = not ctx.archs
    for index, arch in enumerate(_user_archs(ctx) or [parse_spec(spec) for spec in GRADIENT_ARCHS]):
        seed = ctx.seed_for("r1-gradient", arch.spec)
        network = make_network(arch, 32, 2)
        dim = arch.input_dim_at_least(ATTACK_DIM)
        params_0 = network.init(jax.random.PRNGKey(seed), dim)
        rng = ctx.rng("r1-gradient", arch.spec)
        leaves, treedef = jax.tree_util.tree_flatten(params_0)
        params_f = jax.tree_util.tree_unflatten(treedef, [leaf + 0.05 * rng.normal(size=leaf.shape) for leaf in leaves])
        delta = jax.tree_util.tree_map(lambda a, b: a - b, params_f, params_0)
        points = [(jnp.asarray(scale * rng.normal(size=(ATTACK_M, dim))),
                   jnp.asarray(rng.uniform(-0.5, 0.5, size=(ATTACK_M, 2)))) for scale in (0.2, 0.6)]
        configurations = (("theta_0", (params_0,)), ("theta_0 and theta_f", (params_0, params_f)))
        for label, thetas in ctx.pick(configurations[1:], configurations):
            forms = (("jvp", "JVP form"), ("fused", "fused form"), ("kernel", "kernel form"),
                     ("profiled", "profiled lambda"))
            # quick profile: the profiled reference (a Hessian solve, ~5 s) on the first default chain alone, and on the
            # biased default chain only the forms that carry the bias term apart (the JVP form is autodiff of apply)
            if not ctx.quick:
                chosen = forms
            elif not defaults:
                chosen = forms[:3]
            else:
                chosen = forms if index == 0 else forms[1:3]
            for method, name in chosen:
                if method != "jvp" and not arch.is_mlp:
                    outcomes.append(not_applicable(
                        f"{arch.spec}, at {label}: attack gradient ({name})", "the kernel forms and the profiled "
                        "lambda are written for plain fully connected networks (dense > activation > ... > dense, as relu:2) "
                        "only; residual blocks and convolutions take the JVP form"))
                    continue
                outcomes.append(within(
                    f"{arch.named(32, short=True)}, C=2, at {label}: attack gradient ({name}) vs jax autodiff, max relative error",
                    _gradient_error(arch, thetas, delta, points, method), 1e-10,
                    "the same products summed in another order: float64 round-off (~1e-15); a wrong factor or sign "
                    "in either gradient component gives O(1)"))
    return outcomes


def check_finite_attack(ctx: Context) -> list[Outcome]:
    """The parameter-space attack (numerics.attack.parameter_space_attack, library defaults: Adam, softplus
    sharpness annealed 10 -> 200) on ATTACK_NETWORKS independent width-512 networks, each trained in its
    linearization on its own 4 sphere points: on at least ATTACK_MAJORITY of them the loss reaches ~0 and every
    training point is recovered, scored beside the trivial reconstructions (numerics.privacy)."""
    outcomes, drawn = [], {}
    for arch in _attack_archs(ctx):
        if arch.width_limit_obstacle and not arch.is_convolutional:
            outcomes.append(not_applicable(f"{arch.spec}: finite-width attack", arch.width_limit_obstacle + "; its "
                                           "Jacobian does not depend on the input, so only sum_i alpha_i x_i is "
                                           "recoverable, not the points"))
            continue
        if arch.is_convolutional:
            outcomes.append(not_applicable(
                f"{arch.spec}: finite-width attack", "the attack's defaults and this check's step budget and "
                "tolerances are calibrated for relu:2 at width 512 on S^4; on a convolutional chain they do not "
                "converge (measured on 3x3 images, conv3x3 > relu > conv3x3 > relu > gap > dense at 128 channels: "
                "loss 0.098 of ||Delta theta||^2 after 1000 steps, 3 of 4 points revealed); the attack on "
                "convolutional networks is run end to end by `proofs-check attack --arch`"))
            continue
        if arch.smooth:
            outcomes.append(not_applicable(
                f"{arch.spec}: finite-width attack", "this check's step budget and distance tolerance are calibrated "
                "on piecewise-linear activations (relu:2 over --seed 0-39; on relu:3, leaky_relu:2, abrelu:2 and "
                "relu:2:sb=0.1, 4 networks each at --seed 0, 13 of the 16 recover their training sets, the farthest "
                "point 0.0045 ... 0.037 away on all 16, the other 3 ending at a loss of 2.1e-3 ... 4.9e-3 of "
                "||Delta theta||^2, over the 2e-3 bar); on smooth ones the loss still "
                "reaches ~1e-4 of ||Delta theta||^2 in 1000 steps but the points are not pinned (measured: "
                "erf:2:sb=0.1 0.099 away, expr:2:phi=tanh(x) 0.52), and an odd activation without biases makes x "
                "and -x indistinguishable (J(-x) = -J(x); erf:2 1.08 away); run the attack itself with "
                "`proofs-check attack --arch`"))
            continue
        if arch.parameterization != "ntk":
            outcomes.append(not_applicable(
                f"{arch.spec}: finite-width attack", "the attack's defaults (Adam step 0.02, candidates at "
                "0.2 N(0, 1)) and this check's tolerances are set for NTK parametrization, in which the trained "
                "network stays in the kernel regime; standard parametrization is not calibrated here"))
            continue
        dim = arch.input_dim_at_least(ATTACK_DIM)
        networks = ctx.pick(*ATTACK_NETWORKS)
        runs = []
        for index in range(networks):
            runs.append(_finite_attack_on_one_network(ctx, arch, dim, index))
            ctx.advance(f"R1 finite-width attack {arch.spec} network {index + 1} of {networks}")
        rows = _finite_attack_outcomes(arch, dim, runs)
        drawn[arch.spec] = (runs, rows)
        outcomes.extend(rows)
    if drawn:
        _finite_attack_figure(ctx, drawn)
    return applicable_on_defaults(ctx, outcomes, ATTACK_ARCH)


def _finite_attack_on_one_network(ctx: Context, arch: Architecture, dim: int, index: int) -> dict:
    """Train network ``index`` (its own points, initialization and attack start; network 0 draws the seeds the
    single-network step drew, so earlier per-seed measurements describe it) in its linearization and attack it."""
    import jax
    import jax.numpy as jnp

    from numerics.attack import parameter_space_attack, reconstruction_loss
    from numerics.data import sphere
    from numerics.metrics import match
    from numerics.networks import make_network
    from numerics.privacy import leakage_table
    from numerics.training import ntk_matrix, train

    tags = network_tags(arch, index)
    seed = ctx.seed_for("r1-attack", *tags)
    data = sphere(ATTACK_N, dim, seed=seed)
    network = make_network(arch, ATTACK_WIDTH, 1)
    params_0 = network.init(jax.random.PRNGKey(seed), dim)
    lambda_max = float(np.linalg.eigvalsh(np.asarray(ntk_matrix(network, params_0, data.x)))[-1])
    trained = train(network, params_0, data.x, data.y, learning_rate=1.0 / lambda_max, momentum=0.9,
                    linearized=True, max_steps=5000, loss_threshold=1e-20, progress=False)
    result = parameter_space_attack(arch, trained.params_0, trained.params_f, ATTACK_M, in_dim=dim,
                                    key=jax.random.PRNGKey(seed + 1), steps=ATTACK_STEPS, progress=False,
                                    chunk=ATTACK_STEPS)
    scale = float(sum(jnp.sum(leaf**2) for leaf in jax.tree_util.tree_leaves(trained.delta)))
    unsmoothed = float(reconstruction_loss(arch, (trained.params_0,), trained.delta, jnp.asarray(result.x_recon),
                                           jnp.asarray(result.coefficients)))
    x_recon = np.asarray(result.x_recon)
    if arch.positively_homogeneous:
        x_recon = x_recon / np.linalg.norm(x_recon, axis=1, keepdims=True)
    scored = match(x_recon, data.x)
    public = sphere(64, dim, seed=seed + 2).x
    pool = sphere(64, dim, seed=seed + 3).x
    table = leakage_table({"attack": x_recon}, data.x, public, pool=pool, rng=ctx.rng("r1-baselines", *tags))
    trivial = max(row["revealed"] for row in table.values() if row["trivial"])
    return {"seed": seed, "loss_ratio": unsmoothed / scale, "max_distance": float(scored.max_distance),
            "matched_distances": scored.original_scores, "revealed": float(table["attack"]["revealed"]),
            "trivial_revealed": float(trivial), "leakage_table": table, "training_steps": trained.steps,
            "final_training_loss": trained.final_loss,
            "attack_loss_curve_first_last": [float(result.loss_curve[0]), float(result.loss_curve[-1])],
            "final_beta": result.info.get("final_beta")}


def _finite_attack_figure(ctx: Context, drawn: dict[str, tuple[list[dict], list[Outcome]]]) -> None:
    """Each network's attack loss against its farthest training point, with the two bars: the rate's picture
    (recovered networks lie in the lower left box, a spurious minimum above it, an unfinished attack to its right)."""
    from proofs_check.figures import new_figure, reference_line

    networks = sum(len(runs) for runs, _ in drawn.values())
    fig, ax = new_figure(title=f"R1: finite-width attack on {networks} networks of width {ATTACK_WIDTH}",
                         xlabel="L(X_R, lambda) / ||Delta theta||^2 after the attack (ratio)",
                         ylabel="farthest training point to its match (distance)")
    for color, (spec, (runs, _)) in enumerate(drawn.items()):
        losses = np.array([run["loss_ratio"] for run in runs])
        distances = np.array([run["max_distance"] for run in runs])
        revealed = np.array([run["revealed"] >= 1.0 for run in runs])
        if revealed.any():
            ax.loglog(losses[revealed], distances[revealed], "o", color=f"C{color}",
                      label=f"{spec}: every training point revealed")
        if not revealed.all():
            ax.loglog(losses[~revealed], distances[~revealed], "x", color=f"C{color}",
                      label=f"{spec}: a training point not revealed")
    reference_line(ax, x=ATTACK_LOSS_TOLERANCE, label=f"loss bar {ATTACK_LOSS_TOLERANCE:g}")
    reference_line(ax, y=ATTACK_DISTANCE_TOLERANCE, label=f"distance bar {ATTACK_DISTANCE_TOLERANCE:g}",
                   linestyle=":")
    readable_log_ticks(ax)
    ax.legend(fontsize=8)
    save_figure(ctx, fig, "r1_finite_attack.png", [row for _, rows in drawn.values() for row in rows])


def network_tags(arch: Architecture, index: int) -> tuple:
    """The seed tags of the finite-width attack's network ``index``: network 0 keeps the single-network step's
    (the architecture alone), so that per-seed measurements made before the step counted networks describe it."""
    return (arch.spec,) if index == 0 else (arch.spec, index)


def majority_needed(networks: int) -> int:
    """The fewest of ``networks`` that must pass: ceil(ATTACK_MAJORITY networks)."""
    return int(np.ceil(ATTACK_MAJORITY * networks - 1e-9))


def _count_outcome(name: str, passes: list[bool], reason: str, **details) -> Outcome:
    """Pass when at least majority_needed(len(passes)) of the networks pass; measured "k of K (CI lo-hi)", the exact
    (Clopper-Pearson) 95% interval of the rate (at most 40 characters: the report's measured column)."""
    from numerics.statistics import exact_rate_interval

    count, networks = int(sum(passes)), len(passes)
    low, high = exact_rate_interval(count, networks)
    needed = majority_needed(networks)
    return Outcome(name=name, passed=count >= needed,
                   measured=f"{count} of {networks} (CI {low:.2f}-{high:.2f})",
                   expected=f">= {needed} of {networks} (CI: the rate's exact 95% interval)", reason=reason,
                   details={"networks_passing": count, "networks": networks, "needed": needed,
                            "rate_interval_95": [low, high], **details})


def _finite_attack_outcomes(arch: Architecture, dim: int, runs: list[dict]) -> list[Outcome]:
    """The four rows of the finite-width attack over its networks: loss, distance, revealed, all three."""
    networks = len(runs)
    label = f"{arch.spec} m={ATTACK_WIDTH}, N={ATTACK_N} on S^{dim - 1}, M={ATTACK_M}, {networks} networks"
    small_loss = [run["loss_ratio"] <= ATTACK_LOSS_TOLERANCE for run in runs]
    close = [run["max_distance"] <= ATTACK_DISTANCE_TOLERANCE for run in runs]
    revealed = [run["revealed"] >= 1.0 and trivial_within_bar(run["trivial_revealed"]) for run in runs]
    per_network = {"seeds": [run["seed"] for run in runs]}
    outcomes = [
        _count_outcome(
            f"{label}: networks whose L(X_R, lambda) / ||Delta theta||^2 after {ATTACK_STEPS} steps (exact "
            f"activation) is <= {ATTACK_LOSS_TOLERANCE:g}", small_loss,
            "zero is reachable (X_R on X_T); the softplus smoothing biases the minimizer: with beta annealed "
            "10 -> 200 measured 3.0e-5 ... 1.6e-3 on 89 of the 96 networks of --seed 0-19, 28, 29, 35, 38, "
            "2.0e-3 ... 7.3e-3 on 6 (a second start reaches 7.9e-4 ... 1.1e-3 on network 0 of seeds 9, 19, 38) "
            "and 0.44 on 1; with the schedule reversed 4.4e-3 ... 3.8e-2 on all 20 networks of --seed 0-4",
            loss_ratios=[run["loss_ratio"] for run in runs], **per_network,
            training_steps=[run["training_steps"] for run in runs],
            final_training_losses=[run["final_training_loss"] for run in runs],
            attack_loss_curves_first_last=[run["attack_loss_curve_first_last"] for run in runs],
            final_beta=runs[0]["final_beta"]),
        _count_outcome(
            f"{label}: networks whose farthest training point is <= {ATTACK_DISTANCE_TOLERANCE:g} from its "
            "Hungarian-matched reconstruction"
            + (" (directions: the network is positively homogeneous)" if arch.positively_homogeneous else ""), close,
            "measured 0.005 ... 0.025 on 90 of the 96 networks of --seed 0-19, 28, 29, 35, 38 (the smoothing bias "
            "at beta = 200; on 6 a point is left 0.18 ... 1.13 away: spurious minima and one stuck attack); held-out "
            "sphere points are ~0.5 or more away",
            max_distances=[run["max_distance"] for run in runs],
            matched_distances=[run["matched_distances"] for run in runs], **per_network),
        _count_outcome(
            f"{label}: networks with every training point revealed (2x closer than to any of 64 held-out points), "
            f"no trivial reconstruction revealing more than {TRIVIAL_MAX_REVEALED} of {ATTACK_N}", revealed,
            "Theorem 1 at finite width in the kernel regime: every point is recovered; the trivial reconstructions "
            f"(mean, noise, held-out points) must reveal at most {TRIVIAL_MAX_REVEALED} of {ATTACK_N} on every "
            "network (simulated on this geometry: 0 in 278 of 300 draws, 1 in 22, never more; measured 1 of 4 on 7 of "
            "the 96 networks of the seed survey, never more)",
            revealed_fractions=[run["revealed"] for run in runs],
            trivial_max_revealed=[run["trivial_revealed"] for run in runs],
            leakage_tables=[run["leakage_table"] for run in runs], **per_network),
    ]
    trivial_worst = max(round(run["trivial_revealed"] * ATTACK_N) for run in runs)
    recovered = _count_outcome(
        f"{label}: networks on which the attack recovers the training set (all three rows above)",
        [a and b and c for a, b, c in zip(small_loss, close, revealed)],
        f"at finite width the loss does not always single out the data: {ATTACK_SUCCESS_TEXT}; a broken attack "
        "(the annealing reversed) recovers none",
        best_trivial_revealed_of_any_network=trivial_worst, **per_network)
    recovered.measured += f"; trivial {trivial_worst} of {ATTACK_N}"  # the best trivial reconstruction's
    for row in (outcomes[2], recovered):
        row.expected += f"; trivial <= {TRIVIAL_MAX_REVEALED} of {ATTACK_N} on every network"
    if trivial_worst > TRIVIAL_MAX_REVEALED:  # a measure that credits trivial reconstructions proves nothing
        outcomes[2].passed = recovered.passed = False
    outcomes.append(recovered)
    return outcomes


def _brute_force_assignment(cost: np.ndarray) -> float:
    """The smallest total cost of a one-to-one assignment of every column to a distinct row, by enumeration."""
    import itertools

    rows, cols = cost.shape
    return min(sum(cost[r, c] for r, c in zip(choice, range(cols)))
               for choice in itertools.permutations(range(rows), cols))


def check_scoring(ctx: Context) -> list[Outcome]:
    """numerics.metrics.match pairs reconstructions with training points correctly: a permuted, perturbed copy
    with decoys is matched back to its permutation, and the total cost equals the brute-force optimum on an
    instance where greedy matching is not optimal. The identity pairing fails both."""
    from numerics.metrics import match, pairwise_l2

    rng = ctx.rng("r1-scoring")
    originals = rng.normal(size=(6, 5))
    originals /= np.linalg.norm(originals, axis=1, keepdims=True)
    perm = rng.permutation(6)
    while np.any(perm == np.arange(6)):
        perm = rng.permutation(6)
    recon = np.vstack([originals[perm] + 1e-3 * rng.normal(size=(6, 5)), 3.0 + rng.normal(size=(3, 5))])
    result = match(recon, originals)
    expected_pairs = np.argsort(perm)  # recon row k holds original perm[k]
    right = bool(np.array_equal(result.recon_index, expected_pairs))
    identity = float(np.max(np.linalg.norm(recon[:6] - originals, axis=1)))
    pairing = within("permuted copy + 1e-3 noise + 3 decoys: max matched distance (and every pair right)",
                     result.max_distance, 1e-2,
                     "the true partner is 1e-3 sqrt(5) ~ 2e-3 away, every other candidate >= 0.1 on these points; "
                     "the identity pairing gives the distance in details", identity_pairing_max_distance=identity,
                     pairs_right=right)
    pairing.passed = pairing.passed and right and identity > 1e-2
    # optimality: greedy takes (1, 0.9) first and must then pair 0 with 2.0 (total 2.2); the optimum is 2.0
    points = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0]])
    candidates = np.array([[5.1, 0.0], [0.9, 0.0], [9.0, 0.0], [2.0, 0.0]])
    optimum = _brute_force_assignment(pairwise_l2(candidates, points))
    hungarian = match(candidates, points).total_score
    greedy = match(candidates, points, method="greedy").total_score
    identity_total = float(np.sum(np.linalg.norm(candidates[:3] - points, axis=1)))
    optimal = within("Hungarian total distance - brute-force optimum (4 candidates, 3 points)",
                     abs(hungarian - optimum), 1e-12,
                     "both sum the same 3 float64 distances: round-off ~1e-15; the greedy (2.2) and identity "
                     "(9.2) pairings are worse (details)", optimum=optimum, greedy=greedy,
                     identity=identity_total)
    optimal.passed = optimal.passed and greedy > optimum + 1e-3 and identity_total > optimum + 1e-3
    return [pairing, optimal]


CLAIM = register(Claim(
    id="R1",
    quick_seconds=42,
    title="The reconstruction loss and its kernel form",
    statement=("If Delta theta = J_0(X_T)^T alpha and theta* = theta_0, then ||Delta theta - J(X_R)^T lambda||^2 = "
               "alpha^T K_TT alpha - 2 alpha^T K_TR lambda + lambda^T K_RR lambda exactly; profiling lambda gives "
               "lambda* = K_RR^-1 K_RT alpha and the Schur complement L* >= 0; as width grows the loss tends to "
               "the RKHS distance L_inf between the weighted point sets. The attack minimizes this loss over "
               "(X_R, lambda) with lambda unconstrained: no labels, margins or homogeneity are needed."),
    assumptions=["Delta theta in the span of the training gradients at theta_0 (lazy / linearized training, D1)",
                 "K_RR invertible for the profiled form",
                 "NTK parametrization for the width limit (the standard parametrization's limit depends on width)",
                 "convolutional chains (--arch): inputs are 2x2 or 3x3 images (the next square of the dimension each "
                 "step draws); the width limit needs every convolution's channels set by the width (no c=)"],
    derivation=(
        "Expand the square: ||J_T^T alpha - J_R^T lambda||^2 = alpha^T J_T J_T^T alpha - 2 alpha^T J_T J_R^T lambda + "
        "lambda^T J_R J_R^T lambda, and J_A J_B^T = K_AB. The kernel form is a quadratic in lambda with Hessian "
        "2 K_RR; its stationary point is lambda* = K_RR^-1 K_RT alpha, and completing the square gives "
        "L(lambda) = L* + (lambda - lambda*)^T K_RR (lambda - lambda*) with L* = alpha^T (K_TT - K_TR K_RR^-1 K_RT) "
        "alpha, which equals ||J_T^T alpha - J_R^T lambda*||^2 >= 0 (for M = 1 it is an explicit sum of squares, "
        "Lagrange's identity). At infinite width K_theta0 -> Theta (K1), and by the reproducing property the "
        "kernel form becomes ||sum_i alpha_i Theta(x_i, .) - sum_j lambda_j Theta(x^R_j, .)||_H^2. At (X_T, alpha) "
        "the loss is exactly zero, so the attack has a global minimizer to find."),
    derivations=[
        Step("kernel form", "the parameter-space loss expanded into kernel quadratic forms, for symbolic Jacobians "
             "(single and two outputs)", derive_kernel_form,
             tolerance="exact symbolic identity; the unsimplified expression is also evaluated with 30 digits at "
                       "random points and must be below 1e-20 (a true identity leaves ~1e-28)"),
        Step("profiling", "lambda*, the Schur complement, completing the square, nonnegativity", derive_profile,
             tolerance="exact, as above"),
        Step("attack surrogate", "the smooth stand-in the finite-width attack minimizes with (relu family: "
             "a_+ softplus(beta x) / beta - a_- softplus(-beta x) / beta) tends to phi as beta -> oo, for every "
             "registered activation that has one and those of --arch", derive_surrogate,
             tolerance=f"exact limit on each sign of x; evaluated at beta = {SURROGATE_BETA_TEXT}: "
                       f"{SURROGATE_TOLERANCE:g} (O(1 / beta); a wrong coefficient is O(1))"),
    ],
    checks=[
        Step("identity", "kernel form (empirical NTK, layer by layer) vs parameter-space loss (one VJP) on "
             "hypothesis-drawn networks, points and coefficients, coincident points included", check_kernel_identity,
             tolerance=f"{IDENTITY_TOLERANCE:g} of the summed term sizes: both sides sum the same O(P) float64 "
                       "products in another order (measured <= 3.5e-16); normalizing by the term sizes keeps cancellation from hiding an "
                       "error"),
        Step("profiled loss", "numerics.attack.profiled_loss (Cholesky) vs the Schur complement by an independent "
             "solve, and the completed square around its lambda*", check_profiled_loss,
             tolerance=f"1e-10 relative: two float64 evaluations of one number; {COMPLETED_SQUARE_TOLERANCE:g} on the "
                       "ratio of the excess to d^T K_RR d, which is exactly 1 (float64 cancellation leaves ~1e-9; a "
                       "lambda* off by 1e-4 relative, ~1e-1)"),
        Step("zero at the training set", "L(X_T, alpha_T) with Delta theta and alpha_T from numerics.training.train "
             "(linearized, heavy-ball 0.9, mean loss)", check_zero_at_training_set,
             tolerance="1e-10 of ||Delta theta||: the identity Delta theta = J_0^T alpha_T is exact at every step; "
                       "round-off over ~400 steps amplified ~10x by the momentum is ~1e-13 (measured <= 4.9e-14), while "
                       "an accumulator without the momentum or the 1/N is off by O(1)"),
        Step("width limit", "RMS over seeds and probes of (L_m - L_inf) / S_inf at K1's widths (64-1024 quick; 16-256 "
             "channels for convolutional chains; L_m the loss of a width-m network, L_inf its kernel form with the "
             "analytic NTK, S_inf = |a^T Theta_TT a| + 2 |a^T Theta_TR l| + |l^T Theta_RR l| the size of its terms), "
             "log-log slope with a 95% bootstrap interval over seeds", check_width_limit,
             tolerance="-1/2 must lie in the interval, and an interval wider than 0.5 is inconclusive and fails "
                       "(measured -0.56 [-0.66, -0.45] for relu:2, -0.45 [-0.56, -0.34] for conv3x3 > relu > "
                       "conv3x3 > relu > gap > dense; probes drawn per seed, expanded interval; over 20 --seed values (0-18, 30) "
                       "relu:2 passed 20 of 20 with the plain interval, slopes -0.44 .. -0.63); every width is fitted and drawn, the smallest "
                       "(least asymptotic) included"),
        Step("attack gradient", "numerics.attack.loss_and_grad (the JVP, fused and kernel forms, which the attack "
             "chooses between) and the profiled-lambda loss's gradient vs jax autodiff of the loss as written, at "
             "(theta_0, theta_f) (full profile: also theta_0 alone), softplus sharpness 10 and 200, on relu:2 and "
             "relu:2:sb=0.3 (biases: the kernel forms carry s_b^2 apart); quick profile: the profiled loss on relu:2 "
             "and the fused and kernel forms on relu:2:sb=0.3 (with --arch: JVP, fused and kernel forms)",
             check_attack_gradient, tolerance="1e-10 relative: the same products summed in another order "
             "(measured ~1e-15); a wrong factor in either component gives O(1)"),
        Step("finite-width attack", "numerics.attack.parameter_space_attack with its defaults (Adam, softplus "
             "sharpness annealed 10 -> 200) and M = 12 candidates, 1000 steps, on independent width-512 relu:2 "
             "networks (4 quick, 16 full), each trained in its linearization on its own 4 points of S^4: per network "
             "the final loss, the matched distances and the revealed fraction beside trivial reconstructions; each "
             "row counts the networks where it holds, with the rate's exact 95% interval; a figure places each "
             "network's loss and farthest point against the two bars", check_finite_attack,
             tolerance="at least half of the networks on every row: 85 of the 96 networks of a 24-seed survey "
                       "recover their training sets, a broken attack (annealing reversed) none (binomial chance that "
                       "a rate of 0.85 gives fewer than 2 of 4: 1.2%); per network, loss 2e-3 of ||Delta theta||^2, "
                       "between the measured 3.0e-5 ... 1.6e-3 (beta annealed 10 -> 200, 89 of the 96) and "
                       "4.4e-3 ... 3.8e-2 (schedule reversed, 20 networks of --seed 0-4); distance 0.05 (measured "
                       "0.005 ... 0.025 on 90 of the 96; held-out points are ~0.5 away); every point revealed and no "
                       "trivial reconstruction revealing more than 1 of the 4 on any network (measured 1 of 4 on 7 "
                       "of the 96, never more; simulated: 0 in 278 of 300 draws, 1 in 22); "
                       "calibrated on piecewise-linear activations (n/a on smooth ones given by --arch: erf:2:sb=0.1 "
                       "measured 0.099 away; an n/a on the default relu:2 fails)"),
        Step("scoring", "numerics.metrics.match: a permuted copy with decoys is paired back, and the Hungarian "
             "total equals the brute-force optimum where greedy is not optimal", check_scoring,
             tolerance="1e-2 on the matched distance (the true partner is ~2e-3 away, any other >= 0.1); 1e-12 on "
                       "the total (the same float64 sums)"),
    ],
    uses_archs=True,
    observations=[
        "With --arch erf:2:sw=1.5:sb=0.1 the finite-width attack reaches a loss of 8e-6 of ||Delta theta||^2 but "
        "leaves one of the 4 points 0.064 away (3 of 4 revealed). On S^4 the first-layer variance is only 0.46, "
        "where erf is nearly linear and its kernel nearly of low rank, so a small loss pins locations weakly "
        "(compare T1's finite-rank counterexample); the check's tolerances are calibrated for relu:2 and the "
        "step reports this as a failure rather than widening them.",
        "One network recovers its training set at 34 of --seed 0-39 (network 0 of the finite-width attack step; "
        "each seed draws its own points, network and start). On 3 (seeds 9, 19, 38) the loss stops at "
        "2.0e-3 ... 7.3e-3 of ||Delta theta||^2, above the bar that sits between the right annealing schedule's "
        "losses and the reversed schedule's (7.1e-3 ... 2.6e-2), which it exists to catch (the distance alone "
        "misses the reversed schedule at --seed 1: 0.029); every point is still revealed there, and a second start "
        "reaches 7.9e-4 ... 1.1e-3. On 3 (seeds 28, 29, 35) the attack ends in a spurious minimum: the farthest "
        "point 0.18, 0.93, 0.81 away (3 of 4 revealed at 29 and 35) at an exact loss of 3.3e-4 ... 1.3e-3, as "
        "low as correct reconstructions reach, so keeping the lowest-loss of several starts does not remove it "
        "(4 starts at each seed: the lowest-loss one is still 0.13, 0.92, 0.061 away). At finite width the loss "
        "does not always single out the data, so the step states the claim as a rate: every row must hold on at "
        "least half of its networks (4 on the quick profile, 16 on the full one). " + ATTACK_SURVEY_TEXT],
    references=["Loo et al. 2023, arXiv:2302.01428, Sec. 3-4"],
))
