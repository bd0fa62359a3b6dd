"""R1: the reconstruction loss and its kernel form (THEORY.md, R1; Loo et al. 2023, arXiv:2302.01428)."""

from __future__ import annotations

import numpy as np

from proofs_check.figures import save_figure
from proofs_check.registry import Claim, Context, Outcome, Step, exact, fit_loglog_slope, rate, register, within
from theory.architecture import Architecture, parse_spec

IDENTITY_ARCHS = ("relu:2", "erf:3:sw=1.5:sb=0.1", "relu:2:sb=0.2:param=standard", "abrelu:1:sb=0.5")
RATE_ARCHS = ("relu:2", "erf:2:sw=1.5:sb=0.1")
SPOT_TOLERANCE = 1e-20
"""Spot checks evaluate the unsimplified identity with 30 significant digits: a true identity leaves ~1e-28."""


def certified(certificate, rng, *, samples: int = 3) -> Outcome:
    """An exact outcome for a symbolic certificate, failed also when its numerical spot check is not ~0."""
    spot = certificate.spot_check(rng, samples=samples)
    outcome = exact(certificate.name, certificate.residual, numerical_spot_check=spot)
    if spot > SPOT_TOLERANCE:
        outcome.passed = False
        outcome.details["numerical_failure"] = "the unsimplified identity is nonzero at a random point"
    return outcome


# ------------------------------------------------------------------------------------------------
# Derivations
# ------------------------------------------------------------------------------------------------

def derive_kernel_form(ctx: Context) -> list[Outcome]:
    """||J_T^T alpha - J_R^T lambda||^2 expanded into kernel quadratic forms, single and multi-output."""
    from theory.reconstruction import kernel_form_certificate

    rng = ctx.rng("r1-kernel-form")
    return [certified(kernel_form_certificate(n_out=c), rng) for c in (1, 2)]


def derive_profile(ctx: Context) -> list[Outcome]:
    """lambda* is stationary, L(lambda*) is the Schur complement, the square completes, and L* >= 0."""
    from theory.reconstruction import lagrange_certificate, profile_certificates, schur_norm_certificate

    rng = ctx.rng("r1-profile")
    certificates = profile_certificates() + [schur_norm_certificate(), lagrange_certificate()]
    return [certified(certificate, rng) for certificate in certificates]


# ------------------------------------------------------------------------------------------------
# Checks
# ------------------------------------------------------------------------------------------------

def _identity_archs(ctx: Context) -> list[Architecture]:
    return list(ctx.archs) if ctx.archs else [parse_spec(spec) for spec in IDENTITY_ARCHS]


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

    n, m, d, width = 5, 4, 4, 48
    floats = st.floats(-2, 2, allow_nan=False, allow_infinity=False)
    outcomes = []
    for index, arch in enumerate(_identity_archs(ctx)):
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
                max(errors), 1e-10,
                "both sides sum the same O(P) products in float64; normalized by the term sizes, so cancellation "
                "cannot hide an error; 1e-10 leaves room for summation order", width=width, n_train=n, n_recon=m))
    return outcomes


def _linearized_gd(arch: Architecture, params, x, y, *, lr: float, steps: int):
    """Full-batch GD on the linearization around theta_0 of (1/2) sum ||f - y||^2, with the accumulated
    step-size-weighted residual alpha = sum_t lr (y - f_lin,t(X)) (THEORY.md D1)."""
    import jax
    import jax.numpy as jnp

    from numerics.networks import forward

    f0, jvp_fn = jax.linearize(lambda p: forward(arch, p, x), params)
    vjp_fn = jax.linear_transpose(jvp_fn, params)

    @jax.jit
    def step(carry, _):
        theta_delta, alpha = carry
        residual = y - (f0 + jvp_fn(theta_delta))
        update = vjp_fn(lr * residual)[0]
        return (jax.tree_util.tree_map(lambda a, b: a + b, theta_delta, update), alpha + lr * residual), None

    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    (theta_delta, alpha), _ = jax.lax.scan(step, (zeros, jnp.zeros_like(y)), None, length=steps)
    return theta_delta, alpha


