"""Claim modules. Each module registers its claims with :func:`proofs_check.registry.register`."""

import importlib

from proofs_check.registry import REGISTRY

CLAIM_MODULES = ("k1", "d1", "r1", "t1", "t2", "t3", "e1", "h1")
"""Modules under ``proofs_check.claims``, in report order."""


def load_claims() -> dict:
    """Import every claim module once and return the registry (claim id -> Claim)."""
    for name in CLAIM_MODULES:
        importlib.import_module(f"proofs_check.claims.{name}")
    return REGISTRY
