"""The claim registry: each claim pairs symbolic derivations with executable checks.

A :class:`Claim` holds three lists of :class:`Step` (derivations, checks, counterexamples). A step's
``run(ctx)`` returns one or more :class:`Outcome` records: what was measured, what was expected, the
tolerance with its one-line reason, and whether it passed. Helpers (:func:`within`, :func:`rate`,
:func:`exact`) build outcomes so that every comparison states its tolerance the same way.

Register a claim with :func:`register` in a module under ``proofs_check.claims``; the package imports
every module listed in ``proofs_check.claims.CLAIM_MODULES``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from numerics.statistics import expanded_tail, percentile_interval  # the one interval rule of claims and sweep

PROFILES = ("quick", "full")
KINDS = ("derivation", "check", "counterexample")


@dataclasses.dataclass
class Outcome:
    """One measured comparison.

    ``measured`` is the number compared (an error, a slope, a residual); ``expected`` says what it was
    compared with in words (``"<= 1e-10"``, ``"slope -0.5 +- 0.15"``, ``"== 0 (exact)"``);
    ``reason`` is the one-line justification of the tolerance.
    """

    name: str
    passed: bool
    measured: float | str | None
    expected: str
    reason: str
    kind: str = "check"
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    figures: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    applicable: bool = True
    """False for a step that does not apply (e.g. no closed form to certify): it neither passes nor fails,
    and the report shows it as ``n/a``; ``passed`` is then False."""

    @property
    def status(self) -> str:
        """"pass", "FAIL" or "n/a"."""
        if not self.applicable:
            return "n/a"
        return "pass" if self.passed else "FAIL"

    @property
    def failed(self) -> bool:
        """An applicable outcome that did not pass."""
        return self.applicable and not self.passed

    def as_dict(self) -> dict[str, Any]:
        measured = self.measured
        if isinstance(measured, (np.floating, np.integer)):
            measured = measured.item()
        if isinstance(measured, float) and not math.isfinite(measured):
            measured = str(measured)
        return {
            "name": self.name,
            "kind": self.kind,
            "passed": bool(self.passed) if self.applicable else None,  # n/a: neither a pass nor a failure
            "status": self.status,
            "measured": measured,
            "expected": self.expected,
            "reason": self.reason,
            "seconds": round(self.seconds, 3),
            "figures": list(self.figures),
            "details": _jsonable(self.details),
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def within(name: str, measured: float, tolerance: float, reason: str, *, kind: str = "check", **details) -> Outcome:
    """Pass when ``measured <= tolerance`` (a NaN never passes)."""
    measured = float(measured)
    return Outcome(name=name, passed=bool(measured <= tolerance), measured=measured,
                   expected=f"<= {tolerance:.3g}", reason=reason, kind=kind, details=details)


def at_least(name: str, measured: float, bound: float, reason: str, *, kind: str = "check", **details) -> Outcome:
    """Pass when ``measured >= bound`` (a NaN never passes)."""
    measured = float(measured)
    return Outcome(name=name, passed=bool(measured >= bound), measured=measured,
                   expected=f">= {bound:.3g}", reason=reason, kind=kind, details=details)


def above(name: str, measured: float, bound: float, reason: str, *, kind: str = "check", **details) -> Outcome:
    """Pass when ``measured > bound`` strictly (a NaN never passes): for a bound that the null case reaches
    exactly (an interval's lower end at 0 when two scores are the same)."""
    measured = float(measured)
    return Outcome(name=name, passed=bool(measured > bound), measured=measured,
                   expected=f"> {bound:.3g}", reason=reason, kind=kind, details=details)


def not_applicable(name: str, reason: str, *, kind: str = "check", **details) -> Outcome:
    """A step that does not apply here (``reason`` says why): shown as ``n/a``, never as a pass."""
    return Outcome(name=name, passed=False, measured=None, expected="not applicable", reason=reason, kind=kind,
                   details=details, applicable=False)


def applicable_on_defaults(ctx: "Context", outcomes: list[Outcome], defaults: str) -> list[Outcome]:
    """``outcomes`` with every n/a turned into a failure unless the user chose the architectures (--arch): an n/a on
    the step's own default architectures (``defaults``, in words) means the step ran nothing, and the claim would
    pass on it (relu registered as smooth left R1's finite-width attack n/a and R1 green)."""
    if ctx.archs:
        return outcomes
    return [outcome if outcome.applicable else Outcome(
        name=outcome.name, passed=False, measured=f"not applicable: {outcome.reason}",
        expected=f"applicable on the step's default architecture ({defaults})",
        reason="only a user's --arch may fall outside the step's scope; on its own default an n/a means that "
               "nothing was checked", kind=outcome.kind, details=outcome.details) for outcome in outcomes]


@dataclasses.dataclass(frozen=True)
class SlopeFit:
    """A log-log slope fitted to the aggregate over seeds, with a bootstrap interval over seeds."""

    slope: float
    low: float
    high: float
    level: float
    n_seeds: int
    n_boot: int

    @property
    def width(self) -> float:
        return self.high - self.low

    def as_dict(self) -> dict[str, float]:
        return {"slope": self.slope, "low": self.low, "high": self.high, "level": self.level,
                "n_seeds": self.n_seeds, "n_boot": self.n_boot}


def _mean_over_seeds(values: np.ndarray) -> np.ndarray:
    return np.mean(values, axis=0)


def geometric_mean_over_seeds(values: np.ndarray) -> np.ndarray:
    return np.exp(np.mean(np.log(values), axis=0))


def rms_over_seeds(values: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(values**2, axis=0))


def bootstrap_loglog_slope(x: Sequence[float], values: Any, *, rng: np.random.Generator, n_boot: int = 2000,
                           level: float = 0.95, aggregate: Callable[[np.ndarray], np.ndarray] = _mean_over_seeds
                           ) -> SlopeFit:
    """Slope of log(aggregate over seeds) against log(x), and its expanded percentile bootstrap interval.

    ``values`` has shape (seeds, len(x)) (or (seeds, len(x), ...) when ``aggregate`` reduces more axes):
    row s holds seed s's measurements at every x. Each bootstrap replicate resamples the seeds with
    replacement, aggregates (default: the mean over seeds) and refits the slope, so the interval states
    how much the fitted exponent depends on which seeds were drawn (Efron & Tibshirani 1993, ch. 13); its
    percentiles are read at numerics.statistics.expanded_tail, which corrects the plain percentile interval's narrowness
    over few seeds.
    """
    values = np.asarray(values, dtype=float)
    x = np.asarray(x, dtype=float)
    if values.ndim < 2 or values.shape[1] != x.size:
        raise ValueError(f"values must have shape (seeds, {x.size}, ...), got {values.shape}")
    if values.shape[0] < 2:
        raise ValueError("a bootstrap over seeds needs at least 2 seeds")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    slope, _ = fit_loglog_slope(x, aggregate(values))
    seeds = values.shape[0]
    replicates = np.empty(n_boot)
    for b in range(n_boot):
        replicates[b] = fit_loglog_slope(x, aggregate(values[rng.integers(0, seeds, size=seeds)]))[0]
    low, high = percentile_interval(replicates, expanded_tail(level, seeds))
    return SlopeFit(slope=slope, low=float(low), high=float(high), level=level, n_seeds=seeds, n_boot=n_boot)


def bootstrap_loglog_slope_to_precision(x: Sequence[float], measure: Callable[[int, int], Any], *, seeds: int,
                                        most: int, precision: float, rng: np.random.Generator
                                        ) -> tuple[SlopeFit, np.ndarray]:
    """:func:`bootstrap_loglog_slope` over ``seeds`` replicates, doubled (up to ``most``) while the interval is
    wider than ``precision``; ``measure(start, stop)`` returns the rows of seeds start..stop-1, shape
    (stop - start, len(x)). Returns the last fit and every row measured.

    The stopping rule reads the interval's width only, never where it lies (after Chow & Robbins 1965's
    fixed-width sequential intervals, here with a few looks and a cap): heavy-tailed errors (a polynomial
    activation's) get the seeds they need, and a draw whose interval is already narrow costs nothing more. Its
    coverage is approximate: with heavy tails an outlier widens the interval and moves the slope together."""
    if not 2 <= seeds <= most:
        raise ValueError(f"need 2 <= seeds <= most, got seeds={seeds}, most={most}")
    values = np.asarray(measure(0, seeds), dtype=float)
    fit = bootstrap_loglog_slope(x, values, rng=rng)
    while fit.width > precision and len(values) < most:
        more = min(2 * len(values), most)
        values = np.concatenate([values, np.asarray(measure(len(values), more), dtype=float)])
        fit = bootstrap_loglog_slope(x, values, rng=rng)
    return fit, values


def rate_interval(name: str, fit: SlopeFit, expected: float, reason: str, *, max_width: float | None = None,
                  **details) -> Outcome:
    """Pass when the predicted exponent lies in the bootstrap interval of the fitted slope (and, with
    ``max_width``, the interval is narrow enough to say something: a wide interval contains anything)."""
    inside = fit.low <= expected <= fit.high
    narrow = max_width is None or fit.width <= max_width
    expected_text = f"{expected:g} in {fit.level:.0%} interval" + (f", width <= {max_width:g}" if max_width else "")
    return Outcome(name=name, passed=bool(inside and narrow), measured=_interval_text(fit), expected=expected_text,
                   reason=reason, details={**details, "fit": fit.as_dict()})


def slope_below(name: str, fit: SlopeFit, bound: float, reason: str, **details) -> Outcome:
    """Pass when the whole bootstrap interval of the slope lies below ``bound`` (e.g. 0: the quantity decreases)."""
    return Outcome(name=name, passed=bool(fit.high < bound), measured=_interval_text(fit),
                   expected=f"interval < {bound:g}", reason=reason, details={**details, "fit": fit.as_dict()})


def slope_in_band(name: str, fit: SlopeFit, low: float, high: float, reason: str, **details) -> Outcome:
    """Pass when the whole bootstrap interval of the slope lies inside the stated band [low, high] (a band
    around a predicted exponent that allows for stated pre-asymptotic corrections; a wide interval fails)."""
    return Outcome(name=name, passed=bool(low <= fit.low and fit.high <= high), measured=_interval_text(fit),
                   expected=f"interval inside [{low:g}, {high:g}]", reason=reason,
                   details={**details, "fit": fit.as_dict()})


def _interval_text(fit: SlopeFit) -> str:
    return f"{fit.slope:.3f} [{fit.low:.3f}, {fit.high:.3f}]"


def counted(count: int, noun: str) -> str:
    """"1 architecture", "3 architectures": a count and its noun, plural where it is not 1."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def exact(name: str, residual: Any, **details) -> Outcome:
    """A symbolic identity: pass when the simplified residual is exactly zero."""
    is_zero = residual == 0
    return Outcome(name=name, passed=bool(is_zero), measured=str(residual), expected="== 0 (exact)",
                   reason="symbolic identity: no tolerance", kind="derivation", details=details)


@dataclasses.dataclass
class Context:
    """What a step may use: the profile, a seed, optional architectures, an output folder."""

    profile: str = "quick"
    seed: int = 0
    archs: tuple = ()
    out_dir: Path = Path("reports")
    advance: Callable[[str], None] = lambda message: None

    def __post_init__(self):
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; expected one of {PROFILES}")
        self.out_dir = Path(self.out_dir)

    @property
    def quick(self) -> bool:
        return self.profile == "quick"

    def pick(self, quick: Any, full: Any) -> Any:
        """The quick or the full value of a setting, by profile."""
        return quick if self.quick else full

    def seed_for(self, *tags: Any) -> int:
        """A reproducible 32-bit seed derived from the run seed and the tags (no shared keys)."""
        text = ":".join([str(self.seed), *map(str, tags)]).encode()
        return int.from_bytes(hashlib.sha256(text).digest()[:4], "little")

    def rng(self, *tags: Any) -> np.random.Generator:
        return np.random.default_rng(self.seed_for(*tags))

    def figure_path(self, name: str) -> Path:
        path = self.out_dir / "figures" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


@dataclasses.dataclass
class Step:
    """A derivation, check or counterexample: ``run(ctx)`` returns one Outcome or a list.

    ``description`` says what the step measures; ``tolerance`` says why its tolerances are what they are
    (the measurement or bound behind them). Both go into the claim's documentation (``docs/claims.md``,
    generated by :mod:`proofs_check.docs`); each outcome still carries its own one-line reason.
    """

    name: str
    description: str
    run: Callable[[Context], Outcome | Sequence[Outcome]]
    tolerance: str = ""


@dataclasses.dataclass
class Claim:
    id: str
    title: str
    statement: str
    assumptions: list[str]
    derivations: list[Step] = dataclasses.field(default_factory=list)
    checks: list[Step] = dataclasses.field(default_factory=list)
    counterexamples: list[Step] = dataclasses.field(default_factory=list)
    uses_archs: bool = False
    """Whether ``--arch`` changes what the claim checks."""
    derivation: str = ""
    """The outline of the derivation (the proof idea), for the claim's documentation."""
    observations: list[str] = dataclasses.field(default_factory=list)
    """Open observations: measured facts the theory here does not (yet) explain, stated, not tuned away."""
    references: list[str] = dataclasses.field(default_factory=list)
    module: str = ""
    """The module that registers the claim (set by :func:`register`)."""
    quick_seconds: float = 0.0
    """What the claim took on the quick profile on the 2-core reference machine (measured, rounded): ``run --jobs``
    starts the longest claims first (proofs_check.parallel). Only the order depends on it, never a result."""

    def steps(self) -> Iterable[tuple[str, Step]]:
        for kind, steps in zip(KINDS, (self.derivations, self.checks, self.counterexamples)):
            for step in steps:
                yield kind, step


