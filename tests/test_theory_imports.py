"""theory/ is sympy only: no numpy, JAX, scipy or neural-tangents, neither in its source nor at import time."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

THEORY = Path(__file__).resolve().parents[1] / "theory"
ALLOWED = {"sympy", "mpmath", "theory"} | set(sys.stdlib_module_names)
"""sympy and mpmath (sympy's own arbitrary-precision backend), the theory package itself, the standard library."""
FORBIDDEN_AT_IMPORT = ("numpy", "jax", "scipy", "neural_tangents", "tensorflow")


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module named by an import statement anywhere in the file (function bodies and TYPE_CHECKING
    blocks included), with its line number."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


@pytest.mark.parametrize("path", sorted(THEORY.glob("*.py")), ids=lambda p: p.name)
def test_theory_source_imports_sympy_only(path):
    bad = [f"{path.name}:{line}: import {name}" for line, name in _imported_modules(path)
           if name.split(".")[0] not in ALLOWED]
    assert not bad, bad


def test_detector_sees_nested_and_type_checking_imports(tmp_path):
    """The scan must not miss an import hidden in a function or a TYPE_CHECKING block."""
    source = tmp_path / "sample.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import numpy as np\n"
                      "def f():\n    from jax import numpy\n")
    assert [name for _, name in _imported_modules(source)] == ["typing", "numpy", "jax"]


def test_importing_theory_loads_no_numerical_library():
    """Import every theory module in a fresh interpreter; none of the numerical stacks may be loaded."""
    modules = [f"theory.{p.stem}" for p in sorted(THEORY.glob("*.py")) if p.stem != "__init__"]
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n    importlib.import_module(name)\n"
            f"print(','.join(m for m in {FORBIDDEN_AT_IMPORT!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=THEORY.parent,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"importing theory loaded {done.stdout.strip()}"
