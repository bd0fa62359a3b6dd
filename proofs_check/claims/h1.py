"""H1: homogeneity (Euler's identity) and the KKT attack of Haim et al. 2022 beside Loo et al.'s (docs/claims.md#h1)."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import sympy as sp

from proofs_check.registry import Claim, Context, Outcome, Step, at_least, exact, register, within

EULER_TOLERANCE = 1e-12
"""|<theta, grad f> - L f| / sum_k |theta_k d f / d theta_k|: both sides are sums of the same products, so only
float64 round-off separates them (measured <= 4e-15 over the drawn networks); a bias term makes it O(1)."""
SPOT_TOLERANCE = 1e-20
"""The unsimplified symbolic residual evaluated at random rationals with 30 digits: a true identity gives ~0."""
BIAS_GAP = 1e-3
"""With biases the identity misses by sum_l (l - 1) <b_l, d f / d b_l> (derivation): measured 0.1 ... 0.6 relative
on relu:2:sb=0.5 networks; 1e-3 is far above round-off and far below what biases give."""
KKT_SETTINGS = {"quick": dict(n=20, width=128, steps=3000, seeds=3),
                "full": dict(n=20, width=256, steps=4000, seeds=3)}
"""Both profiles attack the issue's N = 20 digits on each of seeds ctx.seed, ctx.seed + 1, ctx.seed + 2 (each
reported; the revealed fractions are judged over all 60 digits): the quick profile on width-128 networks with 3000
attack steps (the six networks' runs about 80 s), the full profile at width 256 with 4000. One seed of 20 digits
moves a revealed fraction in steps of 0.05 and the quick profile's single-seed margins ranged 0.05-0.55 (two hidden
layers) and -0.05 to +0.15 (one) over --seed 0-7, both sides of the 0.1 line; pooled over three seeds they do not
cross it (measured in RECOVERY_MARGIN and REVEALED_CONTRAST)."""
PREMISE_RESIDUAL = 0.5
"""The rich networks' KKT residual must be well below a random theta's: measured 0.14-0.36 (one and two hidden
layers, N = 10 and 20, seeds 0-2) against 0.98 for the lazy network, whose theta_f is mostly its initialization."""
ATTACK_FIT = 1e-2
"""The attack must fit the KKT condition: relative KKT loss of the best restart on the two-hidden-layer network
measured 1.4e-3 ... 2.3e-3 (N = 20, width 256, seeds 0-2; up to 4.9e-3 on seeds 3-5) and 1e-4 ... 1.5e-3 (widths 64
and 128); an attack whose gradient in X is broken stays near 1 (the loss of X = 0)."""
MU_FLOOR = 0.0
"""The KKT condition's mu_i >= 0, on every coefficient the attack returns (all pooled restarts): its hinge
5 sum relu(mu_min - mu)^2 (mu_min = numerics.kkt.MU_MIN = 0.05) holds them near mu_min, measured min 0.056 over the
320 pooled coefficients (quick, seed 0) and 0.049-0.052 over three seeds' 960 at --seed 0-5 (the hinge is soft, so mu
dips just below mu_min, never near 0); with the hinge dropped 48 of 320 are negative, min -2.2 (and, measured
once, the best restart's KKT loss recomputed with mu clipped at 0 is 292x the loss it reports: no KKT condition)."""
RECOVERY_MARGIN = 0.1
"""The KKT attack on the two-hidden-layer network must reveal at least 0.1 more of the training digits than the best
trivial baseline, all seeds' digits pooled (6 of 60): measured 0.25 (full profile, seeds 0-2: 35% / 10% / 35%
against 5% / 0% / 0%, 2026-12-07; 0.32, 35% / 20% / 45%, measured 2026-12-05 on the same networks: see H1's
observations) and 0.32 / 0.27 / 0.28 / 0.30 / 0.33 / 0.33 at --seed 0-5 on the quick profile; single seeds
of 20 digits there measured 0.2 / 0.25 / 0.5 / 0.05 / 0.3 / 0.55 / 0.15 / 0.3 at seeds 0-7 (seed 3 below the line
alone). With the sign of the modified ReLU's derivative flipped the check fails (tests/test_mutations_finite.py)."""
REVEALED_CONTRAST = 0.1
"""Where the KKT condition does not identify the data the attack must reveal at least 0.1 fewer of the training digits
(pooled as above) on the one-hidden-layer network than on the two-hidden-layer network trained on the same digits:
measured 0.25 (full profile, seeds 0-2, 2026-12-07; 0.32 on 2026-12-05) and 0.30 / 0.23 / 0.22 / 0.22 / 0.23 / 0.25
at --seed 0-5 on the quick profile. Not "no more than the trivial baselines": one hidden layer alone revealed -0.05 /
0 / 0.1 / 0 / 0.1 / 0.15 / 0.05 / 0.05 beyond them at single seeds 0-7 (quick; 1 digit in 20 on average, a trivial
baseline at most 1), and with N = 10 digits on width-64 networks 40% against 60% for two hidden layers (seed 0): the
failure is one of degree, the ratio below is why. The attack's candidates replaced by the training digits make both
networks reveal everything and the check fails (tests/test_mutations_finite.py)."""
CLARKE_PREMISE = 0.03
"""The one-hidden-layer network's annealed limit must be a KKT point once its kink pairs take their Clarke slopes
(numerics.kkt.clarke_kkt_residual): measured 0.0053-0.011 (N = 20, width 256, seeds 0-2), 0.0079-0.016 (width 128,
seeds 0-7, the quick profile's networks), 0.0076 (width 16) and 6e-5 (N = 6, width 16); the same networks after GD
alone measure 0.083-0.20, after the direction phase without the annealing 0.21-0.36, so 0.03 separates a limit from
a run that stopped short of it (tests/test_mutations_finite.py skips the annealing)."""
SSIM_REFERENCE_TOLERANCE = 1e-10
"""max |numerics.metrics.pairwise_ssim - scikit-image's structural_similarity| over scored pairs of digits: the
vectorized SSIM repeats scipy's filter and scikit-image's formula in their operation order, measured 0.0 on this
claim's pairs (quick, seeds 0-2); 1e-10 is tests/test_ssim_vectorized.py's bar. SSIM_K2 = 0.3 measures 0.046-0.065,
SSIM_K1 = 0.1 3.8e-4 ... 1.3e-3 (seeds 0-2); the mean not added back before scoring 0.45 (seed 0)."""
KKT_CASE_TOLERANCE = 1e-12
"""kkt_residual on a hand-solved case against its exact value 1/sqrt(3): NNLS ends with one active column, a
one-column least squares, so only round-off separates them (measured 0.0); the unconstrained least squares gives 0,
0.577 away."""
TRUTH_RATIO = 0.02
"""Attack optimum / the same loss at the training set, one hidden layer: measured 0.0019-0.0042 (N = 20, width 256,
seeds 0-2) and 0.0033 / 0.0013 / 0.0058 / 0.0020 / 0.0051 / 0.0025 / 0.0038 / 0.0069 (width 128, the quick profile's
networks, seeds 0-7), so the objective prefers other point sets by two orders of magnitude. The two-hidden-layer
networks, where the attack does recover digits, measure 0.10 / 0.048 / 0.13 (N = 20, width 256, seeds 0-2) and 0.074
/ 0.035 / 0.12 / 0.024 / 0.074 / 0.056 / 0.027 / 0.025 (quick, seeds 0-7): 0.02 separates the two, with a factor 2.9
to the largest one-layer value and 1.2 to the smallest two-layer one (seed 3, where that network reveals 1 of 20
digits)."""


# ------------------------------------------------------------------------------------------------
# Symbolic: Euler's identity by induction over the layers
# ------------------------------------------------------------------------------------------------

def _euler_operator(expr: sp.Expr, weights: list[sp.Symbol]) -> sp.Expr:
    """E f = sum_k theta_k d f / d theta_k = d/dt f(t theta) at t = 1."""
    return sum(w * sp.diff(expr, w) for w in weights)


def _spot(expression: sp.Expr, symbols: list[sp.Symbol], rng: np.random.Generator) -> float:
    values = {s: sp.Rational(int(rng.integers(-97, 98)), int(rng.integers(1, 50))) for s in symbols}
    return float(abs(sp.N(expression.subs(values), 30)))


def _relu_region(h: sp.Expr, sign: int) -> tuple[sp.Expr, sp.Expr]:
    """relu and its derivative on the region where h has the given sign (1: h > 0, 0: h < 0): (s h, s)."""
    return sign * h, sp.Integer(sign)


def euler_base_case() -> sp.Expr:
    """E_{W_1} (W_1 x) - W_1 x for a symbolic 2 x 3 W_1: the first pre-activation is linear in W_1."""
    w = sp.Matrix(2, 3, lambda i, j: sp.Symbol(f"w_{i}{j}"))
    x = sp.Matrix(3, 1, lambda i, _: sp.Symbol(f"x_{i}"))
    h = w * x
    return sp.Matrix([_euler_operator(h[i], list(w)) - h[i] for i in range(2)])


def euler_induction_step() -> list[tuple[tuple[int, ...], sp.Matrix]]:
    """Hypothesis E h_l = l h_l (l symbolic). Step: h_{l+1} = W a_l, a_l = relu(h_l), so
    E h_{l+1} = W a_l + W (relu'(h_l) * E h_l) = W a_l + l W (relu'(h_l) * h_l) and relu'(z) z = relu(z) gives
    (l + 1) h_{l+1}. Residual E h_{l+1} - (l + 1) h_{l+1} for every sign pattern of a width-2 h_l."""
    l = sp.Symbol("l", positive=True, integer=True)
    w = sp.Matrix(2, 2, lambda i, j: sp.Symbol(f"v_{i}{j}"))
    h = sp.Matrix(2, 1, lambda i, _: sp.Symbol(f"h_{i}"))
    out = []
    for signs in itertools.product((0, 1), repeat=2):
        pieces = [_relu_region(h[i], s) for i, s in enumerate(signs)]
        a = sp.Matrix([p[0] for p in pieces])
        slope = sp.Matrix([p[1] for p in pieces])
        e_h = l * h                                     # induction hypothesis
        e_next = w * a + w * slope.multiply_elementwise(e_h)
        out.append((signs, sp.expand(e_next - (l + 1) * (w * a))))
    return out


def unrolled_network(depth: int, *, biases: bool) -> tuple[list, list[sp.Symbol], list[sp.Symbol]]:
    """f of a width-2 network with ``depth`` hidden layers on a 2-dimensional input, one expression per sign
    pattern of its hidden units (relu is linear on each region). Returns ([(signs, f)], theta, biases)."""
    x = sp.Matrix(2, 1, lambda i, _: sp.Symbol(f"x_{i}"))
    weights, bias_symbols = [], []
    layers = []
    for index in range(depth + 1):
        rows = 1 if index == depth else 2
        w = sp.Matrix(rows, 2, lambda i, j, k=index: sp.Symbol(f"W{k}_{i}{j}"))
        weights += list(w)
        b = sp.Matrix(rows, 1, lambda i, _, k=index: sp.Symbol(f"b{k}_{i}")) if biases else sp.zeros(rows, 1)
        if biases:
            bias_symbols += list(b)
        layers.append((w, b))
    patterns = []
    for signs in itertools.product((0, 1), repeat=2 * depth):
        a = x
        for index, (w, b) in enumerate(layers):
            h = w * a + b
            if index < depth:
                a = sp.Matrix([signs[2 * index + i] * h[i] for i in range(2)])
            else:
                a = h
        patterns.append((signs, sp.expand(a[0])))
    return patterns, weights, bias_symbols


def derive_euler(ctx: Context) -> list[Outcome]:
    """Base case, induction step (every sign pattern), and the unrolled identity for L = 2, 3, 4 weight layers."""
    rng = ctx.rng("h1-euler")
    outcomes = []
    base = euler_base_case()
    outcomes.append(exact("base: E(W_1 x) = W_1 x (first pre-activation linear in W_1)", sp.simplify(base).norm()))
    steps = euler_induction_step()
    failed = [signs for signs, residual in steps if residual != sp.zeros(2, 1)]
    outcomes.append(Outcome(
        name="step: E h_l = l h_l implies E h_{l+1} = (l + 1) h_{l+1} (relu'(z) z = relu(z), all 4 sign patterns)",
        passed=not failed, measured=f"{len(steps) - len(failed)} of {len(steps)} residuals == 0",
        expected="every residual == 0 (exact)", reason="symbolic identity: no tolerance", kind="derivation",
        details={"failed_patterns": failed}))
    for depth in ctx.pick((1, 2), (1, 2, 3)):
        patterns, weights, _ = unrolled_network(depth, biases=False)
        raw = [_euler_operator(f, weights) - (depth + 1) * f for _, f in patterns]
        residuals = [sp.expand(r) for r in raw]
        nonzero = sum(r != 0 for r in residuals)
        # the spot check reads the residual before expansion: a wrong simplification cannot pass both
        spot = max(_spot(r, sorted(r.free_symbols, key=str), rng) if r.free_symbols else float(abs(r)) for r in raw)
        outcome = Outcome(
            name=f"unrolled: <theta, grad f> = {depth + 1} f for {depth} hidden layer(s), all {len(patterns)} "
                 "sign patterns", passed=nonzero == 0 and spot <= SPOT_TOLERANCE,
            measured=f"{len(patterns) - nonzero} of {len(patterns)} residuals == 0", expected="every residual == 0",
            reason="symbolic identity: no tolerance; spot check at random rationals", kind="derivation",
            details={"numerical_spot_check": spot})
        outcomes.append(outcome)
    return outcomes


def derive_bias_gap(ctx: Context) -> list[Outcome]:
    """With biases: E f - L f = -sum_l (l - 1) sum_i b_{l,i} d f / d b_{l,i} (the bias of layer l is homogeneous of
    degree L - l + 1), nonzero; derived exactly on the unrolled one- and two-hidden-layer networks."""
    outcomes = []
    for depth in (1, 2):
        patterns, weights, biases = unrolled_network(depth, biases=True)
        all_params = weights + biases
        wrong, predicted_ok = 0, 0
        for _, f in patterns:
            gap = sp.expand(_euler_operator(f, all_params) - (depth + 1) * f)
            # the bias of layer l (1-based; symbol b{l-1}_i) is multiplied by the L - l weight layers above it:
            # degree L - l + 1, short of L by l - 1
            predicted = -sum(int(str(b)[1]) * b * sp.diff(f, b) for b in biases)
            wrong += gap != 0
            predicted_ok += sp.expand(gap - predicted) == 0
        outcomes.append(Outcome(
            name=f"{depth} hidden layer(s) with biases: E f - L f == -sum_l (l - 1) <b_l, df/db_l> on all "
                 f"{len(patterns)} sign patterns, and it is nonzero",
            passed=predicted_ok == len(patterns) and wrong > 0, measured=f"{predicted_ok} of {len(patterns)} match; "
            f"{wrong} nonzero", expected="all match, some nonzero", reason="symbolic identity: no tolerance",
            kind="derivation"))
    return outcomes


# ------------------------------------------------------------------------------------------------
# Numerical checks
# ------------------------------------------------------------------------------------------------

def euler_error(spec: str, width: int, in_dim: int, seed: int, scale: float) -> float:
    """|<theta, grad_theta f(x)> - L f(x)| / sum_k |theta_k d f / d theta_k| for the project's network of ``spec``
    (numerics.networks, neural-tangents parameters) at a random x; one jitted jax.grad."""
    import jax
    import jax.numpy as jnp

    from numerics.networks import make_network
    from theory.architecture import parse_spec

    network = make_network(parse_spec(spec), width)
    key_p, key_x = jax.random.split(jax.random.PRNGKey(seed))
    params = network.init(key_p, in_dim)
    x = scale * jax.random.normal(key_x, (1, in_dim), jnp.float64)
    return float(_relative_euler_gap(network.apply, params, x))


def _relative_euler_gap(apply, params, x):
    return _gap_function(apply)(params, x)


@functools.lru_cache(maxsize=None)
def _gap_function(apply):
    """The jitted relative gap for one network's apply function (one compilation per network shape)."""
    import jax
    import jax.numpy as jnp

    from numerics.networks import dense_layers

    def gap(p, x):
        value, grad = jax.value_and_grad(lambda q: apply(q, x)[0, 0])(p)
        pairs = list(zip(jax.tree.leaves(p), jax.tree.leaves(grad)))
        inner = sum(jnp.sum(a * g) for a, g in pairs)
        magnitude = sum(jnp.sum(jnp.abs(a * g)) for a, g in pairs)
        return jnp.where(magnitude > 0, jnp.abs(inner - len(dense_layers(p)) * value) / magnitude, 0.0)

    return jax.jit(gap)


PADDED_WIDTH, PADDED_INPUT = 64, 10


def _padded_network_gap(depth: int):
    """A jitted <theta, grad f> - L f evaluator for bias-free networks of ``depth`` hidden layers padded to
    PADDED_WIDTH units and PADDED_INPUT inputs (zero weights for the absent units: relu(0) = 0 adds nothing),
    with per-layer multipliers c_l (NTK: sigma_w / sqrt(fan-in); standard: 1) and activation
    a min(z, 0) + b max(z, 0); one compilation per depth serves every drawn width and parametrization."""
    import jax
    import jax.numpy as jnp

    @jax.jit
    def gap(weights, multipliers, slopes, x):
        def f(ws):
            a = x
            for index, w in enumerate(ws):
                h = multipliers[index] * (a @ w)
                a = slopes[0] * jnp.minimum(h, 0) + slopes[1] * jnp.maximum(h, 0) if index < depth else h
            return a[0, 0]

        value, grad = jax.value_and_grad(f)(weights)
        inner = sum(jnp.sum(w * g) for w, g in zip(weights, grad))
        magnitude = sum(jnp.sum(jnp.abs(w * g)) for w, g in zip(weights, grad))
        return jnp.where(magnitude > 0, jnp.abs(inner - (depth + 1) * value) / magnitude, 0.0)

    return gap


def check_euler_numeric(ctx: Context) -> list[Outcome]:
    """Hypothesis draws bias-free homogeneous networks (relu, leaky relu, abrelu; 1-3 hidden layers; width 1-64;
    input dimension 1-10; NTK or standard parametrization; sigma_w 0.1-3; input scale 1e-3-1e3), evaluated
    padded to a fixed shape (one compilation per depth); and the project's own networks (numerics.networks)."""
    import jax.numpy as jnp
    from hypothesis import HealthCheck, given, settings, strategies as st

    gaps = functools.lru_cache(maxsize=None)(_padded_network_gap)
    errors: list[tuple[float, str]] = []
    activations = st.sampled_from([("relu", 0.0, 1.0), ("leaky_relu", 0.2, 1.0), ("abrelu", -0.3, 1.5)])

    @settings(max_examples=ctx.pick(100, 500), derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(activations, st.integers(1, 3), st.integers(1, PADDED_WIDTH), st.integers(1, PADDED_INPUT),
           st.sampled_from(["ntk", "standard"]), st.floats(0.1, 3.0), st.floats(1e-3, 1e3), st.integers(0, 2**31 - 1))
    def draw(activation, depth, width, in_dim, param, sw, scale, seed):
        rng = np.random.default_rng(seed)
        fans = [in_dim] + [width] * depth
        outs = [width] * depth + [1]
        weights, multipliers = [], []
        for index, (fan, out) in enumerate(zip(fans, outs)):
            rows = PADDED_INPUT if index == 0 else PADDED_WIDTH
            cols = 1 if index == depth else PADDED_WIDTH
            w = np.zeros((rows, cols))
            std = 1.0 if param == "ntk" else sw / np.sqrt(fan)
            w[:fan, :out] = std * rng.standard_normal((fan, out))
            weights.append(jnp.asarray(w))
            multipliers.append(sw / np.sqrt(fan) if param == "ntk" else 1.0)
        x = np.zeros((1, PADDED_INPUT))
        x[0, :in_dim] = scale * rng.standard_normal(in_dim)
        value = float(gaps(depth)(weights, jnp.asarray(multipliers), jnp.asarray(activation[1:]), jnp.asarray(x)))
        errors.append((value, f"{activation[0]}:{depth}:sw={sw:.3g}:param={param} m={width} d={in_dim}"))

    draw()
    worst = max(errors)
    drawn = within(f"max relative |<theta, grad f> - L f| over {len(errors)} hypothesis-drawn bias-free networks",
                   worst[0], EULER_TOLERANCE, "both sides are sums of the same products; float64 round-off only",
                   worst_network=worst[1], median=float(np.median([e for e, _ in errors])))
    own = [(euler_error(spec, 48, 7, ctx.seed_for("h1-own", spec), 3.0), spec)
           for spec in ("relu:2", "relu:3:sw=1.7:param=standard")]
    project = within("the same on the project's own networks (numerics.networks, neural-tangents parameters): "
                     + ", ".join(spec for _, spec in own), max(e for e, _ in own), EULER_TOLERANCE,
                     "round-off only", errors=[e for e, _ in own])
    return [drawn, project]


def counterexample_biases(ctx: Context) -> Outcome:
    """relu:2:sb=0.5 networks: biases break the identity by O(1)."""
    errors = [euler_error("relu:2:sb=0.5", 32, 5, ctx.seed_for("h1-bias", k), 1.0) for k in range(5)]
    return at_least("relu:2:sb=0.5, width 32: min over 5 networks of |<theta, grad f> - 3 f| / sum |theta_k g_k|",
                    min(errors), BIAS_GAP, "biases have lower homogeneity degree (derived above); round-off is 1e-15",
                    errors=errors)


# ------------------------------------------------------------------------------------------------
# The KKT attack and Loo et al.'s attack, lazy and rich
# ------------------------------------------------------------------------------------------------

_EXPERIMENTS: dict[tuple, dict] = {}


def kkt_seeds(ctx: Context) -> list[int]:
    return [ctx.seed + k for k in range(KKT_SETTINGS[ctx.profile]["seeds"])]


def _experiment(ctx: Context, regime: str, seed: int) -> dict:
    from numerics.kkt import regime_experiment

    settings = KKT_SETTINGS[ctx.profile]
    key = (seed, ctx.profile, regime, tuple(sorted(settings.items())))
    if key not in _EXPERIMENTS:
        attacks = ("kkt",) if ctx.quick else ("kkt", "loo")
        _EXPERIMENTS[key] = regime_experiment(regime, n=settings["n"], seed=seed, attack_steps=settings["steps"],
                                              rich_width=settings["width"], attacks=attacks)
    return _EXPERIMENTS[key]


def _per_seed(results: list[dict]) -> dict:
    """What each seed measured: premise, attack fit, the loss at the truth, revealed / SSIM >= 0.9 and the curve."""
    return {str(r["seed"]): {"kkt_residual": r["kkt_residual"], "attack_kkt_loss": r["kkt_attack_loss"],
                             "clarke_kkt_residual": (r.get("clarke") or {}).get("residual"),
                             "kink_pairs": (r.get("clarke") or {}).get("kink_pairs"),
                             "truth_kkt_loss": r["truth_kkt_loss"], "revealed": r["scores"]["kkt"]["revealed"],
                             "ssim_ge_0.9": r["scores"]["kkt"].get("ssim_ge_0.9"),
                             "best_trivial_revealed": max(b["revealed"] for b in r["baselines"].values()),
                             "best_trivial_ssim_ge_0.9": max(b.get("ssim_ge_0.9", 0.0) for b in r["baselines"].values()),
                             "attack_curve": r.get("kkt_curve")} for r in results}


def _runs(ctx: Context, regime: str = "rich") -> list[dict]:
    return [_experiment(ctx, regime, seed) for seed in kkt_seeds(ctx)]


def _margins(results: list[dict]) -> list[float]:
    """Per seed: the fraction of training digits the KKT attack reveals minus the best trivial baseline's."""
    return [r["scores"]["kkt"]["revealed"] - max(b["revealed"] for b in r["baselines"].values()) for r in results]


def _per_seed_text(values: list[float]) -> str:
    """'0.05 / 0.3 / 0.55': what each seed measured, for the report's reason column."""
    return " / ".join(f"{value:.2g}" for value in values)


def _pooled_counts(results: list[dict]) -> tuple[int, int, int]:
    """(digits the KKT attack reveals, digits the best trivial baseline reveals, digits attacked), all the seeds'
    digits pooled: the best baseline is the one revealing the most of all the digits, not each seed's best. Counts,
    so that a margin of exactly 6 of 60 digits is 0.1 and not 0.1 less a rounding error."""
    if not results:
        raise ValueError("no seeds to pool")
    names = set(results[0]["baselines"])
    if any(set(r["baselines"]) != names for r in results):
        raise ValueError("the seeds were scored against different trivial baselines: "
                         f"{sorted({tuple(sorted(r['baselines'])) for r in results})}")
    if len({r["n"] for r in results}) > 1:
        raise ValueError(f"the seeds attacked different numbers of digits: {[r['n'] for r in results]}")

    def count(fraction: float, n: int) -> int:
        if not np.isfinite(fraction):
            raise ValueError(f"a revealed fraction is not a number: {fraction}")
        return round(fraction * n)        # the fractions are counts / N

    attack = sum(count(r["scores"]["kkt"]["revealed"], r["n"]) for r in results)
    best = max(sum(count(r["baselines"][name]["revealed"], r["n"]) for r in results) for name in names)
    return attack, best, sum(r["n"] for r in results)


def _pooled_margin(results: list[dict]) -> float:
    """The fraction of all the seeds' training digits the KKT attack reveals minus the best trivial baseline's
    fraction of the same digits (_pooled_counts)."""
    attack, best, digits = _pooled_counts(results)
    return (attack - best) / digits


def _contrast(two_layers: list[dict], one_layer: list[dict]) -> float:
    """Pooled margin on the two-hidden-layer networks minus the one-hidden-layer networks' on the same digits, from
    counts (exact at multiples of 1 / digits)."""
    draws = [[(r["seed"], r["n"]) for r in runs] for runs in (two_layers, one_layer)]
    if draws[0] != draws[1]:
        raise ValueError(f"the two networks were attacked on different draws of digits (seed, N): {draws}")
    (attack_2, best_2, digits), (attack_1, best_1, _) = _pooled_counts(two_layers), _pooled_counts(one_layer)
    return ((attack_2 - best_2) - (attack_1 - best_1)) / digits


def _network_label(result: dict) -> str:
    return f"{result['spec']}, width {result['width']}, N = {result['n']}, seeds"


def check_kkt_attack(ctx: Context) -> list[Outcome]:
    """The KKT attack (theta_f alone) on a bias-free network with two hidden layers (standard parametrization,
    initialization scale 2) trained with the logistic loss on digits odd/even toward its limit direction: the
    premise (KKT residual) and the attack's fit of the KKT condition on every seed."""
    results = _runs(ctx)
    label, seeds = _network_label(results[0]), kkt_seeds(ctx)
    per_seed = _per_seed(results)
    premise = within(f"{label} {seeds}: max KKT stationarity residual of theta_f on the training set, "
                     "min_(mu >= 0) ||theta - sum mu_i y_i grad f(x_i)|| / ||theta||",
                     max(r["kkt_residual"] for r in results), PREMISE_RESIDUAL,
                     "well below a random theta's (lazy network: 0.98); not ~0: training digits sit on ReLU kinks "
                     "(docs/finite-width.md), where this residual fixes relu'(0) = 1/2 (the Clarke form, slopes "
                     "free, is written for one hidden layer: the counterexample's premise)", per_seed=per_seed)
    fit = within(f"{label} {seeds}: max relative KKT loss reached by the attack (best of its restarts, "
                 "chosen by that loss)", max(r["kkt_attack_loss"] for r in results), ATTACK_FIT,
                 "the attack solves its problem (measured <= 4.9e-3, seeds 0-5); a broken attack stays near 1", per_seed=per_seed)
    mus = {str(r["seed"]): r["kkt_mu"] for r in results}
    sign = at_least(f"{label} {seeds}: min over seeds and every returned candidate (all restarts pooled) of the "
                    "attack's coefficient mu_i (the KKT condition needs mu_i >= 0)", min(m["min"] for m in mus.values()),
                    MU_FLOOR, "the condition's sign; the attack's hinge holds mu near mu_min = 0.05 (measured min "
                    "0.049-0.052, quick, --seed 0-5); without it 48 of 320 are negative (min -2.2)", per_seed=mus)
    return [premise, fit, sign]


def check_kkt_residual_known_case(ctx: Context) -> Outcome:
    """numerics.kkt.kkt_residual, the premise's residual, on a case solved by hand where mu >= 0 binds:
    f(x) = v relu(w . x) with w = (1, 0), v = 1 (theta = (1, 0, 1)), points x_1 = (1, 1), y_1 = +1 and
    x_2 = (1, -1), y_2 = -1, so y_i grad f(x_i) = (1, 1, 1) and (-1, 1, -1). Unconstrained, mu = (1/2, -1/2) fits
    theta exactly (residual 0); with mu >= 0, <theta, y_2 grad f(x_2)> = -2 < 0 leaves mu_2 = 0, mu_1 = 2/3 and
    the residual ||(1/3, -2/3, 1/3)|| / sqrt(2) = 1/sqrt(3). Also scipy's NNLS on the hand-written Jacobian."""
    import jax.numpy as jnp
    from scipy.optimize import nnls

    from numerics.kkt import kkt_residual
    from numerics.networks import make_network
    from theory.architecture import parse_spec

    network = make_network(parse_spec("relu:1:param=standard"), 1)
    params = [(jnp.array([[1.0], [0.0]]), None), (), (jnp.array([[1.0]]), None)]
    x, y = np.array([[1.0, 1.0], [1.0, -1.0]]), np.array([1.0, -1.0])
    theta = np.array([1.0, 0.0, 1.0])
    columns = np.array([[1.0, 1.0, 1.0], [-1.0, 1.0, -1.0]]).T        # y_i grad f(x_i), written out by hand
    nnls_residual = nnls(columns, theta)[1] / np.linalg.norm(theta)
    free_mu = np.linalg.lstsq(columns, theta, rcond=None)[0]
    unconstrained = np.linalg.norm(theta - columns @ free_mu) / np.linalg.norm(theta)
    exact = 1.0 / np.sqrt(3.0)
    value = kkt_residual(network, params, x, y)
    error = max(abs(value - exact), abs(nnls_residual - exact))  # the code, and the hand derivation by scipy's NNLS
    return within("|kkt_residual - 1/sqrt(3)| on a hand-solved case where mu >= 0 binds (unconstrained least squares: "
                  "mu_2 = -1/2, residual 0), and scipy's NNLS on the hand-written Jacobian", error, KKT_CASE_TOLERANCE,
                  f"round-off only (measured {error:.2g}); the unconstrained residual "
                  f"{unconstrained:.2g} would miss by {exact - unconstrained:.3f}",
                  kkt_residual=value, exact=exact, scipy_nnls_on_the_hand_jacobian=float(nnls_residual),
                  unconstrained_least_squares=float(unconstrained),
                  network_outputs=np.asarray(network.apply(params, jnp.asarray(x))).reshape(-1).tolist())


def check_ssim_reference(ctx: Context) -> Outcome:
    """The vectorized SSIM behind this claim's SSIM scores (numerics.metrics.pairwise_ssim, through
    numerics.privacy.leakage_scores' matching) against scikit-image's structural_similarity, one call per pair with
    the same 7 x 7 window and data range, on pairs scored as the held-out-digits baseline is: KKT_RESTARTS x 2N
    held-out digits from the pool (this step's own draw), Hungarian-matched to the N training digits by the
    vectorized SSIM, the dataset mean added back, by numerics.privacy.leakage_scores as the claim scores every set:
    its SSIM curve and thresholded fractions against scikit-image's on the same pairs. The attack's reconstructions
    go through the same function."""
    from skimage.metrics import structural_similarity

    from numerics import audit, privacy
    from numerics.kkt import KKT_RESTARTS
    from numerics.metrics import match

    n = KKT_SETTINGS[ctx.profile]["n"]
    dataset = audit.load_dataset("digits-odd-even", n, seed=ctx.seed)
    references = audit.reference_sets("digits-odd-even", dataset, seed=ctx.seed)
    held_out = privacy.trivial_reconstructions(KKT_RESTARTS * 2 * n, pool=references.pool, mean=references.mean,
                                               pool_labels=references.pool_labels,
                                               rng=ctx.rng("h1-ssim"))["held-out points"]
    scores = privacy.leakage_scores(held_out, dataset.x, references.public, image_shape=dataset.image_shape,
                                    offset=dataset.mean)  # the claim's own scoring
    recon, originals = held_out + dataset.mean, dataset.x + dataset.mean
    matched = match(recon, originals, metric="ssim", image_shape=dataset.image_shape)  # which pairs it scored
    data_range = float(originals.max() - originals.min())
    reference = np.array([structural_similarity(recon[i].reshape(dataset.image_shape),
                                                originals[j].reshape(dataset.image_shape), data_range=data_range)
                          for i, j in zip(matched.recon_index, matched.original_index)])
    curve = np.asarray(scores["ssim_curve"])  # best first, as the claim reports it
    difference = float(np.max(np.abs(curve - np.sort(reference)[::-1])))
    difference = max(difference, *(abs(scores[f"ssim_ge_{t:g}"] - float(np.mean(reference >= t)))
                                    for t in privacy.SSIM_THRESHOLDS))
    return within(f"max |vectorized SSIM - scikit-image's structural_similarity| over the {reference.size} scored "
                  f"pairs of {len(recon)} held-out digits and the N = {n} training digits (7 x 7 window, data range "
                  f"{data_range:.3g}), and of the fractions above the claim's SSIM thresholds", difference, SSIM_REFERENCE_TOLERANCE,
                  f"the same formula in the same operation order (measured {difference:.2g}); the stabilizing "
                  "constants off measure 0.053 (K2 = 0.3) and 7.2e-4 (K1 = 0.1), centred digits scored 0.45, seed 0",
                  ssim_range=[float(reference.min()), float(reference.max())])


def check_kkt_recovery(ctx: Context) -> list[Outcome]:
    """The KKT attack recovers training digits from theta_f alone: of all the seeds' digits pooled it reveals
    RECOVERY_MARGIN more than the best trivial baseline (the mean image, noise, the class means, held-out digits),
    under the project's revealed criterion; with the leakage figure and the attack curve."""
    from numerics import audit
    from numerics.kkt import kkt_curve_figure, kkt_figure
    from proofs_check import figures

    results = _runs(ctx)
    label, seeds = _network_label(results[0]), kkt_seeds(ctx)
    margins = _margins(results)
    digits = len(results) * results[0]["n"]
    outcome = at_least(f"{label} {seeds}: (fraction of the {digits} training digits of all seeds revealed by the KKT "
                       f"attack, {results[0]['kkt_options']['restarts']} restarts pooled) - (best trivial baseline's "
                       "fraction of the same digits)", _pooled_margin(results), RECOVERY_MARGIN,
                       f"per seed ({', '.join(map(str, seeds))}): {_per_seed_text(margins)}; the bar: "
                       f"{RECOVERY_MARGIN * digits:g} of {digits} digits beyond every trivial reconstruction (measured "
                       "0.25-0.32 at width 256, seeds 0-2; 0.27-0.33 on the quick profile at --seed 0-5; single seeds "
                       "0.05-0.55)",
                       margins=margins, per_seed=_per_seed(results))
    kkt_figure(ctx, results[0], [outcome])
    kkt_curve_figure(ctx, results, [outcome])
    first = results[0]
    dataset = audit.load_dataset("digits-odd-even", first["n"], seed=first["seed"])
    path = figures.matched_reconstruction_grid(
        ctx.figure_path(f"h1_kkt_reconstructions_n{first['n']}.png"), first["recon_kkt"], dataset,
        f"KKT attack (theta_f alone), {first['spec']}, m={first['width']}, seed {first['seed']}: revealed (factor 2) "
        f"{first['scores']['kkt']['revealed']:.0%}; SSIM >= 0.9 {first['scores']['kkt'].get('ssim_ge_0.9', 0):.0%}, "
        f"held-out digits drawn to the same count {first['baselines']['held-out points'].get('ssim_ge_0.9', 0):.0%}")
    outcome.figures.append(str(path.relative_to(ctx.out_dir)))
    return [outcome]


def counterexample_identifiability(ctx: Context) -> list[Outcome]:
    """Where the KKT attack fails: a one-hidden-layer network trained to its limit is a KKT point (with Clarke slopes
    at the kinks), yet the attack's objective is far lower at point sets other than the training set, so nothing in
    it favours the data (its first layer collapses to rank ~5, so M = 2N candidates in 64 dimensions fit the
    condition in many ways)."""
    results = _runs(ctx, "rich-one-layer")
    label, seeds = _network_label(results[0]), kkt_seeds(ctx)
    residuals = [r["clarke"]["residual"] for r in results]
    premise = within(f"{label} {seeds}: max over seeds of the KKT stationarity residual of theta_f with a Clarke slope "
                     "relu'(0) in [0, 1] free at each kink pair, min ||theta - sum mu_i y_i g_i(s)|| / ||theta|| "
                     "(the premise: training reached a KKT point)", max(residuals), CLARKE_PREMISE,
                     "measured 0.0053-0.016 on the annealed limits, 0.08-0.36 where training stopped short of them",
                     residuals=residuals, kink_pairs=[r["clarke"]["kink_pairs"] for r in results],
                     fixed_slope_residuals=[r["clarke"]["residual_fixed_slopes"] for r in results],
                     kind="counterexample")
    two_layers = _runs(ctx)
    digits = len(results) * results[0]["n"]
    one_layer_margins, two_layer_margins = _margins(results), _margins(two_layers)
    failure = at_least(
        f"{label} {seeds}: the attack reveals fewer digits on one hidden layer: (revealed - best trivial baseline) on "
        f"the two-hidden-layer network of the same digits ({_network_label(two_layers[0])} {seeds}) minus the same on "
        f"this one, all {digits} digits pooled", _contrast(two_layers, results), REVEALED_CONTRAST,
        f"per seed ({', '.join(map(str, seeds))}): two hidden layers {_per_seed_text(two_layer_margins)}, one "
        f"{_per_seed_text(one_layer_margins)}; the bar: {REVEALED_CONTRAST * digits:g} of {digits} digits "
        "fewer than where the KKT condition identifies the data (measured 0.25-0.32 at width 256, seeds 0-2; "
        "0.22-0.30 on the quick profile at --seed 0-5); one hidden layer alone reveals a digit in 20 on average, a trivial "
        "baseline at most one: observations", kind="counterexample",
        margins=one_layer_margins, two_layer_margins=two_layer_margins, per_seed=_per_seed(results))
    ratios = [r["kkt_attack_loss"] / r["truth_kkt_loss"] for r in results]
    ratio = within(f"{label} {seeds}: max over seeds of (attack's KKT loss) / (the same loss at the training set, "
                   "best mu >= 0)", max(ratios), TRUTH_RATIO,
                   "why it fails: the objective's optimum lies two orders of magnitude below the data's value "
                   "(measured 0.0019-0.0042 at width 256, 0.0013-0.0069 on the quick profile's networks, seeds 0-7; "
                   "0.024-0.13 on the two-hidden-layer network, where the attack recovers digits), so the attack has "
                   "no reason to return the data", ratios=ratios,
                   per_seed=_per_seed(results), kind="counterexample")
    # the contrast that gives the ratio its meaning: on the two-hidden-layer networks, where the attack recovers
    # digits, the same ratio stays above the line (a truth loss inflated, or an attack loss deflated, by a bug would
    # push both below it)
    contrast_ratios = [r["kkt_attack_loss"] / r["truth_kkt_loss"] for r in two_layers]
    contrast = at_least(f"{_network_label(two_layers[0])} {seeds} (two hidden layers, where the attack recovers "
                        "digits): min over seeds of the same ratio", min(contrast_ratios), TRUTH_RATIO,
                        "the line between the two regimes: measured 0.048-0.13 there (0.024-0.12 quick, seeds 0-7) "
                        "against 0.0013-0.0069 on one hidden layer", ratios=contrast_ratios, kind="counterexample")
    return [premise, failure, ratio, contrast]


def counterexample_lazy(ctx: Context) -> list[Outcome]:
    """The same KKT attack on a wide NTK-parametrized network (lazy): theta_f is mostly its random
    initialization, which is no KKT point, and the attack reveals less than Loo et al.'s; the table of both
    attacks in the three regimes over the seeds, and its figure (full profile)."""
    from numerics.kkt import regime_table_figure
    from proofs_check.registry import not_applicable

    if ctx.quick:
        return [not_applicable("lazy regime: both attacks in the three regimes",
                               "full profile only (6 attacks per seed, 3 seeds): the statement's 'Loo et al.'s attack "
                               "does not' is checked there; run `proofs-check run H1 --profile full`",
                               kind="counterexample")]
    runs = {regime: _runs(ctx, regime) for regime in ("lazy", "rich", "rich-one-layer")}
    table = {regime: {str(r["seed"]): {attack: r["scores"][attack]["revealed"] for attack in ("kkt", "loo")}
                      for r in results} for regime, results in runs.items()}
    premise = at_least("lazy network: min over seeds of the KKT stationarity residual of theta_f (the premise fails)",
                       min(r["kkt_residual"] for r in runs["lazy"]), 0.5,
                       "theta_f ~ theta_0 random: far from any sum mu_i y_i grad f(x_i) (measured 0.98)", table=table)
    loo_wins = at_least("lazy network: min over seeds of (revealed by Loo et al.'s attack - revealed by the KKT attack)",
                        min(t["loo"] - t["kkt"] for t in table["lazy"].values()), 0.1,
                        "in the lazy regime Delta theta = J_0^T alpha holds and the KKT condition does not", table=table)
    loo_fails = within("rich network (Haim et al.'s): max over seeds of the fraction revealed by Loo et al.'s attack",
                       max(t["loo"] for t in table["rich"].values()), LOO_RICH_BOUND, LOO_RICH_REASON, table=table)
    regime_table_figure(ctx, runs, [premise, loo_wins, loo_fails])
    return [premise, loo_wins, loo_fails]


LOO_RICH_BOUND = 0.1
LOO_RICH_REASON = ("the statement's 'Loo et al.'s attack does not': theta_f has left theta_0 far behind, so Delta theta "
                   "is no NTK combination (measured 0% at seeds 0-2); the bound is two of the 20 digits")


CLAIM = register(Claim(
    id="H1",
    quick_seconds=95,
    title="The KKT baseline (Haim et al.) and homogeneity",
    statement=("For a bias-free network with a positively 1-homogeneous activation (relu, leaky relu, abrelu) and L "
               "weight layers, f(c theta; x) = c^L f(theta; x) for c > 0, so <theta, grad_theta f(x; theta)> = L f(x; "
               "theta) (Euler). Trained with the logistic loss to directional convergence such a network is a KKT "
               "point of the max-margin problem, theta = sum_i mu_i y_i grad_theta f(x_i; theta) with mu_i >= 0; the "
               "KKT attack (Haim et al. 2022) fits that condition from theta_f alone, beside the NTK attack, which "
               "needs theta_0 too. Fitting it recovers training points only when training reached the KKT point and "
               "the condition pins the points down. On digits (N = 20) with two hidden layers, Haim et al.'s "
               "architecture, it recovers a tenth to a half of the training digits, which no trivial reconstruction "
               "does and Loo et al.'s attack does not; with one hidden layer the annealed limit is a KKT point with "
               "Clarke slopes at the kinks to ~1%, but the condition does not pin the digits down (counterexample). "
               "With biases the identity fails."),
    assumptions=["no biases beyond the first layer (a bias of layer l has homogeneity degree L - l + 1 < L)",
                 "positively 1-homogeneous activation: phi(c z) = c phi(z) for c > 0, so phi'(z) z = phi(z)",
                 "KKT attack: binary labels, logistic (or exponential) loss, trained to directional convergence"],
    derivation=("Let E = sum_k theta_k d/dtheta_k. E(W_1 x) = W_1 x. If E h_l = l h_l then h_{l+1} = W_{l+1} "
                "phi(h_l) gives E h_{l+1} = W_{l+1} phi(h_l) + W_{l+1} (phi'(h_l) * l h_l) = (l + 1) h_{l+1} because "
                "phi'(z) z = phi(z); so E f = L f. Checked exactly for every sign pattern of the induction step and of "
                "unrolled width-2 networks. A bias b_l is multiplied by the L - l weight layers above it, degree L - l + 1, "
                "giving E f - L f = -sum_l (l - 1) <b_l, df/db_l>. At a KKT point, <theta, theta> = sum_i mu_i y_i <theta, grad f_i> = L "
                "sum_i mu_i y_i f(x_i): the margin form of the condition."),
    derivations=[
        Step("Euler by induction", "base case, induction step over all sign patterns, unrolled networks with 2-4 "
             "weight layers", derive_euler, tolerance="exact (residual == 0) plus a 30-digit spot check"),
        Step("the bias gap", "E f - L f with biases equals the predicted lower-degree terms and is nonzero",
             derive_bias_gap, tolerance="exact"),
    ],
    checks=[
        Step("Euler on drawn networks", "hypothesis-drawn bias-free homogeneous networks, float64",
             check_euler_numeric, tolerance=f"{EULER_TOLERANCE:g}: float64 round-off only (measured <= 4e-15)"),
        Step("KKT residual on a hand-solved case", "numerics.kkt.kkt_residual (the premise's residual) on a "
             "one-unit network and two points where the constraint mu >= 0 binds: exact value 1/sqrt(3), against 0 "
             "unconstrained", check_kkt_residual_known_case,
             tolerance=f"{KKT_CASE_TOLERANCE:g}: round-off only (measured 0.0); the unconstrained residual is "
                       "0.577 off"),
        Step("KKT attack on a rich network", "logistic-GD-trained bias-free network with two hidden layers taken "
             "to its limit direction, digits odd/even: premise residual, the attack's fit and the sign of its "
             "coefficients on every seed", check_kkt_attack,
             tolerance=f"premise residual <= {PREMISE_RESIDUAL}; attack's relative KKT loss <= {ATTACK_FIT:g}; "
                       "every returned mu_i >= 0 (measured min 0.049-0.052, quick, --seed 0-5)"),
        Step("the KKT attack recovers digits", "revealed fraction of the pooled restarts beside the trivial "
             "baselines over all the seeds' digits (each seed reported), the leakage figure and the attack curve",
             check_kkt_recovery,
             tolerance=f"revealed - best trivial >= {RECOVERY_MARGIN}, the three seeds' 60 digits pooled (measured "
                       "0.25-0.32 full; 0.27-0.33 quick, --seed 0-5)"),
        Step("SSIM against scikit-image", "the vectorized SSIM behind the claim's SSIM scores equals scikit-image's "
             "structural_similarity (same window and data range) on the matched pairs of held-out digits scored as "
             "the held-out-digits baseline is", check_ssim_reference,
             tolerance=f"{SSIM_REFERENCE_TOLERANCE:g}: the same operations in the same order (measured 0.0); "
                       "tests/test_ssim_vectorized.py's bar"),
    ],
    counterexamples=[
        Step("biases", "relu:2:sb=0.5 networks miss the identity by O(1)", counterexample_biases,
             tolerance="relative gap >= 1e-3 (measured 0.1 ... 0.6)"),
        Step("the KKT condition does not identify the data", "one hidden layer: the annealed limit is a KKT point "
             "with Clarke slopes at the kinks, yet the attack reveals far fewer digits than on two hidden layers "
             "and its optimum lies far below the loss at the training set, every seed",
             counterexample_identifiability,
             tolerance=f"Clarke KKT residual <= {CLARKE_PREMISE} (measured 0.0053-0.016; 0.08-0.36 before the "
                       f"annealing); two-layer minus one-layer revealed margin >= {REVEALED_CONTRAST}, the seeds' "
                       f"digits pooled (measured 0.25-0.32 full; 0.22-0.30 quick, --seed 0-5); ratio <= {TRUTH_RATIO} "
                       f"(measured 0.0013-0.0069), and >= {TRUTH_RATIO} on the two-hidden-layer networks of the KKT "
                       "attack step (measured 0.024-0.13)"),
        Step("lazy regime", "the KKT attack on a wide NTK-parametrized network, beside Loo et al.'s attack; and "
             "Loo et al.'s attack on the rich network (full profile)",
             counterexample_lazy, tolerance="premise residual >= 0.5; Loo minus KKT revealed >= 0.1 (lazy); Loo "
             "revealed <= 0.1 (rich)"),
    ],
    observations=[
        "Both attacks on the same networks, N = 20 digits, seeds 0 / 1 / 2 (numerics.kkt.regime_experiment, 4000 "
        "attack steps, M = 40 per restart; the KKT attack pools 8 restarts, the baselines are drawn to the same "
        "count): lazy (relu:1 NTK parametrization, width 1024; KKT residual 0.98): Loo et al. reveal 65% / 60% / "
        "70%, the KKT attack 0% on every seed; rich, two hidden layers (relu:2 standard parametrization, "
        "initialization scale 2, width 256, annealed direction; KKT residual 0.22 / 0.14 / 0.20): the KKT attack "
        "35% / 10% / 35% (SSIM >= 0.9: 80% / 65% / 80%, which 320 held-out digits reach for 60% / 40% / 55%; seeds "
        "3 / 4 / 5, measured 2026-12-05: 10% / 35% / 55%), Loo et al. 0%; rich, one hidden layer (initialization "
        "scale 0.01; KKT residual 0.33 / 0.29 / 0.25, 0.011 / 0.0053 / 0.0085 with Clarke slopes): the KKT attack "
        "0% / 0% / 5%, Loo et al. 0%. The best trivial baseline reveals 5% / 0% / 0%.",
        "The KKT attack's count moves with the machine's rounding: on 2026-12-05 the same code (e4d4dde) revealed "
        "35% / 20% / 45% (SSIM >= 0.9: 80% / 70% / 85%) of the same networks (KKT residuals 0.22 / 0.14 / 0.20 "
        "then and now); rerun here on 2026-12-07 it reveals 10% at seed 1, as this version does. XLA compiles for "
        "the host's processor, and 4000 steps of a nonconvex attack from pooled random restarts carry a rounding "
        "difference into different candidates. Single seeds of 20 digits are coarse (one digit is 5%); the claim "
        "pools the three seeds' 60 digits.",
        "Why one hidden layer fails: the attack's objective is minimized away from the data (relative KKT loss "
        "6e-5 ... 1e-4 at the attack's optimum, 0.023-0.032 at the training set with the best mu >= 0); started at "
        "the data it walks away (median relative move 0.4-0.6). The first layer has effective rank ~5 and no unit "
        "aligns with a single digit, so 40 candidates in 64 dimensions fit theta_f in many ways. With two hidden "
        "layers the attack's optimum is also below the data's value (0.0014-0.0023 against 0.014-0.029), yet a "
        "tenth to a half of the training digits are revealed by some pooled candidate.",
        "One seed of 20 digits decides little: on the quick profile's width-128 networks the two-hidden-layer "
        "margin (revealed minus the best trivial baseline) measured 0.2 / 0.25 / 0.5 / 0.05 / 0.3 / 0.55 / 0.15 / 0.3 "
        "at seeds 0-7 and the one-hidden-layer margin -0.05 / 0 / 0.1 / 0 / 0.1 / 0.15 / 0.05 / 0.05, so with one "
        "seed per run (H1 until 2026-12-07) the claim passed at --seed 0 and 1 of 0-5 only: the recovery fell under "
        "0.1 at seed 3 and the one-layer margin, then required below 0.1, reached it at seeds 2, 4 and 5 (width 256 "
        "alike: 0.3 / 0.2 / 0.45 / 0.1 / 0.35 / 0.55 against -0.05 / 0 / 0.05 / 0 / 0.1 / 0.15). Both profiles now "
        "pool three seeds, 60 digits, and the quick profile passes at --seed 0-5 (about 95 s per run): recovery "
        "margins 0.32 / 0.27 / 0.28 / 0.30 / 0.33 / 0.33, contrasts 0.30 / 0.23 / 0.22 / 0.22 / 0.23 / 0.25. The "
        "one-layer attack does reveal a digit in 20 on average beyond the trivial baselines (which reveal at most "
        "one of 20 there), so the counterexample asks for far fewer than on two hidden layers, not for none; "
        "with N = 10 digits on width-64 networks it reveals 40% against 60% (seed 0), though its optimum is still "
        "about 800x below the data's KKT loss (ratio 0.0013): the ratio tells the regimes apart at every seed "
        "(0.0013-0.0069 on one hidden layer, 0.024-0.12 on two, seeds 0-7), "
        "the revealed fraction only on average.",
    ],
    references=["Haim, Vardi, Yehudai, Shamir, Irani 2022, arXiv:2206.07758", "Lyu & Li 2020, arXiv:1906.05890",
                "Ji & Telgarsky 2020, arXiv:2006.06657", "Loo et al. 2023, arXiv:2302.01428"],
))