@dataclasses.dataclass
class ClaimResult:
    claim: Claim
    outcomes: list[Outcome]
    seconds: float

    @property
    def passed(self) -> bool:
        """At least one applicable outcome, and none failed (``n/a`` outcomes neither pass nor fail)."""
        return any(o.applicable for o in self.outcomes) and not any(o.failed for o in self.outcomes)


REGISTRY: dict[str, Claim] = {}


def register(claim: Claim) -> Claim:
    """Add ``claim`` to :data:`REGISTRY`, noting the module that registers it (``claim.module``: a worker process of
    ``run --jobs`` imports that module to find the claim, also one registered outside proofs_check.claims)."""
    if claim.id in REGISTRY:
        raise ValueError(f"claim {claim.id} registered twice")
    claim.module = claim.module or sys._getframe(1).f_globals.get("__name__", "")
    REGISTRY[claim.id] = claim
    return claim


PROJECT_ROOT = Path(__file__).resolve().parents[1]


def raised_where(error: BaseException) -> str:
    """Where ``error`` was raised, as ``path:line in function``: the innermost frame in this project's own code
    (:data:`PROJECT_PACKAGES`), else the innermost frame at all; paths relative to the repository."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "unknown"
    ours = [frame for frame in frames if _project_file(frame.filename) is not None]
    frame = (ours or frames)[-1]
    return f"{_project_file(frame.filename) or frame.filename}:{frame.lineno} in {frame.name}"


PROJECT_PACKAGES = ("theory", "numerics", "proofs_check", "tests", "benchmarks")
"""The folders of this project's own code (a virtual environment inside the checkout is not among them)."""


