"""Calibration of the error bars of recovered coefficients: over independent
noisy Lotka–Volterra data sets, how often does a nominal 95 % interval of each
x·y coefficient contain the truth?

The pipeline is that of `examples/lotka_volterra.py` (x' = αx − βxy,
y' = γxy − δy with α, β, γ, δ = 1.3, 0.9, 0.8, 1.8; t ∈ [0, 5] saved every
0.25; u₀ drawn in [0, 5]² from the seed; the model keeps αx and −δy and a tanh
network U(x, y) with two 32-unit layers learns the rest), with Gaussian noise
of 1 % and of 5 % of each state's mean. For each data set (seed = first seed +
k):

1. fit the UDE (`steps=3000, lbfgs_steps=300`);
2. discover U's terms with the defaults (best subset, Elbow) and a cubic
   library (10 terms), and again with stability selection over 100 bootstrap
   resamples of the rows for the inclusion frequencies of every term;
3. refit the recovered coefficients (`steps=0, lbfgs_steps=200`, initial
   states trained);
4. error bars of the refit: Gauss–Newton (`GaussNewton(refine=10)`: ten
   Levenberg–Marquardt iterations polish the refit first) and the residual
   bootstrap (`Bootstrap(n_resamples=200, seed=k)`), and their 95 % intervals
   of the x·y coefficients (truth −0.9 in U₀, +0.8 in U₁). A data set on
   which discovery misses x·y counts as two misses.

Each data set's result is written to `runs/noise_<p>/seed_<k>.json` as soon as
it is done, and a later run skips the data sets already there: the script
can be stopped and resumed, or run as one process per noise level
(`--noise 0.01` and `--noise 0.05` side by side), sharing `--out`. The
summary covers every data set found in `runs/`.

    python benchmarks/calibration.py                       # 20 data sets × 2 noises
    python benchmarks/calibration.py --noise 0.05 --n-datasets 10
    python benchmarks/calibration.py --quick               # one short data set each

Writes `summary.json` to `--out`.
"""

import argparse
import json
import math
import os
import time
import warnings
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from _lotka_volterra import BETA, GAMMA, declare, make_data  # noqa: E402

import symml as sm  # noqa: E402
from symml.export import atomic_write  # noqa: E402

LEVEL = 0.95


def run_dataset(seed: int, noise: float, settings: dict) -> dict:
    model, x, y, U = declare()
    u0, ts, noisy = make_data(seed, noise)
    data = sm.Data(ts, {x: noisy[:, 0], y: noisy[:, 1]})
    times = {}
    start = time.perf_counter()
    result = sm.fit(
        model,
        data,
        seed=seed,
        steps=settings["steps"],
        lbfgs_steps=settings["lbfgs_steps"],
    )
    times["fit"] = time.perf_counter() - start

    library = sm.PolynomialLibrary(degree=3)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", sm.SymmlWarning)
        found = sm.discover(result, library=library)
        ensemble = sm.discover(
            result,
            library=library,
            selector=sm.BestSubset(
                sm.Stability(n_resamples=settings["stability_resamples"], seed=seed)
            ),
        )
    frequencies = ensemble.inclusion_frequencies()
    times["discover"] = time.perf_counter() - start

    start = time.perf_counter()
    refit = sm.fit(
        found.trainable_model(),
        data,
        seed=seed,
        steps=0,
        lbfgs_steps=settings["refit_steps"],
    )
    times["refit"] = time.perf_counter() - start

    methods = {
        "gauss_newton": sm.GaussNewton(refine=10),
        "bootstrap": sm.Bootstrap(
            n_resamples=settings["bootstrap_resamples"], seed=seed
        ),
    }
    bars = {}
    for name, method in methods.items():
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as more:
            warnings.simplefilter("always", sm.SymmlWarning)
            bars[name] = sm.parameter_uncertainty(refit, method)
        caught.extend(more)
        times[name] = time.perf_counter() - start

    truth = {U[0]: -BETA, U[1]: GAMMA}
    xy = x * y
    outputs = {}
    for output, true_value in truth.items():
        coefficient = next(
            (
                c
                for c, (o, term) in found.coefficient_terms().items()
                if o == output and term == xy
            ),
            None,
        )
        entry = {
            "terms": sorted(str(term) for term in found.terms[output]),
            "exact": set(found.terms[output]) == {xy},
            "inclusion_frequencies": {
                str(term): f for term, f in frequencies[output].items()
            },
            "truth": true_value,
        }
        for name, b in bars.items():
            if coefficient is None:
                entry[name] = None
                continue
            low, high = b.interval(LEVEL)[coefficient]
            entry[name] = {
                "estimate": b.values[coefficient],
                "standard_error": b.standard_errors[coefficient],
                "interval": [low, high],
                "contains_truth": bool(low <= true_value <= high),
            }
        outputs[str(output)] = entry
    return {
        "seed": seed,
        "noise": noise,
        "initial_state": u0.tolist(),
        "outputs": outputs,
        "noise_std_estimated": bars["gauss_newton"].noise_std,
        "noise_std_true": (noise * np.abs(noisy).mean(axis=0)).tolist(),
        "bootstrap_failed": bars["bootstrap"].n_failed,
        "warnings": [str(w.message) for w in caught],
        "seconds": times,
        "load_average": list(os.getloadavg()),
    }