def check_zero_at_training_set(ctx: Context) -> list[Outcome]:
    """L(X_T, alpha) = 0 when Delta theta comes from gradient descent on the linearized network."""
    import jax
    import jax.numpy as jnp

    from numerics.attack import reconstruction_loss
    from numerics.networks import make_network

    outcomes = []
    for spec, out_dim in ctx.pick((("erf:2:sw=1.5:sb=0.1", 2),), (("relu:2", 1), ("erf:2:sw=1.5:sb=0.1", 2))):
        arch = parse_spec(spec)
        rng = ctx.rng("r1-zero", spec)
        x = rng.normal(size=(6, 5))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        y = rng.choice([-1.0, 1.0], size=(6, out_dim))
        network = make_network(arch, 128, out_dim)
        params = network.init(jax.random.PRNGKey(ctx.seed_for("r1-zero", spec)), 5)
        delta, alpha = _linearized_gd(arch, params, jnp.asarray(x), jnp.asarray(y), lr=0.2, steps=200)
        norm_sq = float(sum(jnp.sum(leaf**2) for leaf in jax.tree_util.tree_leaves(delta)))
        loss = float(reconstruction_loss(arch, (params,), delta, jnp.asarray(x), alpha))
        outcomes.append(within(
            f"{spec}, C={out_dim}: sqrt(L(X_T, alpha)) / ||Delta theta|| after 200 linearized GD steps",
            np.sqrt(max(loss, 0.0) / norm_sq), 1e-12,
            "each GD step adds J_0^T (lr r_t) to theta and lr r_t to alpha: exact in exact arithmetic, so only "
            "~200 steps of float64 round-off (~1e-14) remain", loss=loss, delta_theta_norm_sq=norm_sq))
    return outcomes


def _rate_archs(ctx: Context) -> list[Architecture]:
    return [parse_spec(spec) for spec in ctx.pick(RATE_ARCHS[:1], RATE_ARCHS)]


def _sub_network(params, width: int):
    """The first ``width`` units of every hidden layer: an exact draw of the width-``width`` network in NTK
    parametrization (weights are N(0, 1), the 1/sqrt(n) sits in the forward pass), so one draw at the
    largest width serves every width (common random numbers across widths)."""
    from numerics.networks import dense_layers

    count = len(dense_layers(params))
    out, index = [], 0
    for layer in params:
        if isinstance(layer, (tuple, list)) and len(layer) == 2:
            weights, bias = layer
            rows = slice(None) if index == 0 else slice(0, width)
            cols = slice(None) if index == count - 1 else slice(0, width)
            out.append((weights[rows, cols], None if bias is None else bias[..., cols]))
            index += 1
        else:
            out.append(layer)
    return out


