"""JAX and neural-tangents numerics: finite networks, kernels, training, attacks, metrics, data.

Importing this package turns on float64 (``jax_enable_x64``): every identity this project checks is
checked in double precision. neural-tangents (which imports TensorFlow) is imported lazily, only by the
functions that need it, through :func:`numerics._nt.neural_tangents`.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