def summarise(runs: list[dict]) -> dict:
    out = {}
    for noise in sorted({r["noise"] for r in runs}):
        group = [r for r in runs if r["noise"] == noise]
        coverage, widths, z_rms = {}, {}, {}
        for method in ("gauss_newton", "bootstrap"):
            # (estimate − truth) / standard error: about 1 in root mean square
            # when the standard errors are right, whatever the intervals' shape.
            z = [
                (o[method]["estimate"] - o["truth"]) / o[method]["standard_error"]
                for r in group
                for o in r["outputs"].values()
                if o[method]
            ]
            z_rms[method] = float(np.sqrt(np.mean(np.square(z)))) if z else math.nan
            hits = [
                bool(o[method] and o[method]["contains_truth"])
                for r in group
                for o in r["outputs"].values()
            ]
            coverage[method] = float(np.mean(hits))
            widths[method] = float(
                np.median(
                    [
                        o[method]["standard_error"] / abs(o["truth"])
                        for r in group
                        for o in r["outputs"].values()
                        if o[method]
                    ]
                    or [math.nan]
                )
            )
        frequencies: dict[str, dict[str, list[float]]] = {}
        for r in group:
            for name, o in r["outputs"].items():
                for term, f in o["inclusion_frequencies"].items():
                    frequencies.setdefault(name, {}).setdefault(term, []).append(f)
        inclusion = {}
        for name, by_term in frequencies.items():
            means = {term: float(np.mean(f)) for term, f in by_term.items()}
            xy = next(term for term in means if term == "x(t)*y(t)")
            wrong = max((t for t in means if t != xy), key=means.get)
            inclusion[name] = {
                "x*y": means[xy],
                "best_wrong_term": wrong,
                "best_wrong_term_frequency": means[wrong],
                "selected_x*y_by_default": float(
                    np.mean([xy in r["outputs"][name]["terms"] for r in group])
                ),
            }
        out[f"{noise:g}"] = {
            "n_datasets": len(group),
            "seeds": sorted(r["seed"] for r in group),
            "coverage": coverage,
            "n_intervals": 2 * len(group),
            "median_relative_standard_error": widths,
            "rms_standardised_error": z_rms,
            "exact_terms": float(
                np.mean([all(o["exact"] for o in r["outputs"].values()) for r in group])
            ),
            "inclusion_frequencies": inclusion,
            "median_seconds": {
                k: float(np.median([r["seconds"][k] for r in group]))
                for k in group[0]["seconds"]
            },
        }
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--n-datasets", type=int, default=20)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.01, 0.05])
    parser.add_argument("--out", type=Path, default=Path("results/calibration"))
    parser.add_argument("--quick", action="store_true", help="one short data set")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="start no new data set after this long (the others stay to resume)",
    )
    parser.add_argument(
        "--compile-cache",
        type=Path,
        default=None,
        help="a folder for JAX's persistent compilation cache",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    load_start = os.getloadavg()
    if args.quick:
        settings = {
            "steps": 200,
            "lbfgs_steps": 0,
            "refit_steps": 30,
            "stability_resamples": 10,
            "bootstrap_resamples": 20,
        }
        n_datasets = 1
    else:
        settings = {
            "steps": 3000,
            "lbfgs_steps": 300,
            "refit_steps": 200,
            "stability_resamples": 100,
            "bootstrap_resamples": 200,
        }
        n_datasets = args.n_datasets
    if args.compile_cache is not None:
        # Every data set compiles the same programs again; JAX's persistent
        # cache lets the later ones reuse the first one's executables.
        jax.config.update("jax_compilation_cache_dir", str(args.compile_cache))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    runs_dir = args.out / "runs"
    done, reused = 0, 0
    stopped = False
    # Seeds outermost, so that a run stopped by the time budget leaves as many
    # data sets at each noise level.
    for seed in range(args.seed, args.seed + n_datasets):
        for noise in args.noise:
            folder = runs_dir / f"noise_{noise:g}"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"seed_{seed}.json"
            if path.exists():
                reused += 1
                continue
            minutes = (time.perf_counter() - start) / 60
            if args.max_minutes is not None and minutes > args.max_minutes:
                stopped = True
                break
            run = run_dataset(seed, noise, settings)
            # JAX keeps every compiled step of every fit (about 500 memory
            # maps each); after some 40 fits one process reaches the kernel's
            # limit of 65530 maps and LLVM fails with "Cannot allocate
            # memory". The next data set compiles afresh (or loads from the
            # persistent cache), so nothing is lost by releasing them.
            jax.clear_caches()
            run["settings"] = settings
            atomic_write(path, lambda tmp, r=run: Path(tmp).write_text(json.dumps(r)))
            done += 1
            hits = {
                name: [
                    o[m]["contains_truth"] if o[m] else None
                    for m in ("gauss_newton", "bootstrap")
                ]
                for name, o in run["outputs"].items()
            }
            print(
                f"noise {noise:g} seed {seed}: in 95 % interval (GN, bootstrap) "
                f"{hits}; fit {run['seconds']['fit']:.0f} s, bootstrap "
                f"{run['seconds']['bootstrap']:.0f} s",
                flush=True,
            )
        if stopped:
            break
    runs = [
        json.loads(p.read_text())
        for noise in args.noise
        for p in sorted((runs_dir / f"noise_{noise:g}").glob("seed_*.json"))
    ]
    if args.quick:
        runs = [r for r in runs if r["settings"] == settings]
    summary = {
        "quick": args.quick,
        "level": LEVEL,
        "settings": settings,
        "n_datasets_requested": n_datasets,
        "n_runs": done + reused,
        "reused": reused,
        "stopped_by_time_budget": stopped,
        "noise_levels": summarise(runs) if runs else {},
        "load_average": {"start": list(load_start), "end": list(os.getloadavg())},
        "cpus": os.cpu_count(),
        "wall_time_seconds": time.perf_counter() - start,
    }
    atomic_write(
        args.out / "summary.json",
        lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2)),
    )
    for noise, s in summary["noise_levels"].items():
        print(
            f"noise {noise}: {s['n_datasets']} data sets; coverage of 95 % intervals "
            f"Gauss–Newton {s['coverage']['gauss_newton']:.0%}, bootstrap "
            f"{s['coverage']['bootstrap']:.0%}; inclusion frequencies "
            + "; ".join(
                f"{k}: x·y {v['x*y']:.2f}, best wrong {v['best_wrong_term']} "
                f"{v['best_wrong_term_frequency']:.2f}"
                for k, v in s["inclusion_frequencies"].items()
            )
        )
    print(
        f"{done} data set(s) run, {reused} reused; wall time "
        f"{summary['wall_time_seconds']:.0f} s; load {load_start[0]:.1f} → "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; results in {args.out}/"
    )
    return summary


if __name__ == "__main__":
    main()