def check_width_limit(ctx: Context) -> list[Outcome]:
    """RMS of (L_m - L_inf) / S_inf against width m over seeds and probes: fitted log-log slope -1/2.

    Each probe is a random (X_T, alpha, X_R, lambda) on the sphere with Delta theta = J_0(X_T)^T alpha;
    L_m is the parameter-space loss of a width-m network, L_inf the kernel form with the analytic NTK, and
    S_inf = |a^T Theta_TT a| + 2 |a^T Theta_TR l| + |l^T Theta_RR l| its scale (probes with small L_inf then
    weigh no more than others). L is linear in the kernel, whose error is O(m^-1/2) (K1). Widths start at
    128: at 64 the error is still visibly above the m^-1/2 line (pre-asymptotic), which steepens the fit.
    """
    import jax
    import jax.numpy as jnp

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from numerics.attack import jacobian_transpose_lambda, reconstruction_loss
    from numerics.kernels import analytic_ntk
    from numerics.networks import make_network

    widths = ctx.pick((128, 256, 512, 1024, 2048), (128, 256, 512, 1024, 2048, 4096))
    seeds, probes, d = ctx.pick(16, 48), 4, 5
    rng = ctx.rng("r1-width")

    def sphere(*shape):
        z = rng.normal(size=shape)
        return jnp.asarray(z / np.linalg.norm(z, axis=-1, keepdims=True))

    x_t, x_r = sphere(probes, 6, d), sphere(probes, 4, d)
    alpha, lam = jnp.asarray(rng.normal(size=(probes, 6, 1))), jnp.asarray(rng.normal(size=(probes, 4, 1)))
    outcomes = []
    fig, ax = plt.subplots(figsize=(5, 4))
    for arch in _rate_archs(ctx):
        if arch.parameterization != "ntk":
            raise ValueError(f"the nested-width draw needs NTK parametrization, got {arch.spec}")

        def limit_terms(xt, xr, a, l_):
            k_tt, k_tr, k_rr = (analytic_ntk(arch, p, q) for p, q in ((xt, xt), (xt, xr), (xr, xr)))
            terms = jnp.stack([(a.T @ k_tt @ a)[0, 0], -2.0 * (a.T @ k_tr @ l_)[0, 0], (l_.T @ k_rr @ l_)[0, 0]])
            return jnp.sum(terms), jnp.sum(jnp.abs(terms))

        limit, scale = (np.asarray(v) for v in jax.vmap(limit_terms)(x_t, x_r, alpha, lam))

        template = make_network(arch, max(widths)).init(jax.random.PRNGKey(0), d)
        leaves, treedef = jax.tree_util.tree_flatten(template)

        @jax.jit
        def finite_losses(params):
            """(widths, probes) parameter-space losses of the nested sub-networks of one draw."""
            def one(sub, xt, xr, a, l_):
                delta = jacobian_transpose_lambda(arch, sub, xt, a)
                return reconstruction_loss(arch, (sub,), delta, xr, l_)

            return jnp.stack([jax.vmap(one, in_axes=(None, 0, 0, 0, 0))(_sub_network(params, width), x_t, x_r,
                                                                          alpha, lam) for width in widths])

        errors = np.zeros((seeds, len(widths), probes))
        for seed in range(seeds):
            draw = np.random.default_rng(ctx.seed_for("r1-width", arch.spec, seed))
            # NTK parametrization: every weight and bias is N(0, 1) (stax's own init draws the same law)
            params = jax.tree_util.tree_unflatten(treedef, [draw.standard_normal(leaf.shape) for leaf in leaves])
            errors[seed] = (np.asarray(finite_losses(params)) - limit[None, :]) / scale[None, :]
            ctx.advance(f"R1 width {arch.spec} seed {seed}")
        rms = np.sqrt(np.mean(errors**2, axis=(0, 2)))
        slope, intercept = fit_loglog_slope(widths, rms)
        line = ax.loglog(widths, rms, "o", label=f"{arch.spec} (slope {slope:.2f})")
        ax.loglog(widths, np.exp(intercept) * np.asarray(widths, float) ** slope, "-", color=line[0].get_color())
        outcomes.append(rate(f"{arch.spec}: slope of RMS (L_m - L_inf) / S_inf vs width", slope, -0.5, 0.15,
                             f"{seeds} seeds x {probes} probes x {len(widths)} widths: the RMS of each width has "
                             "~10% spread, so the fitted slope moves by ~0.05-0.1", widths=list(widths), rms_errors=rms.tolist()))
    ax.set_xticks(widths, [str(w) for w in widths])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("width m")
    ax.set_ylabel("RMS (L_m - L_inf) / S_inf")
    ax.set_title("R1: parameter-space loss -> RKHS distance")
    ax.legend(fontsize=8)
    save_figure(ctx, fig, "r1_loss_vs_width.png", outcomes)
    return outcomes


CLAIM = register(Claim(
    id="R1",
    title="The reconstruction loss and its kernel form",
    statement=("If Delta theta = J_0(X_T)^T alpha and theta* = theta_0, then ||Delta theta - J(X_R)^T lambda||^2 = "
               "alpha^T K_TT alpha - 2 alpha^T K_TR lambda + lambda^T K_RR lambda exactly; profiling lambda gives "
               "lambda* = K_RR^-1 K_RT alpha and the Schur complement L* >= 0; as width grows the loss tends to "
               "the RKHS distance L_inf between the weighted point sets."),
    assumptions=["Delta theta in the span of the training gradients at theta_0 (lazy / linearized training)",
                 "K_RR invertible for the profiled form"],
    derivations=[
        Step("kernel form", "the parameter-space loss expanded into kernel quadratic forms", derive_kernel_form),
        Step("profiling", "lambda*, the Schur complement, completing the square, nonnegativity", derive_profile),
    ],
    checks=[
        Step("identity", "kernel form vs parameter-space loss, hypothesis-drawn cases", check_kernel_identity),
        Step("zero at the training set", "L(X_T, alpha) after linearized GD", check_zero_at_training_set),
        Step("width limit", "L_m -> L_inf at rate m^-1/2", check_width_limit),
    ],
    uses_archs=True,
))
