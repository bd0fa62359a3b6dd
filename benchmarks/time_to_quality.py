"""Time to a faithful reconstruction: wall time of a cold-started attack until >= 90% of the digits reach SSIM >= 0.9.

Setting (issue "Speed and scale"): digits odd/even (scikit-learn 8x8, d = 64), N training digits, relu:2 in NTK
parametrization, width 1024, no biases, trained in its linearization (numerics.audit.train_on, not timed);
M = 2N reconstructions; float64 unless --precision float32. For each attack mode and each step budget in
--budgets (the softplus annealing spans the budget), one cold attack (compilation included) is timed and
scored with numerics.audit.leakage beside the trivial baselines (mean image, noise, held-out digits). The
first budget whose run reaches the quality is the mode's time to quality.

    .venv/bin/python benchmarks/time_to_quality.py [--n 20] [--modes joint profiled] [--budgets 250 500 1000 2000 4000]
                                                   [--lr 0.02] [--lr-final F] [--init-scale 0.2] [--beta 10 200]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax

import numerics  # noqa: F401  (float64)
from numerics import audit
from numerics.attack import MODES, PRECISIONS, parameter_space_attack
from theory import parse_spec

QUALITY_SSIM, QUALITY_FRACTION = 0.9, 0.9
"""The issue's bar: >= 90% of the training digits matched to a reconstruction with SSIM >= 0.9."""


def run(n: int, modes, budgets, *, width: int = 1024, precision: str = "float64", seed: int = 0,
        lr: float = 0.02, lr_final: float | None = None, init_scale: float = 0.2,
        beta_schedule: tuple[float, float] = (10.0, 200.0), emit=print) -> list[dict]:
    arch = parse_spec("relu:2")
    dataset = audit.load_dataset("digits-odd-even", n, seed=seed)
    references = audit.reference_sets("digits-odd-even", dataset, seed=seed)
    trained = audit.train_on(arch, width, dataset, linearized=True, seed=seed, progress=False)
    rows = []
    for mode in modes:
        for budget in budgets:
            start = time.perf_counter()
            result = parameter_space_attack(arch, trained.params_0, trained.params_f, 2 * n, in_dim=dataset.d,
                                            key=jax.random.PRNGKey(seed + 1), steps=budget, box=dataset.box,
                                            progress=False, chunk=budget, mode=mode, precision=precision, lr=lr,
                                            lr_final=lr_final, init_scale=init_scale,
                                            beta_schedule=tuple(beta_schedule))
            seconds = time.perf_counter() - start
            leak = audit.leakage(result.x_recon, dataset, references, seed=seed)
            fraction = leak.rows[audit.ATTACK_ROW]["ssim_ge_0.9"]
            trivial = {name: row["ssim_ge_0.9"] for name, row in leak.rows.items() if row["trivial"]}
            row = {"n": n, "width": width, "m": 2 * n, "mode": mode, "method": result.info["method"],
                   "precision": precision, "steps": budget, "seconds": round(seconds, 2), "lr": lr,
                   "lr_final": lr_final, "init_scale": init_scale, "beta": list(beta_schedule),
                   "load_average": round(os.getloadavg()[0], 1),
                   "ssim_ge_0.9": fraction, "trivial_ssim_ge_0.9": trivial,
                   "reached": fraction >= QUALITY_FRACTION, "ridge_steps": result.info["ridge_steps"]}
            emit(json.dumps(row))
            rows.append(row)
            if row["reached"]:
                break
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--budgets", type=int, nargs="+", default=[250, 500, 1000, 2000, 4000])
    parser.add_argument("--precision", choices=PRECISIONS, default="float64")
    parser.add_argument("--lr", type=float, default=0.02, help="Adam step on X_R (and lambda)")
    parser.add_argument("--lr-final", type=float, default=None, help="decay the step exponentially to this")
    parser.add_argument("--init-scale", type=float, default=0.2, help="X_R starts at init_scale N(0, 1)")
    parser.add_argument("--beta", type=float, nargs=2, default=(10.0, 200.0), help="softplus sharpness schedule")
    args = parser.parse_args()
    run(args.n, args.modes, args.budgets, width=args.width, precision=args.precision, lr=args.lr,
        lr_final=args.lr_final, init_scale=args.init_scale, beta_schedule=tuple(args.beta))


if __name__ == "__main__":
    main()
