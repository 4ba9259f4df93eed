"""Collocation before the solve in the loop: wall time and recovered equations.

Two problems, each fitted both ways side by side in one run:

- **Lotka–Volterra missing physics** (the model and data of
  `examples/lotka_volterra.py`, seeds 0–4): the whole run the example makes
  for its recovered model (fit the UDE, sparse regression on U, refit the
  coefficients with the solve in the loop), once with today's solve-only fit
  (3000 Adam + 300 L-BFGS steps with the solve in the loss) and once with
  `method="collocation+solve"` (2000 Adam steps of integral collocation,
  then 1000 Adam steps of the solve in the loss from its result): the
  example's own settings (`lotka_volterra.METHODS`). Reported per seed: wall
  and process CPU times, whether the recovered terms are exactly
  {−x·y, +x·y}, and the coefficients' relative errors.
- **Fisher–KPP universal PDE** (the model and data of
  `examples/fisher_kpp.py`): the fit alone, three ways side by side: the
  solve in the loop (the example's 500 Adam + 300 L-BFGS steps),
  collocation (integral matching, 2000 Adam + 300 L-BFGS steps) and
  collocation+solve (2000 Adam steps of collocation, then 500 Adam steps of
  the solve in the loss from its result), with the learned D and its
  relative error, the reaction network's largest error over the data's
  range, the terms sparse regression finds in it and the final loss.

    python benchmarks/collocation.py [--quick] [--seed N] [--seeds 0 1 2 3 4]
                                     [--problems lv fkpp] [--out DIR]

`--out DIR` writes `DIR/summary.json` (atomically). Times are wall-clock
seconds in one process; the load of the machine (`os.getloadavg()`) is
recorded with them, and ratios of runs made side by side are what to quote.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402

import symml as sm  # noqa: E402
from symml.export import atomic_write  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import fisher_kpp  # noqa: E402
import lotka_volterra  # noqa: E402
from _lotka_volterra import declare  # noqa: E402

# -- Lotka–Volterra ----------------------------------------------------------------


def lv_run(seed: int, method: str, quick: bool) -> dict:
    """Fit, discover and refit as the example does, by `method`."""
    model, x, y, U = declare()
    _, ts, noisy = lotka_volterra.make_data(seed)
    data = sm.Data(ts, {x: noisy[:, 0], y: noisy[:, 1]})
    start, cpu_start = time.perf_counter(), time.process_time()
    fit_method, steps, lbfgs_steps = lotka_volterra.fit_method(method, quick)
    result = sm.fit(
        model,
        data,
        seed=seed,
        method=fit_method,
        steps=steps,
        lbfgs_steps=lbfgs_steps,
    )
    fitted = time.perf_counter() - start
    fitted_cpu = time.process_time() - cpu_start
    found = sm.discover(result, library=sm.PolynomialLibrary(degree=3))
    refit = sm.fit(
        found.trainable_model(),
        data,
        seed=seed,
        steps=0,
        lbfgs_steps=30 if quick else 200,
    )
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    values = {str(c): v for c, v in refit.parameter_values().items()}
    truth = {
        str(U[0]): {"x*y": -lotka_volterra.BETA},
        str(U[1]): {"x*y": lotka_volterra.GAMMA},
    }
    terms = {str(U[0]): {}, str(U[1]): {}}
    for c, (output, term) in found.coefficient_terms().items():
        terms[str(output)][str(term)] = values[str(c)]
    exact = all(set(terms[k]) == set(truth[k]) for k in truth)
    errors = {
        f"{k}:{term}": abs(terms[k][term] - v) / abs(v)
        for k, expected in truth.items()
        for term, v in expected.items()
        if term in terms[k]
    }
    return {
        "seed": seed,
        "method": method,
        "fit_seconds": fitted,
        "wall_seconds": wall,
        # CPU time of all threads: on a shared machine the wall time measures
        # the neighbours as much as the run.
        "fit_cpu_seconds": fitted_cpu,
        "cpu_seconds": cpu,
        "terms": terms,
        "terms_exact": exact,
        "coefficient_relative_errors": errors,
        "max_coefficient_relative_error": max(errors.values()) if errors else None,
        "fit_loss": result.final_loss,
        "history_steps": {k: len(v) for k, v in result.history.items()},
    }


def lotka_volterra_rows(seeds, quick: bool) -> dict:
    rows = []
    for seed in seeds:
        # Side by side: the two pipelines of one seed run back to back.
        for method in ("solve", "collocation+solve"):
            row = lv_run(seed, method, quick)
            row["load"] = os.getloadavg()[0]
            rows.append(row)
            print(
                f"LV seed {seed} {method:>18}: {row['wall_seconds']:7.1f} s "
                f"({row['cpu_seconds']:.1f} s CPU), terms "
                f"exact {row['terms_exact']}, max coefficient error "
                f"{_pct(row['max_coefficient_relative_error'])}",
                flush=True,
            )
    by = {
        m: [r for r in rows if r["method"] == m] for m in ("solve", "collocation+solve")
    }
    speedups = [
        a["wall_seconds"] / b["wall_seconds"]
        for a, b in zip(by["solve"], by["collocation+solve"], strict=True)
    ]
    cpu_speedups = [
        a["cpu_seconds"] / b["cpu_seconds"]
        for a, b in zip(by["solve"], by["collocation+solve"], strict=True)
    ]

    def worst(method):
        errs = [r["max_coefficient_relative_error"] for r in by[method]]
        return None if any(e is None for e in errs) else max(errs)

    return {
        "rows": rows,
        "speedup_per_seed": speedups,
        "median_speedup_whole_run": statistics.median(speedups),
        "cpu_speedup_per_seed": cpu_speedups,
        "median_cpu_speedup_whole_run": statistics.median(cpu_speedups),
        "total_wall_seconds": {m: sum(r["wall_seconds"] for r in by[m]) for m in by},
        "speedup_total": sum(r["wall_seconds"] for r in by["solve"])
        / sum(r["wall_seconds"] for r in by["collocation+solve"]),
        "terms_exact": {m: [r["terms_exact"] for r in by[m]] for m in by},
        "max_coefficient_relative_error": {m: worst(m) for m in by},
    }


# -- Fisher–KPP --------------------------------------------------------------------


# (Adam, L-BFGS) steps per method; collocation+solve: the solve stage's, and
# its collocation stage's under "collocation".
FKPP_STEPS = {
    "solve": {"full": (500, 300), "quick": (10, 0)},
    "collocation": {"full": (2000, 300), "quick": (50, 0)},
    "collocation+solve": {
        "collocation": {"full": (2000, 0), "quick": (50, 0)},
        "full": (500, 0),
        "quick": (10, 0),
    },
}


def fkpp_run(seed: int, method: str, quick: bool) -> dict:
    t, x = sp.symbols("t x")
    (rho,) = sm.states("rho", t, x)
    D = sp.Symbol("D")
    N = sm.Unknown(
        "N", inputs=[rho], outputs=1, hidden=[32, 32], input_range=((0,), (1,))
    )
    ude = sm.Model(
        [sp.Eq(rho.diff(t), N[0] + D * rho.diff(x, 2))],
        parameters={D: sm.trainable(fisher_kpp.D_GUESS)},
        domain={x: (0, 1)},
        boundary="periodic",
    )
    ode = sm.discretize(ude, {x: fisher_kpp.GRID})
    ts, clean, noisy = fisher_kpp.make_data(seed, 1.0 if quick else fisher_kpp.T_END)
    data = sm.Data(ts, {rho: noisy})
    mode = "quick" if quick else "full"
    steps, lbfgs_steps = FKPP_STEPS[method][mode]
    fit_method = method
    if method == "collocation+solve":
        first = FKPP_STEPS[method]["collocation"][mode]
        fit_method = sm.CollocationThenSolve(
            collocation_steps=first[0], collocation_lbfgs_steps=first[1]
        )
    start = time.perf_counter()
    result = sm.fit(
        ode, data, method=fit_method, seed=seed, steps=steps, lbfgs_steps=lbfgs_steps
    )
    fitted = time.perf_counter() - start
    d_learned = result.parameter_values()[D]
    grid = np.linspace(clean.min(), clean.max(), 201)
    network = result.params.networks[N.name]
    learned = np.asarray(jax.vmap(network)(jnp.asarray(grid)[:, None]))[:, 0]
    truth = fisher_kpp.R * grid * (1 - grid)
    found = sm.discover(result, library=sm.PolynomialLibrary(degree=3))
    terms = {str(term): value for term, value in found.terms[N[0]].items()}
    return {
        "seed": seed,
        "method": method,
        "fit_seconds": fitted,
        "D": d_learned,
        "D_relative_error": abs(d_learned - fisher_kpp.D_TRUE) / fisher_kpp.D_TRUE,
        "reaction_max_error_in_data_range": float(np.max(np.abs(learned - truth))),
        "discovered_terms": terms,
        "terms_exact": set(terms) == {str(rho), str(rho**2)},
        "fit_loss": result.final_loss,
        "load": os.getloadavg()[0],
    }


def fisher_kpp_rows(seed: int, quick: bool) -> dict:
    rows = []
    for method in FKPP_STEPS:
        row = fkpp_run(seed, method, quick)
        rows.append(row)
        print(
            f"Fisher–KPP {method:>17}: fit {row['fit_seconds']:7.1f} s, D = "
            f"{row['D']:.5f} ({_pct(row['D_relative_error'])}), reaction max error "
            f"{row['reaction_max_error_in_data_range']:.4f}, terms "
            f"{sorted(row['discovered_terms'])}",
            flush=True,
        )
    by = {r["method"]: r for r in rows}
    return {
        "rows": rows,
        "fit_time_ratio_solve_vs_collocation": by["solve"]["fit_seconds"]
        / by["collocation"]["fit_seconds"],
        "fit_time_ratio_solve_vs_collocation_then_solve": by["solve"]["fit_seconds"]
        / by["collocation+solve"]["fit_seconds"],
        "D_relative_error": {m: r["D_relative_error"] for m, r in by.items()},
        "reaction_max_error_in_data_range": {
            m: r["reaction_max_error_in_data_range"] for m, r in by.items()
        },
    }


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--seed", type=int, default=0, help="the Fisher–KPP seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument(
        "--problems", nargs="+", default=["lv", "fkpp"], choices=["lv", "fkpp"]
    )
    parser.add_argument("--out", type=Path, default=Path("results/collocation"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = args.seeds or ([args.seed] if args.quick else [0, 1, 2, 3, 4])
    start = time.perf_counter()
    summary = {
        "quick": args.quick,
        "seeds": seeds,
        "load_at_start": os.getloadavg()[0],
        "cpu_count": os.cpu_count(),
    }
    if "lv" in args.problems:
        summary["lotka_volterra"] = lotka_volterra_rows(seeds, args.quick)
    if "fkpp" in args.problems:
        summary["fisher_kpp"] = fisher_kpp_rows(args.seed, args.quick)
    summary["wall_time_seconds"] = time.perf_counter() - start
    summary["load_at_end"] = os.getloadavg()[0]
    atomic_write(
        args.out / "summary.json",
        lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2)),
    )
    if "lotka_volterra" in summary:
        lv = summary["lotka_volterra"]
        print(
            f"Lotka–Volterra: whole run {lv['median_speedup_whole_run']:.2f}× faster "
            f"in wall time, {lv['median_cpu_speedup_whole_run']:.2f}× in CPU time, "
            f"with collocation+solve (median over seeds; total wall "
            f"{lv['speedup_total']:.2f}×); terms exact {lv['terms_exact']}; largest "
            f"coefficient errors {lv['max_coefficient_relative_error']}"
        )
    if "fisher_kpp" in summary:
        fk = summary["fisher_kpp"]
        print(
            "Fisher–KPP: fit "
            f"{fk['fit_time_ratio_solve_vs_collocation']:.1f}× faster by collocation, "
            f"{fk['fit_time_ratio_solve_vs_collocation_then_solve']:.1f}× by "
            "collocation+solve, than by the solve in the loop; D errors "
            + ", ".join(f"{m} {_pct(e)}" for m, e in fk["D_relative_error"].items())
        )
    print(f"wall time {summary['wall_time_seconds']:.0f} s; results in {args.out}/")
    return summary


if __name__ == "__main__":
    main()
