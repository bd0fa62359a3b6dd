"""Suite-wide settings: float64, strict JAX promotion, per-test PRNG keys, hypothesis profiles, and the figure style
checked on every figure any test saves.

Select a hypothesis profile with HYPOTHESIS_PROFILE=ci (default; small, derandomized, no deadline since
JIT compilation trips deadlines) or HYPOTHESIS_PROFILE=thorough (many examples).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import jax  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

pytest_plugins = ["pytester"]  # tests/test_figures.py runs the style guard on a throwaway test file

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

settings.register_profile(
    "ci", max_examples=12, derandomize=True, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors])
settings.register_profile(
    "thorough", max_examples=300, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def key(request) -> jax.Array:
    """A PRNG key unique to the test (derived from its node id), so no two tests share a key."""
    seed = int.from_bytes(request.node.nodeid.encode(), "little") % (2**31 - 1)
    return jax.random.PRNGKey(seed)


_SESSION_STYLE_LOG = None


MAX_WORKERS = 4
"""``pytest -n auto`` (``make test``) starts one worker per core up to this (each worker imports its own JAX and
TensorFlow and compiles its own functions); on the 2-core machine 2 workers took the suite from 551 s to 375 s."""


def pytest_xdist_auto_num_workers(config):
    """PYTEST_XDIST_AUTO_NUM_WORKERS when set (xdist's own override), else the cores this process may use, capped."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return int(os.environ["PYTEST_XDIST_AUTO_NUM_WORKERS"])
    from proofs_check.parallel import available_cores

    return min(available_cores(), MAX_WORKERS)


def _is_xdist_worker(config) -> bool:
    return hasattr(config, "workerinput")


COMPILATION_CACHE_VARIABLE = "RECON_NTK_TEST_COMPILATION_CACHE"
"""The session's JAX persistent compilation cache (a temporary folder the controller makes and removes): the
workers share their compiled programs, and a test that clears the in-memory caches around a mutation (jax.clear_caches)
reloads the untouched programs instead of recompiling them. The cache is keyed by the lowered program, so mutated
code never hits an unmutated entry. Measured on the 2-core machine: the suite 553 s -> 486 s (durations 1076 s ->
940 s)."""
COMPILATION_CACHE_MIN_SECONDS = 0.05
"""Programs that compile faster than this are not written (reading them back would cost about as much)."""
_SESSION_COMPILATION_CACHE = None


def _use_the_session_compilation_cache() -> None:
    folder = os.environ.get(COMPILATION_CACHE_VARIABLE)
    if folder and not os.environ.get("JAX_COMPILATION_CACHE_DIR"):  # a cache the user set up is left as it is
        jax.config.update("jax_compilation_cache_dir", folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", COMPILATION_CACHE_MIN_SECONDS)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_configure(config):
    """Figures drawn outside a test's own fixtures (module- and session-scoped fixtures run before them) log to a
    session-wide file, checked when the session ends. Under pytest-xdist the controller makes the file before it
    starts its workers, which inherit it through the environment and write to it; the controller checks it. The
    session's compilation cache (COMPILATION_CACHE_VARIABLE) is made and shared the same way."""
    global _SESSION_STYLE_LOG, _SESSION_COMPILATION_CACHE
    import tempfile

    from proofs_check import figures

    if not _is_xdist_worker(config):
        handle, _SESSION_STYLE_LOG = tempfile.mkstemp(prefix="figure-style-", suffix=".txt")
        os.close(handle)
        os.environ[figures.STYLE_LOG_VARIABLE] = _SESSION_STYLE_LOG
        _SESSION_COMPILATION_CACHE = tempfile.mkdtemp(prefix="jax-compilation-cache-")
        os.environ[COMPILATION_CACHE_VARIABLE] = _SESSION_COMPILATION_CACHE
    _use_the_session_compilation_cache()


def pytest_sessionfinish(session, exitstatus):
    import shutil

    if _is_xdist_worker(session.config):
        return
    if _SESSION_COMPILATION_CACHE is not None:
        shutil.rmtree(_SESSION_COMPILATION_CACHE, ignore_errors=True)
    if _SESSION_STYLE_LOG is None or not os.path.exists(_SESSION_STYLE_LOG):
        return
    with open(_SESSION_STYLE_LOG, encoding="utf-8") as handle:
        problems = handle.read().splitlines()
    os.remove(_SESSION_STYLE_LOG)
    if problems:
        print("\nfigures drawn by fixtures break the style rules: " + "; ".join(problems))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def _style_logs(tmp_path_factory):
    return tmp_path_factory.mktemp("figure-style")


@pytest.fixture(autouse=True)
def _every_saved_figure_follows_the_style(monkeypatch, request, _style_logs):
    """proofs_check.figures.save checks each figure against the one figure style (figures.style_problems) and logs
    what breaks a rule to the file its environment variable names, here one per test and inherited by the
    subprocesses a test starts: a claim, command or sweep whose figure breaks a rule fails the test that made it
    (figures drawn by wider-scoped fixtures go to the session's log: pytest_configure)."""
    import hashlib

    from proofs_check import figures

    log = _style_logs / (hashlib.sha1(request.node.nodeid.encode()).hexdigest() + ".txt")
    monkeypatch.setenv(figures.STYLE_LOG_VARIABLE, str(log))
    yield
    problems = log.read_text().splitlines() if log.exists() else []
    assert not problems, "figures breaking the style rules: " + "; ".join(problems)
