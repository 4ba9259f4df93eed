"""Lotka–Volterra missing physics: fit a UDE, recover the missing terms, refit.

The truth is x' = αx − βxy, y' = γxy − δy with α, β, γ, δ = 1.3, 0.9, 0.8, 1.8.
The model keeps αx and −δy and lets a network U learn the rest from noisy
observations on t ∈ [0, 5]; sparse regression on U recovers −0.9·xy and
+0.8·xy, and the recovered model, refitted and simulated to t = 10,
follows the truth. A pure neural ODE trained on the same data follows it too
on the training orbit (the data cover about one period of a closed orbit),
but from a new initial state it is badly wrong: it learned the vector field
along one orbit, the recovered equations describe the whole phase plane.

Every recovered coefficient comes with an error bar (Gauss–Newton, from the
refit's residuals) and every library term with its inclusion frequency over
bootstrap resamples (stability selection); the recovered model's prediction
band (its coefficients and initial state drawn from their joint error
distribution) is plotted to t = 10.

    python examples/lotka_volterra.py            # full run (seeded, ~1-2 min)
    python examples/lotka_volterra.py --quick    # a short smoke run for tests
    python examples/lotka_volterra.py --method collocation+solve
    python examples/lotka_volterra.py --method collocation

`--method solve` (the default) fits the UDE and the neural ODE with the solve
in the loss from the start; `--method collocation+solve` first fits them to
the smoothed data (integral collocation: no solve), then continues with a
short solve-in-the-loop fit; `--method collocation` fits the networks by
collocation alone, so the only solve in the loop is the refit of the
recovered coefficients (see docs/pages/faster-training.md). Every way ends
with the same refit: the coefficients always come from a solve in the loop.
"""

import argparse
import json
import os
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import diffrax as dfx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402

import symml as sm  # noqa: E402
from symml.export import atomic_write  # noqa: E402

ALPHA, BETA, GAMMA, DELTA = 1.3, 0.9, 0.8, 1.8
T_DATA, T_EXTRAPOLATE, DT = 5.0, 10.0, 0.25
NOISE = 0.005  # of each state's mean


def true_solution(u0, ts) -> np.ndarray:
    def rhs(t, u, args):
        x, y = u
        return jnp.stack([ALPHA * x - BETA * x * y, GAMMA * x * y - DELTA * y])

    sol = dfx.diffeqsolve(
        dfx.ODETerm(rhs),
        dfx.Tsit5(),
        ts[0],
        ts[-1],
        None,
        jnp.asarray(u0),
        saveat=dfx.SaveAt(ts=jnp.asarray(ts)),
        stepsize_controller=dfx.PIDController(rtol=1e-10, atol=1e-12),
        max_steps=100_000,
    )
    return np.asarray(sol.ys)


def make_data(seed: int):
    rng = np.random.default_rng(seed)
    u0 = rng.uniform(0.0, 5.0, size=2)
    ts = np.arange(0.0, T_DATA + DT / 2, DT)
    clean = true_solution(u0, ts)
    noisy = clean + NOISE * clean.mean(axis=0) * rng.standard_normal(clean.shape)
    return u0, ts, noisy


# (Adam, L-BFGS) steps of each way of fitting, full run and --quick: the
# solve in the loss from the start; or a collocation fit (no solve: a step
# evaluates the network at three points per interval between observations),
# alone or followed by a third of the solve-in-the-loop Adam steps from its
# result, one optimiser phase per stage (each phase is compiled once, and
# compiling a step costs more than a thousand of its steps here).
METHODS = {
    "solve": {"full": (3000, 300), "quick": (200, 0)},
    "collocation": {"full": (2000, 0), "quick": (200, 0)},
    "collocation+solve": {
        "collocation": {"full": (2000, 0), "quick": (200, 0)},
        "full": (1000, 0),
        "quick": (50, 0),
    },
}


