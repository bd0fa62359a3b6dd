"""Lazy, quiet access to neural-tangents, which imports TensorFlow (seconds) at import time.

TensorFlow's C++ start-up writes lines such as "All log messages before absl::InitializeLog() is called
are written to STDERR" and "Could not find cuda drivers on your machine" straight to file descriptor 2,
whatever ``TF_CPP_MIN_LOG_LEVEL`` says. :func:`neural_tangents` therefore imports it with descriptor 2
captured and writes back every captured line except the known start-up lines (:data:`STARTUP_NOISE`), so
nothing else that TensorFlow or anyone prints is lost. It also silences the UserWarnings that
neural-tangents raises whenever a numerical (quadrature) activation layer is built
(:data:`NUMERICAL_ACTIVATION_WARNINGS`): this project builds such layers on purpose and states their
accuracy itself. Warnings of this project and every other warning stay visible.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import tempfile
import warnings
from typing import Iterator

STARTUP_NOISE = tuple(re.compile(pattern) for pattern in (
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"cudart_stub\.cc:\d+\]",
    r"Could not find cuda drivers on your machine",
    r"port\.cc:\d+\] oneDNN custom operations are on",
    r"Unable to register cu(DNN|FFT|BLAS) factory",
    r"computation_placer\.cc",
    r"TF-TRT Warning",
    r"This TensorFlow binary is optimized to use available CPU instructions",
    r"To enable the following instructions: .* in other operations, rebuild TensorFlow",
))
"""Lines TensorFlow's start-up writes to stderr on a machine without a GPU; dropped, everything else kept."""

NUMERICAL_ACTIVATION_WARNINGS = (
    r"Numerical Activation Layer with fn=",
    r"Using JAX autodiff to compute the `fn` derivative for NTK",
)
"""Messages of the UserWarnings neural-tangents' stax.ElementwiseNumerical / Elementwise raise when built."""


@contextlib.contextmanager
def quiet_native_stderr(noise=STARTUP_NOISE) -> Iterator[None]:
    """Capture file descriptor 2 (C/C++ and Python writes alike) and write back the lines not matching ``noise``."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable descriptor 2: nothing to quieten
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode(errors="replace")
            kept = [line for line in text.splitlines() if line.strip() and not any(p.search(line) for p in noise)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()


def silence_numerical_activation_warnings() -> None:
    """Ignore neural-tangents' UserWarnings about numerical activation layers (and only those)."""
    for message in NUMERICAL_ACTIVATION_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=UserWarning, module=r"neural_tangents\.")


@functools.cache
def neural_tangents():
    """Import and return the ``neural_tangents`` module, with TensorFlow's start-up lines removed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    with quiet_native_stderr():
        import neural_tangents as nt
    silence_numerical_activation_warnings()
    return nt