def _project_file(filename: str) -> Path | None:
    """``filename`` relative to the repository when it is an existing file of :data:`PROJECT_PACKAGES`, else None
    (site-packages, sympy's ``<lambdifygenerated-1>`` and other pseudo-files)."""
    path = Path(filename)
    if not path.is_file():
        return None
    path = path.resolve()
    for package in PROJECT_PACKAGES:
        if path.is_relative_to(PROJECT_ROOT / package):
            return path.relative_to(PROJECT_ROOT)
    return None


def run_step(kind: str, step: Step, ctx: Context) -> list[Outcome]:
    """Run one step; an exception becomes a failed outcome that carries the error message."""
    start = time.perf_counter()
    try:
        result = step.run(ctx)
        outcomes = [result] if isinstance(result, Outcome) else list(result)
        if not outcomes:
            raise RuntimeError("the step returned no outcome")
    except Exception as error:  # noqa: BLE001 - reported as a failed outcome, never swallowed
        outcomes = [Outcome(name=step.name, passed=False, measured=None, expected="no error",
                            reason="the step raised", details={"error": f"{type(error).__name__}: {error}",
                                                               "where": raised_where(error)})]
    elapsed = time.perf_counter() - start
    for outcome in outcomes:
        if outcome.kind == "check" and kind != "check":
            outcome.kind = kind
        outcome.seconds = elapsed / len(outcomes)
    return outcomes


def run_claim(claim: Claim, ctx: Context, *, starting: Callable[[str], None] = lambda where: None,
              finished: Callable[[str], None] = lambda where: None) -> ClaimResult:
    """Every step of ``claim`` in order (:func:`run_step`); ``starting`` and ``ctx.advance`` are told "ID: step" as
    each starts, ``finished`` the same words as each ends (the command advances its progress bar and polls for
    Ctrl-C there)."""
    start = time.perf_counter()
    outcomes: list[Outcome] = []
    for kind, step in claim.steps():
        where = f"{claim.id}: {step.name}"
        starting(where)
        ctx.advance(where)
        outcomes.extend(run_step(kind, step, ctx))
        finished(where)
    return ClaimResult(claim=claim, outcomes=outcomes, seconds=time.perf_counter() - start)


def fit_loglog_slope(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Least-squares slope and intercept of log(y) against log(x)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.size < 2:
        raise ValueError(f"need matching x and y with at least 2 points, got {x.shape} and {y.shape}")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("log-log fit needs positive values")
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    return float(slope), float(intercept)