def fit_method(name: str, quick: bool):
    """`(method, steps, lbfgs_steps)` for `sm.fit`."""
    mode = "quick" if quick else "full"
    steps, lbfgs_steps = METHODS[name][mode]
    if name in ("solve", "collocation"):
        return name, steps, lbfgs_steps
    first = METHODS[name]["collocation"][mode]
    method = sm.CollocationThenSolve(
        collocation_steps=first[0], collocation_lbfgs_steps=first[1]
    )
    return method, steps, lbfgs_steps


def relative_l2(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def plot(path, data, dense, truth, refit, node, new):
    """Top: the refitted recovered model and a pure neural ODE against the data
    and the truth, to t = 10 from the data's initial state. Bottom: both from
    a new initial state."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 8), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True)
    rows = [
        ("from the data's initial state", truth, {"data": data}),
        (
            f"from a new initial state {np.round(new['u0'], 2).tolist()}",
            new["truth"],
            {"y0": new["u0"]},
        ),
    ]
    for row, (where, reference, start) in zip(axes, rows, strict=True):
        for ax, (name, fitted) in zip(
            row,
            [("recovered model, refitted", refit), ("neural ODE", node)],
            strict=True,
        ):
            true = {"x": reference[:, 0], "y": reference[:, 1]}
            try:
                sm.plot.fit(fitted, t=dense, truth=true, ax=ax, label=name, **start)
            except sm.FitError:  # a diverging neural ODE is a result
                ax.set_facecolor("0.95")
                ax.text(0.5, 0.5, "diverged", ha="center", transform=ax.transAxes)
            ax.axvline(T_DATA, color="k", lw=0.5)
            ax.set_title(f"{name}: {where}", fontsize=10)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))


def plot_prediction_band(path, ts, data, dense, truth, band) -> None:
    """The recovered model's prediction band (mean ± 1σ, 2σ) against the
    truth and the data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True)
    for i, (ax, name) in enumerate(zip(axes, ("x", "y"), strict=True)):
        sm.plot_band(band, name, ax=ax, label=f"{name}, recovered model", color="C0")
        ax.plot(dense, truth[:, i], color="0.4", lw=1, ls="--", label="truth")
        ax.plot(ts, data[:, i], "o", color="C1", ms=3, label="data")
        ax.axvline(T_DATA, color="k", lw=0.5)
        ax.set_title(f"{name}: prediction band of the recovered model", fontsize=10)
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/lotka_volterra"))
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument(
        "--method",
        choices=sorted(METHODS),
        default="solve",
        help="how the UDE and the neural ODE are fitted",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start, cpu_start = time.perf_counter(), time.process_time()
    method, steps, lbfgs_steps = fit_method(args.method, args.quick)
    refit_steps = 30 if args.quick else 200

    # -- declare ---------------------------------------------------------------
    t = sp.Symbol("t")
    x, y = sm.states("x y", t)
    alpha, delta = sp.symbols("alpha delta")
    U = sm.Unknown(
        "U",
        inputs=[x, y],
        outputs=2,
        hidden=[32, 32],
        activation="tanh",
        input_range=((0, 0), (5, 5)),
    )
    ude = sm.Model(
        [sp.Eq(x.diff(t), alpha * x + U[0]), sp.Eq(y.diff(t), -delta * y + U[1])],
        parameters={alpha: ALPHA, delta: DELTA},
    )

    # -- data and fit ------------------------------------------------------------
    u0, ts, noisy = make_data(args.seed)
    data = sm.Data(ts, {x: noisy[:, 0], y: noisy[:, 1]})
    result = sm.fit(
        ude,
        data,
        method=method,
        seed=args.seed,
        steps=steps,
        lbfgs_steps=lbfgs_steps,
    )

    # -- discover and refit --------------------------------------------------------
    found = sm.discover(result, library=sm.PolynomialLibrary(degree=3))
    refit = sm.fit(
        found.trainable_model(), data, seed=args.seed, steps=0, lbfgs_steps=refit_steps
    )
    coefficients = {str(c): v for c, v in refit.parameter_values().items()}

    # -- error bars and inclusion frequencies ----------------------------------------
    # Gauss–Newton at the refit, after a few Levenberg–Marquardt iterations
    # so that the error bars describe the minimum (quick refits stop early).
    bars = sm.parameter_uncertainty(refit, sm.GaussNewton(refine=10))
    ensemble = sm.discover(
        result,
        library=sm.PolynomialLibrary(degree=3),
        selector=sm.BestSubset(
            sm.Stability(n_resamples=20 if args.quick else 100, seed=args.seed)
        ),
    )
    frequencies = ensemble.inclusion_frequencies()
    recovered_exprs = {}
    for c, (output, term) in found.coefficient_terms().items():
        recovered_exprs.setdefault(output, 0)
        recovered_exprs[output] += coefficients[str(c)] * term
    final = sm.Model(
        [
            sp.Eq(x.diff(t), ALPHA * x + recovered_exprs.get(U[0], 0)),
            sp.Eq(y.diff(t), -DELTA * y + recovered_exprs.get(U[1], 0)),
        ]
    )

    # -- a pure neural ODE on the same data, for comparison --------------------------
    N = sm.Unknown(
        "N",
        inputs=[x, y],
        outputs=2,
        hidden=[32, 32],
        activation="tanh",
        input_range=((0, 0), (5, 5)),
    )
    node_model = sm.Model([sp.Eq(x.diff(t), N[0]), sp.Eq(y.diff(t), N[1])])
    node = sm.fit(
        node_model,
        data,
        method=method,
        seed=args.seed,
        steps=steps,
        lbfgs_steps=lbfgs_steps,
    )

    # -- evaluate --------------------------------------------------------------------
    dense = np.linspace(0.0, T_EXTRAPOLATE, 201)
    truth = true_solution(u0, dense)
    final_rhs, final_params = sm.lower(final)

    def simulate_recovered(y0):
        solution = dfx.diffeqsolve(
            dfx.ODETerm(final_rhs),
            dfx.Tsit5(),
            0.0,
            T_EXTRAPOLATE,
            None,
            jnp.asarray(y0),
            args=final_params,
            saveat=dfx.SaveAt(ts=jnp.asarray(dense)),
            stepsize_controller=dfx.PIDController(rtol=1e-10, atol=1e-12),
            max_steps=100_000,
            throw=False,
        )
        if not bool(solution.result == dfx.RESULTS.successful):
            # A wrong recovered model (a short --quick fit) may blow up: its
            # error is reported as None, as a diverging neural ODE's.
            return np.full_like(truth, np.nan)
        return np.asarray(solution.ys)

    def simulate_node(y0):
        try:
            return np.asarray(node.predict(dense, y0=jnp.asarray(y0)).ys)
        except sm.FitError:  # a diverging neural ODE is a result
            return np.full_like(truth, np.nan)

    def error(traj, reference):
        return relative_l2(traj, reference) if np.all(np.isfinite(traj)) else None

    recovered = simulate_recovered(u0)
    node_traj = simulate_node(u0)
    # A new initial state, never seen in training: the recovered equations
    # describe the whole phase plane, a neural ODE only the orbit it was fitted
    # on.
    u0_new = np.random.default_rng(args.seed + 1000).uniform(0.0, 5.0, size=2)
    truth_new = true_solution(u0_new, dense)
    new_trajectories = {
        "u0": u0_new,
        "truth": truth_new,
        "recovered": simulate_recovered(u0_new),
        "node": simulate_node(u0_new),
    }
    generalisation = {
        "initial_state": u0_new.tolist(),
        "recovered_model": error(new_trajectories["recovered"], truth_new),
        "neural_ode": error(new_trajectories["node"], truth_new),
    }

    true_terms = {U[0]: {x * y: -BETA}, U[1]: {x * y: GAMMA}}
    errors = bars.standard_errors
    intervals = bars.interval(0.95)
    outputs = {}
    for output in (U[0], U[1]):
        terms, standard_errors, interval = {}, {}, {}
        for c, (o, term) in found.coefficient_terms().items():
            if o == output:
                terms[str(term)] = coefficients[str(c)]
                standard_errors[str(term)] = errors[c]
                interval[str(term)] = list(intervals[c])
        truth_terms = {str(k): v for k, v in true_terms[output].items()}
        exact = set(terms) == set(truth_terms)
        outputs[str(output)] = {
            "expression": str(recovered_exprs.get(output, sp.Integer(0))),
            "terms": terms,
            "standard_errors": standard_errors,
            "intervals_95": interval,
            "inclusion_frequencies": {
                str(term): f for term, f in frequencies[output].items()
            },
            "discovered_terms": {str(k): v for k, v in found.terms[output].items()},
            "true_terms": truth_terms,
            "terms_exact": exact,
            "coefficient_relative_errors": {
                k: abs(terms[k] - v) / abs(v)
                for k, v in truth_terms.items()
                if k in terms
            },
        }
    band = bars.predict(dense)
    latex_with_errors = sm.to_latex(
        bars.model, values=True, uncertainty=bars.standard_errors
    )
    wall = time.perf_counter() - start
    summary = {
        "seed": args.seed,
        "quick": args.quick,
        "method": args.method,
        "initial_state": u0.tolist(),
        "unknowns": outputs,
        "losses": {
            "ude": {k: float(v[-1]) for k, v in result.history.items() if len(v)},
            "refit": {k: float(v[-1]) for k, v in refit.history.items() if len(v)},
            "neural_ode": {k: float(v[-1]) for k, v in node.history.items() if len(v)},
        },
        "relative_l2_error_t0_10": {
            "recovered_model": error(recovered, truth),
            "neural_ode": error(node_traj, truth),
        },
        "relative_l2_error_new_initial_state_t0_10": generalisation,
        "wall_time_seconds": wall,
        # CPU time of all threads: on a shared machine the wall time measures
        # the neighbours as much as the run.
        "cpu_time_seconds": time.process_time() - cpu_start,
        "fit_wall_time_seconds": {
            "ude": result.wall_time,
            "refit": refit.wall_time,
            "neural_ode": node.wall_time,
        },
        "load_average": list(os.getloadavg()),
        "equations_latex": sm.to_latex(final),
        "equations_latex_with_errors": latex_with_errors,
        "error_bars": bars.to_dict(),
        "prediction_band": {
            "method": repr(band.method),
            "max_std_x_y_t0_10": np.max(band.std, axis=0).tolist(),
            "truth_within_2_sigma_t0_10": float(
                np.mean(np.abs(band.mean - truth) <= 2 * band.std)
            ),
        },
    }
    atomic_write(
        args.out / "summary.json",
        lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2)),
    )
    sm.write_latex(args.out / "equations.tex", final)
    sm.write_latex(
        args.out / "equations_with_errors.tex",
        bars.model,
        values=True,
        uncertainty=bars.standard_errors,
    )
    if not args.no_plot:
        plot_prediction_band(
            args.out / "prediction_band.png", ts, noisy, dense, truth, band
        )
        plot(args.out / "fit.png", data, dense, truth, refit, node, new_trajectories)

    print("Recovered equations:")
    for eq in final.equations:
        print(f"  {eq.lhs} = {eq.rhs}")
    print(bars)
    print(latex_with_errors)
    for name, o in outputs.items():
        chosen = {k: f for k, f in o["inclusion_frequencies"].items() if f > 0}
        print(
            f"{name}: terms {o['terms']} (exact: {o['terms_exact']}), "
            f"relative errors {o['coefficient_relative_errors']}, inclusion "
            f"frequencies {chosen}"
        )
    print(
        f"relative L2 error on [0, {T_EXTRAPOLATE:g}]: recovered "
        f"{summary['relative_l2_error_t0_10']['recovered_model']}, neural ODE "
        f"{summary['relative_l2_error_t0_10']['neural_ode']}"
    )
    print(
        f"from a new initial state {np.round(u0_new, 3).tolist()}: recovered "
        f"{generalisation['recovered_model']}, neural ODE "
        f"{generalisation['neural_ode']}"
    )
    print(f"wall time {wall:.1f} s; results in {args.out}/")
    return summary


if __name__ == "__main__":
    main()
