"""The Makefile picks a supported interpreter, and stops an unsupported one with one line before installing; the lock
it installs with --no-deps pins everything its pins require."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _fake_python(directory: Path, version: str) -> Path:
    """A stand-in interpreter that reports ``version`` and would fail any install."""
    path = directory / f"python{version}"
    path.write_text(f"#!/bin/sh\necho {version}\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("version", ["3.10", "3.14"])
def test_unsupported_python_stops_with_one_line(tmp_path, version):
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    fake = _fake_python(tmp_path, version)
    result = subprocess.run(["make", "check", f"PYTHON={fake}"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"is Python {version}" in lines[0] and "3.11, 3.12, 3.13" in lines[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Makefile", fake.name]  # nothing created


def test_supported_python_is_used_for_the_environment(tmp_path):
    for name in ("Makefile", "requirements.lock", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    fake = _fake_python(tmp_path, "3.12")
    result = subprocess.run(["make", "-n", "test", f"PYTHON={fake}"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"{fake} -m venv --clear .venv" in result.stdout and ".installed-3.12" in result.stdout


PROVIDED_UNDER_ANOTHER_NAME = {"tensorflow": "tensorflow-cpu"}
"""What the lock pins under another distribution name: neural-tangents and tf2jax ask for tensorflow, the lock pins
its CPU build (same release, same import name)."""


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_lock_is_closed_under_its_requirements():
    """The Makefile installs the lock with --no-deps, so every requirement of every pinned distribution (markers
    evaluated here, extras not asked for) must itself be pinned; a pin dropped from the lock fails here, not at import."""
    from importlib import metadata

    from packaging.requirements import Requirement

    lines = (ROOT / "requirements.lock").read_text().splitlines()
    pins = {_normalized(line.split("==")[0]) for line in lines if line and not line.startswith("#")}
    assert {"tensorflow-cpu", "neural-tangents", "jax"} <= pins
    missing = []
    for pin in sorted(pins):
        for text in metadata.requires(pin) or []:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            name = _normalized(requirement.name)
            if PROVIDED_UNDER_ANOTHER_NAME.get(name, name) not in pins:
                missing.append(f"{pin} requires {requirement.name}")
    assert missing == []
