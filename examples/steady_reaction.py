"""Steady reaction–diffusion: learn R(u) and D from equilibria, recover u − u³.

The truth is the boundary value problem

    0 = D u_xx + R(u) + A_k sin(πx) + B_k sin(2πx),   x ∈ [0, 1],
    u(0) = 0,  u(1) = g_k,

with D = 0.1 and R(u) = u − u³, in 8 experiments that differ in the known
inputs (A_k, B_k, g_k): a source and a boundary value. Each experiment is
observed at its (stable) steady state on the 64 interior points of the grid,
with Gaussian noise of 1 % of the data's largest |u|. The model knows the
diffusion operator and the sources, but not D (it starts at 0.05) nor R (a
network of u).

Every step of the fit solves the 8 steady states by Newton's method (Jacobian
from the stencils' sparsity pattern, dense LU at 64 unknowns) and takes the
gradient by the implicit function theorem, not through the iterations. Sparse
regression on the learned R then picks its terms, and the coefficients and D
are refitted through the same steady solves. The truth is computed
independently of the fitted discretisation: sixth-order stencils on a 4× finer
grid, relaxed to equilibrium by time stepping and polished by Newton.

    python examples/steady_reaction.py            # full run (seeded, ~1-2 min)
    python examples/steady_reaction.py --quick    # a short smoke run for tests
"""

import argparse
import json
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402

import symml as sm  # noqa: E402
from symml.export import atomic_write  # noqa: E402

D_TRUE, D_GUESS = 0.1, 0.05
GRID = 64
FINE = 4 * (GRID + 1) - 1  # its interior points include the fitted grid's
NOISE = 0.01  # of the clean data's largest |u|
# Known inputs per experiment: source amplitudes A, B and the boundary value g.
# |A| >= 0.5 keeps every steady state away from the fold near D π² ≈ 1, where
# the linearisation D ∂xx + R'(u) is nearly singular.
A_K = np.array([-2.0, -1.5, -1.0, -0.5, 0.5, 1.0, 1.5, 2.0])
B_K = np.array([0.8, -0.6, 1.0, -1.0, 0.5, -0.8, 0.6, -0.4])
G_K = np.array([-0.5, 0.3, -0.2, 0.5, -0.4, 0.2, -0.3, 0.4])

t, x = sp.symbols("t x")
(u,) = sm.states("u", t, x)
D, A, B, G = sp.symbols("D A B g")


def declare(reaction, d, extra=None) -> sm.Model:
    """The model with reaction term `reaction` and diffusion coefficient `d`:
    `sm.trainable(...)` to learn it, a number to fix it, or a sympy number to
    write it into the equation. A, B and g are the experiments' inputs."""
    parameters = {A: 0.0, B: 0.0, G: 0.0}
    if isinstance(d, sp.Number):
        diffusion = d
    else:
        diffusion, parameters[D] = D, d
    parameters.update(extra or {})
    return sm.Model(
        [
            sp.Eq(
                u.diff(t),
                diffusion * u.diff(x, 2)
                + reaction
                + A * sp.sin(sp.pi * x)
                + B * sp.sin(2 * sp.pi * x),
            )
        ],
        parameters=parameters,
        domain={x: (0, 1)},
        boundary="dirichlet",
        conditions=[sp.Eq(u.subs(x, 0), 0), sp.Eq(u.subs(x, 1), G)],
    )


def true_states() -> np.ndarray:
    """The clean steady states on the fitted grid, shape `(8, GRID)`."""
    # The inputs are trainable here only so that they are read from `params`:
    # one discretisation (and one compilation) serves every experiment.
    inputs = {A: sm.trainable(0.0), B: sm.trainable(0.0), G: sm.trainable(0.0)}
    fine = sm.discretize(declare(u - u**3, D_TRUE, inputs), {x: FINE}, order=6)
    params = sm.init_params(fine.model, key=jax.random.PRNGKey(0))
    solver = sm.IntegrateToSteady(polish=sm.Newton(rtol=1e-12, atol=1e-10))
    out = []
    for a, b, g in zip(A_K, B_K, G_K, strict=True):
        params.values.update(A=jnp.asarray(a), B=jnp.asarray(b), g=jnp.asarray(g))
        sol = sm.steady_state(fine, jnp.zeros(fine.n), params, solver=solver)
        out.append(np.asarray(sol.u)[3::4])
    return np.stack(out)


