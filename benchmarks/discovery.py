"""Discovery from data alone: Lorenz, Burgers and Kuramoto–Sivashinsky, side
by side with plain pysindy on the same data in the same run.

Each problem is simulated here, noise is added, and the equations are
recovered from the noisy observations with symml's defaults
(`sm.discover(data)`: the weak form with automatically chosen test functions,
best-subset selection, the Elbow criterion), and with plain pysindy
(`ps.SINDy` with its default STLSQ optimiser and default finite-difference
derivatives, given the same candidate terms). Reported per equation: whether
the recovered terms are exactly the true ones, the largest relative
coefficient error over the true terms, and the wall time.

- Lorenz (σ, ρ, β = 10, 28, 8/3) from (−8, 8, 27), dt = 0.01 on [0, 10],
  noise 0 %, 1 % and 5 % (Gaussian, standard deviation that fraction of each
  state's RMS); cubic polynomial library (20 terms).
- Burgers u_t = −u u_x + 0.1 u_xx on the periodic [−8, 8) with 256 points,
  u₀ = exp(−(x + 2)²), 101 times on [0, 10] (the PDE-FIND data set); 1 %
  noise (of the RMS of u).
- Kuramoto–Sivashinsky u_t = −u u_x − u_xx − u_xxxx on the periodic
  [0, 32π) with 512 points, u₀ = cos(x/16)(1 + sin(x/16)), 251 times on
  [0, 100]; 1 % noise.

Both PDE references are computed here by a Fourier pseudo-spectral method
with ETDRK4 time stepping (Kassam & Trefethen 2005) in float64; the summary
gives their self-convergence (the change when the time step is halved).

    python benchmarks/discovery.py                  # full run (about a minute)
    python benchmarks/discovery.py --quick          # smaller data, for tests
    python benchmarks/discovery.py --seed 1 --out results/discovery_1

Writes `summary.json` and `fronts.png` (the Pareto fronts symml chose from)
to `--out`. The noise is drawn from `numpy.random.default_rng(seed)`.
"""

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import sympy as sp
from scipy.integrate import solve_ivp

import symml as sm
from symml.export import atomic_write

SIGMA, RHO, BETA = 10.0, 28.0, 8.0 / 3.0


# -- data ---------------------------------------------------------------------------


