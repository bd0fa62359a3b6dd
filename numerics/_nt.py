"""Lazy access to neural-tangents, which imports TensorFlow (seconds) at import time."""

import functools
import os


@functools.cache
def neural_tangents():
    """Import and return the ``neural_tangents`` module with TensorFlow's logging silenced."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import neural_tangents as nt

    return nt
