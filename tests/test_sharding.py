"""numerics.sharding: sharded Gram, kernel-regression prediction and numerics.distill's KIP / RKIP losses on 8 simulated devices equal the
single-device results; blocked evaluation, Cholesky with refinement and CG on one device."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np

from numerics import sharding
from numerics.kernels import analytic_ntk
from theory import parse_spec

TOLERANCE = 1e-12
"""The issue's bar. Gram and prediction rows are the same float64 operations on every device (measured 0 or
~1e-16); the KIP / RKIP losses add per-device partial sums in another order (measured ~1e-16 relative)."""

SCRIPT = textwrap.dedent("""
    import json
    import jax, jax.numpy as jnp, numpy as np
    import numerics
    from numerics import distill, sharding
    from numerics.kernels import analytic_ntk
    from theory import parse_spec

    # erf: a smooth kernel, so that the gradients of the KIP / RKIP losses are well conditioned (the ReLU NTK has a cusp at
    # coincident points, the diagonal of K_SS, where its derivative is round-off dominated)
    arch = parse_spec("erf:2:sb=0.1")
    kernel = lambda a, b: analytic_ntk(arch, a, b)
    rng = np.random.default_rng(0)
    sphere = lambda n: (lambda z: z / np.linalg.norm(z, axis=1, keepdims=True))(rng.normal(size=(n, 6)))
    x_test, x_train, x_support = (jnp.asarray(sphere(n)) for n in (37, 23, 5))
    y_train, y_support = jnp.asarray(rng.normal(size=(23, 2))), jnp.asarray(rng.normal(size=(5, 2)))
    mesh = sharding.points_mesh()
    rel = lambda a, b: float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
    gram = kernel(x_test, x_train)
    coefficients = sharding.kernel_ridge_solve(kernel(x_train, x_train), y_train, ridge=1e-3)
    # the distillation losses of numerics.distill over its target blocks (5 blocks of 5 rows, 2 rows padded; 8
    # devices: 3 hold padding alone), sharded against one device, values and gradients in X_S
    x_blocks, y_blocks, mask = distill.target_blocks(np.asarray(x_train), np.asarray(y_train), 5)
    alpha_norm_sq = 1.7
    kip = lambda xs: distill.kip_loss(arch, xs, y_support, x_blocks, y_blocks, mask)
    kip_s = lambda xs: sharding.sharded_kip_loss(arch, xs, y_support, x_blocks, y_blocks, mask, mesh)
    rkip = lambda xs: distill.rkip_loss(arch, xs, y_support, x_blocks, y_blocks, mask, alpha_norm_sq=alpha_norm_sq)
    rkip_s = lambda xs: sharding.sharded_rkip_loss(arch, xs, y_support, x_blocks, y_blocks, mask, mesh,
                                                   alpha_norm_sq=alpha_norm_sq)
    # jitted: one compilation each instead of op-by-op dispatch (18 s for the whole script instead of 47 s)
    (loss, grad), (loss_s, grad_s) = (jax.jit(jax.value_and_grad(f))(x_support) for f in (kip, kip_s))
    (rloss, rgrad), (rloss_s, rgrad_s) = (jax.jit(jax.value_and_grad(f))(x_support) for f in (rkip, rkip_s))
    print(json.dumps({
        "devices": len(jax.devices()),
        "gram": rel(sharding.sharded_gram(kernel, x_test, x_train, mesh), gram),
        "gram_blocked": rel(sharding.sharded_gram(kernel, x_test, x_train, mesh, block=2), gram),
        "predict": rel(sharding.sharded_predict(kernel, x_test, x_train, coefficients, mesh), gram @ coefficients),
        "predict_blocked": rel(sharding.sharded_predict(kernel, x_test, x_train, coefficients, mesh, block=3),
                               gram @ coefficients),
        "kip_loss": abs(float(loss_s - loss)) / abs(float(loss)),
        "kip_grad": rel(grad_s, grad),
        "rkip_loss": abs(float(rloss_s - rloss)) / abs(float(rloss)),
        "rkip_grad": rel(rgrad_s, rgrad),
    }))
""")


def test_eight_simulated_devices_equal_one():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result.pop("devices") == 8
    for name, error in result.items():
        assert error <= TOLERANCE, (name, error)


def _kernel():
    arch = parse_spec("relu:2")
    return lambda a, b: analytic_ntk(arch, a, b)


def test_one_device_mesh_and_blocks(key):
    kernel = _kernel()
    x = jax.random.normal(key, (11, 4))
    x = x / jnp.linalg.norm(x, axis=1, keepdims=True)
    full = kernel(x, x)
    # the same entries evaluated in other batches: XLA may vectorize differently, ~1e-16
    np.testing.assert_allclose(sharding.blocked_gram(kernel, x, x, block=4), full, rtol=1e-14, atol=0)
    np.testing.assert_allclose(sharding.sharded_gram(kernel, x, x, sharding.points_mesh()), full, rtol=1e-14, atol=0)
    v = jnp.arange(11.0)
    np.testing.assert_allclose(sharding.blocked_matvec(kernel, x, x, v, block=3), full @ v, rtol=1e-13, atol=0)


def test_ridge_solvers(key):
    kernel = _kernel()
    x = jax.random.normal(key, (40, 5))
    x = x / jnp.linalg.norm(x, axis=1, keepdims=True)
    y = jnp.sin(jnp.arange(40.0))
    gram = kernel(x, x)
    ridge = 1e-6
    reference = np.linalg.solve(np.asarray(gram) + ridge * np.eye(40), np.asarray(y))
    refined = sharding.kernel_ridge_solve(gram, y, ridge=ridge)
    residual = lambda s: float(jnp.linalg.norm(gram @ s + ridge * s - y) / jnp.linalg.norm(y))  # noqa: E731
    # backward-stable: residual ~ eps (measured ~1e-15 with refinement); the plain factor solve leaves more
    assert residual(refined) <= 1e-12
    np.testing.assert_allclose(refined, reference, rtol=1e-6)  # cond ~ 1e6: forward error cond * eps
    cg = sharding.kernel_ridge_cg(kernel, x, y, ridge=1e-2, block=16, tol=1e-12, maxiter=2000)
    exact = np.linalg.solve(np.asarray(gram) + 1e-2 * np.eye(40), np.asarray(y))
    # CG stops at relative residual 1e-12; cond(K + 1e-2 I) ~ 1e3 bounds the forward error ~1e-9
    np.testing.assert_allclose(cg, exact, rtol=1e-8, atol=1e-10)