def lorenz(t_end: float = 10.0, dt: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    def rhs(t, u):
        x, y, z = u
        return [SIGMA * (y - x), x * (RHO - z) - y, x * y - BETA * z]

    ts = np.arange(0.0, t_end + dt / 2, dt)
    sol = solve_ivp(
        rhs,
        (0, ts[-1]),
        [-8.0, 8.0, 27.0],
        t_eval=ts,
        method="DOP853",
        rtol=1e-12,
        atol=1e-12,
    )
    return ts, sol.y.T


def etdrk4(linear, nonlinear, u0, dt, n_steps, save_every, contour=32):
    """u_t = L u + N(u) in Fourier space by ETDRK4, with the φ-functions
    evaluated by contour integrals (Kassam & Trefethen 2005)."""
    v = np.fft.fft(u0)
    e, e2 = np.exp(dt * linear), np.exp(dt * linear / 2)
    r = np.exp(1j * np.pi * (np.arange(1, contour + 1) - 0.5) / contour)
    lr = dt * linear[:, None] + r[None, :]
    q = dt * np.real(np.mean((np.exp(lr / 2) - 1) / lr, axis=1))
    f1 = dt * np.real(np.mean((-4 - lr + np.exp(lr) * (4 - 3 * lr + lr**2)) / lr**3, 1))
    f2 = dt * np.real(np.mean((2 + lr + np.exp(lr) * (-2 + lr)) / lr**3, axis=1))
    f3 = dt * np.real(np.mean((-4 - 3 * lr - lr**2 + np.exp(lr) * (4 - lr)) / lr**3, 1))
    out = [np.asarray(u0, dtype=float)]
    for step in range(1, n_steps + 1):
        nv = nonlinear(v)
        a = e2 * v + q * nv
        na = nonlinear(a)
        b = e2 * v + q * na
        nb = nonlinear(b)
        c = e2 * a + q * (2 * nb - nv)
        nc = nonlinear(c)
        v = e * v + nv * f1 + 2 * (na + nb) * f2 + nc * f3
        if step % save_every == 0:
            out.append(np.real(np.fft.ifft(v)))
    return np.array(out)


def _advection(k, dealias: bool):
    cut = np.abs(k) > (2 / 3) * np.abs(k).max()

    def nonlinear(v):
        u = np.real(np.fft.ifft(v))
        w = np.fft.fft(u * u)
        if dealias:
            w[cut] = 0
        return -0.5j * k * w

    return nonlinear


def burgers(n: int = 256, n_t: int = 101, t_end: float = 10.0, dt: float = 1e-3):
    """u_t = −u u_x + 0.1 u_xx on [−8, 8), periodic."""
    x = np.linspace(-8.0, 8.0, n, endpoint=False)
    k = 2 * np.pi * np.fft.fftfreq(n, d=16.0 / n)
    save = int(round(t_end / (n_t - 1) / dt))
    u = etdrk4(
        -0.1 * k**2,
        _advection(k, True),
        np.exp(-((x + 2) ** 2)),
        dt,
        save * (n_t - 1),
        save,
    )
    return np.linspace(0.0, t_end, n_t), x, u


def kuramoto_sivashinsky(
    n: int = 512, n_t: int = 251, t_end: float = 100.0, dt: float = 0.025
):
    """u_t = −u u_x − u_xx − u_xxxx on [0, 32π), periodic."""
    length = 32 * np.pi
    x = length * np.arange(n) / n
    k = 2 * np.pi * np.fft.fftfreq(n, d=length / n)
    save = int(round(t_end / (n_t - 1) / dt))
    u0 = np.cos(x / 16) * (1 + np.sin(x / 16))
    u = etdrk4(k**2 - k**4, _advection(k, True), u0, dt, save * (n_t - 1), save)
    return np.linspace(0.0, t_end, n_t), x, u


def add_noise(values: np.ndarray, level: float, rng, axis=None) -> np.ndarray:
    """Gaussian noise with standard deviation `level` × RMS (per state along
    `axis`, or of the whole field)."""
    rms = np.sqrt(np.mean(values**2, axis=axis, keepdims=axis is not None))
    return values + level * rms * rng.standard_normal(values.shape)


# -- scoring -------------------------------------------------------------------------


def canonical(expr) -> dict[str, float]:
    """`{monomial: coefficient}` of an expression with derivatives evaluated
    and products expanded, so `−½ ∂ₓ(u²)` and `−u u_x` compare equal; states
    print without their arguments (`x*z`, `u*u_x`)."""
    expr = sp.expand(sp.sympify(expr).doit())
    names = {}
    for d in expr.atoms(sp.Derivative):
        f = d.expr.func.__name__
        names[d] = sp.Symbol(
            f + "_" + "".join(str(v) * int(c) for v, c in d.variable_count)
        )
    expr = expr.xreplace(names)
    expr = expr.xreplace(
        {
            f: sp.Symbol(f.func.__name__)
            for f in expr.atoms(sp.core.function.AppliedUndef)
        }
    )
    out = {}
    for term in sp.Add.make_args(sp.expand(expr)):
        c, rest = term.as_coeff_Mul()
        if c != 0:
            out[str(rest)] = out.get(str(rest), 0.0) + float(c)
    return out


def score(found: dict[str, float], truth: dict[str, float]) -> dict:
    exact = set(found) == set(truth)
    errors = {k: abs(found[k] - v) / abs(v) for k, v in truth.items() if k in found}
    return {
        "terms": found,
        "exact": exact,
        "missing": sorted(set(truth) - set(found)),
        "extra": sorted(set(found) - set(truth)),
        "max_relative_error": max(errors.values()) if errors else None,
    }


def pysindy_terms(model, rename) -> list[dict[str, float]]:
    """pysindy's coefficients by canonical monomial (`rename` maps pysindy's
    feature names to ours)."""
    names = [rename(n) for n in model.get_feature_names()]
    return [
        {n: float(c) for n, c in zip(names, row, strict=True) if c != 0}
        for row in model.coefficients()
    ]


def lorenz_name(name: str) -> str:
    if name == "1":
        return "1"
    return str(sp.sympify(name.replace("^", "**").replace(" ", "*")))


def pde_name(name: str) -> str:
    """pysindy's `uu_11` → `u*u_xx`."""
    if name == "1":
        return "1"
    factors = []
    rest = name
    if "u_" in rest:
        head, order = rest.split("u_")
        factors.append(f"u_{'x' * len(order)}")
        rest = head
    if rest:
        power = rest.count("u") if "^" not in rest else int(rest.split("^")[1])
        factors.append("u" if power == 1 else f"u**{power}")
    return str(sp.sympify("*".join(factors)))


# -- runs --------------------------------------------------------------------------


def run_symml(data, truth, **options) -> dict:
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", sm.SymmlWarning)
        found = sm.discover(data, **options)
    wall = time.perf_counter() - start
    equations = {}
    for key, expr in found.expressions.items():
        name = str(key.expr.func.__name__)
        equations[name] = score(canonical(expr), truth[name])
    return {
        "equations": equations,
        "all_exact": all(e["exact"] for e in equations.values()),
        "wall_time_seconds": wall,
        "warnings": [str(w.message) for w in caught],
        "details": found.details,
        "fronts": {str(k): f.to_dict() for k, f in found.fronts.items()},
        "_found": found,
    }


def run_pysindy(fit, names, truth, rename) -> dict:
    import pysindy as ps  # noqa: F401  (imported for its timing, below)

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = fit()
    wall = time.perf_counter() - start
    equations = {
        n: score(terms, truth[n])
        for n, terms in zip(names, pysindy_terms(model, rename), strict=True)
    }
    return {
        "equations": equations,
        "all_exact": all(e["exact"] for e in equations.values()),
        "wall_time_seconds": wall,
    }


def lorenz_runs(noises, seed, t_end) -> list[dict]:
    import pysindy as ps

    ts, clean = lorenz(t_end)
    truth = {
        "x": {"x": -SIGMA, "y": SIGMA},
        "y": {"x": RHO, "y": -1.0, "x*z": -1.0},
        "z": {"x*y": 1.0, "z": -BETA},
    }
    rows = []
    for i, noise in enumerate(noises):
        rng = np.random.default_rng([seed, i])
        values = add_noise(clean, noise, rng, axis=0)
        data = sm.Data.from_array(ts, values, ["x", "y", "z"])
        symml_row = run_symml(data, truth, library=sm.PolynomialLibrary(degree=3))

        def fit(values=values):
            model = ps.SINDy(feature_library=ps.PolynomialLibrary(degree=3))
            model.fit(values, t=ts, feature_names=["x", "y", "z"])
            return model

        rows.append(
            {
                "problem": "lorenz",
                "noise": noise,
                "samples": len(ts),
                "symml": symml_row,
                "pysindy": run_pysindy(fit, ["x", "y", "z"], truth, lorenz_name),
            }
        )
    return rows


def pde_run(name, solver, truth, seed, noise, **sizes) -> tuple[dict, dict]:
    import pysindy as ps

    t, x, clean = solver(**sizes)
    fine_t, _, fine = solver(**{**sizes, "dt": sizes.get("dt", 1e-3) / 2})
    convergence = float(np.max(np.abs(fine - clean)) / np.max(np.abs(clean)))
    rng = np.random.default_rng([seed, 100 + len(name)])
    values = add_noise(clean, noise, rng)
    xs = sp.Symbol("x")
    data = sm.Data(t, {"u": values})
    symml_row = run_symml(data, truth, grid={xs: x}, boundary="periodic")

    def fit():
        library = ps.PDELibrary(
            function_library=ps.PolynomialLibrary(degree=2, include_bias=False),
            derivative_order=4,
            spatial_grid=x,
            include_bias=True,
            periodic=True,
        )
        model = ps.SINDy(feature_library=library)
        model.fit(values.T[:, :, None], t=t[1] - t[0], feature_names=["u"])
        return model

    row = {
        "problem": name,
        "noise": noise,
        "grid": list(values.shape),
        "reference_self_convergence": convergence,
        "symml": symml_row,
        "pysindy": run_pysindy(fit, ["u"], truth, pde_name),
    }
    return row, {"t": t, "x": x, "u": values}


# -- output --------------------------------------------------------------------------


def plot(path: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(r, k, f) for r in rows for k, f in r["symml"]["_found"].fronts.items()]
    cols = 3
    n_rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(n_rows, cols, figsize=(4.2 * cols, 3.0 * n_rows))
    axes = np.atleast_1d(axes).ravel()
    for ax, (row, key, front) in zip(axes, panels, strict=False):
        errors = front.held_out_error or front.error
        ax.semilogy(front.n_terms, np.maximum(errors, 1e-12), "o-", ms=3)
        if front.chosen is not None:
            ax.semilogy(
                front.n_terms[front.chosen],
                max(errors[front.chosen], 1e-12),
                "o",
                ms=9,
                mfc="none",
                color="C3",
            )
        ax.set_title(
            f"{row['problem']} {100 * row['noise']:g} % noise: {key}", fontsize=8
        )
        ax.set_xlabel("number of terms", fontsize=8)
        ax.set_ylabel("held-out relative error", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def table(rows) -> str:
    lines = [
        f"{'problem':<10}{'noise':>7}  {'method':<8}{'exact':>7}{'max coef err':>14}"
        f"{'time [s]':>10}  equations not exact"
    ]
    for r in rows:
        for method in ("symml", "pysindy"):
            m = r[method]
            errors = [e["max_relative_error"] for e in m["equations"].values()]
            worst = max((e for e in errors if e is not None), default=float("nan"))
            wrong = [
                f"{n}: missing {e['missing']} extra {e['extra']}"
                for n, e in m["equations"].items()
                if not e["exact"]
            ]
            lines.append(
                f"{r['problem']:<10}{100 * r['noise']:>6g}%  {method:<8}"
                f"{str(m['all_exact']):>7}{worst:>14.2e}"
                f"{m['wall_time_seconds']:>10.2f}  " + "; ".join(wrong)
            )
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/discovery"))
    parser.add_argument("--quick", action="store_true", help="smaller data, for tests")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    noises = (0.0, 0.01) if args.quick else (0.0, 0.01, 0.05)
    rows = lorenz_runs(noises, args.seed, t_end=10.0)
    burgers_sizes = {"n": 128, "n_t": 51} if args.quick else {}
    ks_sizes = {"n": 256, "n_t": 126, "t_end": 50.0} if args.quick else {}
    rows.append(
        pde_run(
            "burgers",
            burgers,
            {"u": {"u*u_x": -1.0, "u_xx": 0.1}},
            args.seed,
            0.01,
            **burgers_sizes,
        )[0]
    )
    rows.append(
        pde_run(
            "ks",
            kuramoto_sivashinsky,
            {"u": {"u*u_x": -1.0, "u_xx": -1.0, "u_xxxx": -1.0}},
            args.seed,
            0.01,
            dt=0.025,
            **ks_sizes,
        )[0]
    )

    text = table(rows)
    if not args.no_plot:
        plot(args.out / "fronts.png", rows)
    for r in rows:
        r["symml"].pop("_found")
    summary = {
        "seed": args.seed,
        "quick": args.quick,
        "rows": rows,
        "table": text,
        "wall_time_seconds": time.perf_counter() - start,
    }
    atomic_write(
        args.out / "summary.json",
        lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2, default=str)),
    )
    print(text)
    print(f"wall time {summary['wall_time_seconds']:.1f} s; results in {args.out}/")
    return summary


if __name__ == "__main__":
    main()