def make_data(seed: int):
    rng = np.random.default_rng(seed)
    clean = true_states()
    noisy = clean + NOISE * np.abs(clean).max() * rng.standard_normal(clean.shape)
    data = sm.SteadyData({u: noisy}, inputs={A: A_K, B: B_K, G: G_K})
    return clean, noisy, data


def save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def plot_states(path, xs, noisy, fitted, recovered) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(13, 5.5), sharex=True, sharey=True)
    for k, ax in enumerate(axes.ravel()):
        ax.plot(xs, noisy[k], ".", color="0.55", ms=3, label="data")
        ax.plot(xs, fitted[k], color="C0", label="network fit")
        ax.plot(xs, recovered[k], "--", color="C1", label="recovered, refitted")
        ax.set_title(f"A={A_K[k]:g}, B={B_K[k]:g}, g={G_K[k]:g}", fontsize=8)
        ax.axhline(0.0, color="k", lw=0.4)
    for ax in axes[1]:
        ax.set_xlabel("x")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def plot_reaction(path, grid, learned, recovered, data_range) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_err) = plt.subplots(1, 2, figsize=(10, 3.8))
    truth = grid - grid**3
    ax.axvspan(*data_range, color="0.92", label="range of the data")
    ax.plot(grid, truth, color="0.5", lw=3, label="truth u − u³")
    ax.plot(grid, learned, color="C0", label="network R(u)")
    ax.plot(grid, recovered, "--", color="C1", label="recovered, refitted")
    ax.set_xlabel("u")
    ax.set_ylabel("R(u)")
    ax.legend(fontsize=8)
    ax_err.axvspan(*data_range, color="0.92")
    ax_err.plot(grid, learned - truth, color="C0", label="network − truth")
    ax_err.plot(grid, recovered - truth, "--", color="C1", label="recovered − truth")
    ax_err.axhline(0.0, color="k", lw=0.5)
    ax_err.set_xlabel("u")
    ax_err.set_ylabel("error")
    ax_err.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/steady_reaction"))
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start, start_cpu = time.perf_counter(), time.process_time()
    steps, lbfgs_steps, refit_steps = (10, 5, 3) if args.quick else (300, 300, 100)

    # -- declare: R is a network of u, D is learned --------------------------------
    R = sm.Unknown("R", [u], hidden=(16, 16), input_range=((-1.5,), (1.5,)))
    ude = declare(R[0], sm.trainable(D_GUESS))
    ode = sm.discretize(ude, {x: GRID})

    # -- data and fit --------------------------------------------------------------
    clean, noisy, data = make_data(args.seed)
    result = sm.fit(ode, data, seed=args.seed, steps=steps, lbfgs_steps=lbfgs_steps)
    d_learned = result.parameter_values()[D]

    # -- discover, then refit the coefficients and D through the steady solves ----
    found = sm.discover(result, library=sm.PolynomialLibrary(degree=3))
    refit = sm.fit(
        sm.discretize(found.trainable_model(refit_parameters=True), {x: GRID}),
        data,
        seed=args.seed,
        steps=0,
        lbfgs_steps=refit_steps,
    )
    refit_values = {str(c): v for c, v in refit.parameter_values().items()}
    d_refit = refit_values["D"]
    terms, reaction = {}, sp.Integer(0)
    for c, (_, term) in found.coefficient_terms().items():
        terms[str(term)] = refit_values[str(c)]
        reaction += sp.Float(refit_values[str(c)]) * term
    final = declare(reaction, sp.Float(d_refit))

    # -- evaluate ----------------------------------------------------------------------
    true_terms = {str(u): 1.0, str(u**3): -1.0}
    coefficient_errors = {
        k: abs(terms[k] - v) / abs(v) for k, v in true_terms.items() if k in terms
    }
    data_range = (float(clean.min()), float(clean.max()))
    grid = np.linspace(-1.6, 1.6, 321)
    network = result.params.networks[R.name]
    learned = np.asarray(jax.vmap(network)(jnp.asarray(grid)[:, None]))[:, 0]
    z = sp.Symbol("z")
    recovered = np.broadcast_to(
        sp.lambdify(z, reaction.subs(u, z), "numpy")(grid), grid.shape
    )
    inside = (grid >= data_range[0]) & (grid <= data_range[1])
    fitted = result.predict()
    simulated = refit.predict()
    rms = {
        "network_fit": float(np.sqrt(np.mean((fitted - clean) ** 2))),
        "recovered_model": float(np.sqrt(np.mean((simulated - clean) ** 2))),
        "noisy_data": float(np.sqrt(np.mean((noisy - clean) ** 2))),
    }
    wall = time.perf_counter() - start
    cpu = time.process_time() - start_cpu
    summary = {
        "seed": args.seed,
        "quick": args.quick,
        "setup": {
            "D": D_TRUE,
            "R": "u - u**3",
            "D_initial_guess": D_GUESS,
            "grid": GRID,
            "truth_grid": FINE,
            "truth_stencil_order": 6,
            "experiments": {"A": A_K.tolist(), "B": B_K.tolist(), "g": G_K.tolist()},
            "noise_std": NOISE * float(np.abs(clean).max()),
            "noise": f"{NOISE:.0%} of the clean data's largest |u|",
        },
        "D": d_refit,
        "D_relative_error": abs(d_refit - D_TRUE) / D_TRUE,
        "D_network_fit": d_learned,
        "expression": {R.name: str(reaction)},
        "terms": terms,
        "discovered_terms": {str(k): v for k, v in found.terms[R[0]].items()},
        "true_terms": true_terms,
        "terms_exact": set(terms) == set(true_terms),
        "coefficient_relative_errors": coefficient_errors,
        "data_u_range": list(data_range),
        "reaction_max_error_in_data_range": {
            "network": float(np.max(np.abs(learned - (grid - grid**3))[inside])),
            "recovered": float(np.max(np.abs(recovered - (grid - grid**3))[inside])),
        },
        "rms_error_vs_truth": rms,
        "losses": {
            "network_fit": {
                k: float(v[-1]) for k, v in result.history.items() if len(v)
            },
            "refit": {k: float(v[-1]) for k, v in refit.history.items() if len(v)},
        },
        "steps": {
            "network_fit": {k: len(v) for k, v in result.history.items()},
            "refit": {k: len(v) for k, v in refit.history.items()},
        },
        "fit_seconds": {"network_fit": result.wall_time, "refit": refit.wall_time},
        "wall_seconds": wall,
        "cpu_seconds": cpu,  # of this process: the machine is shared
        "equations_latex": sm.to_latex(final),
    }
    atomic_write(
        args.out / "summary.json",
        lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2)),
    )
    sm.write_latex(args.out / "equations.tex", final)
    if not args.no_plot:
        xs = ode.grid[x]
        plot_states(args.out / "states.png", xs, noisy, fitted, simulated)
        plot_reaction(args.out / "reaction.png", grid, learned, recovered, data_range)

    print("Recovered equation:")
    print(f"  {final.equations[0].lhs} = {final.equations[0].rhs}")
    print(
        f"terms {terms} (exact: {summary['terms_exact']}), relative errors "
        f"{coefficient_errors}"
    )
    print(f"D = {d_refit:.5f} (relative error {summary['D_relative_error']:.2%})")
    print(f"wall time {wall:.1f} s (CPU {cpu:.1f} s); results in {args.out}/")
    return summary


if __name__ == "__main__":
    main()
