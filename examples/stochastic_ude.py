"""Stochastic Lotka–Volterra missing physics: fit a universal SDE, recover the
missing drift terms.

The truth is the Itô SDE

    dx = (αx − βxy) dt + σ x dW₁,    dy = (γxy − δy) dt + σ y dW₂,

α, β, γ, δ = 1.3, 0.9, 0.8, 1.8 and σ = 0.1, observed every 0.01 on
t ∈ [0, 5] along many paths from initial states drawn in [0.5, 4]². The
model keeps αx, −δy and the (known) diffusion and lets a network U learn the
rest of the drift, by the Euler likelihood of the observed increments; sparse
regression on U recovers −0.9·xy and +0.8·xy. The recovered SDE, simulated
from a new initial state, has the truth's mean and spread over time.

    python examples/stochastic_ude.py            # full run (seeded, ~1-3 min)
    python examples/stochastic_ude.py --quick    # a short smoke run for tests
"""

import argparse
import json
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402

import symml as sm  # noqa: E402
from symml.export import atomic_write  # noqa: E402

ALPHA, BETA, GAMMA, DELTA, SIGMA = 1.3, 0.9, 0.8, 1.8, 0.1
T_DATA, DT_OBS, DT_SIM = 5.0, 0.01, 1e-3


def declare():
    t = sp.Symbol("t")
    x, y = sm.states("x y", t)
    alpha, beta, gamma, delta, sigma = sp.symbols("alpha beta gamma delta sigma")
    truth = sm.SDE(
        [alpha * x - beta * x * y, gamma * x * y - delta * y],
        [sigma * x, sigma * y],
        states=[x, y],
        parameters={alpha: ALPHA, beta: BETA, gamma: GAMMA, delta: DELTA, sigma: SIGMA},
    )
    U = sm.Unknown(
        "U",
        inputs=[x, y],
        outputs=2,
        hidden=[32, 32],
        input_range=((0, 0), (6, 6)),
    )
    ude = sm.SDE(
        [alpha * x + U[0], -delta * y + U[1]],
        [sigma * x, sigma * y],
        states=[x, y],
        parameters={alpha: ALPHA, delta: DELTA, sigma: SIGMA},
    )
    return t, x, y, U, truth, ude


def moments(paths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return paths.mean(axis=0), paths.std(axis=0)


def plot(path, ts, data, dense, truth_paths, recovered_paths):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for p in data[:5]:
        axes[0].plot(p[:, 0], p[:, 1], lw=0.5)
    axes[0].set_xlabel("x")
    axes[0].set_ylabel("y")
    axes[0].set_title("some observed paths")
    for i, (name, color) in enumerate([("x", "C0"), ("y", "C1")]):
        for paths_, style, label in (
            (truth_paths, "-", "truth"),
            (recovered_paths, "--", "recovered SDE"),
        ):
            mean, std = moments(paths_[:, :, i])
            axes[1].plot(dense, mean, style, color=color, label=f"{name}: {label}")
            axes[1].fill_between(dense, mean - std, mean + std, color=color, alpha=0.1)
    axes[1].set_xlabel("t")
    axes[1].set_title("mean ± sd over paths, from a new initial state")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/stochastic_ude"))
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    n_paths, steps, lbfgs_steps = (20, 300, 20) if args.quick else (100, 2000, 300)

    t, x, y, U, truth, ude = declare()

    # -- data: many paths of the true SDE -------------------------------------------
    rng = np.random.default_rng(args.seed)
    u0 = rng.uniform(0.5, 4.0, size=(n_paths, 2))
    ts = np.arange(0.0, T_DATA + DT_OBS / 2, DT_OBS)
    paths = np.asarray(
        sm.simulate(
            truth,
            ts,
            u0,
            key=jr.PRNGKey(args.seed),
            paths=n_paths,
            solver="milstein",
            dt=DT_SIM,
            brownian="unsafe",
        )
    )
    data = [sm.Data(ts, {x: p[:, 0], y: p[:, 1]}) for p in paths]

    # -- fit and discover -------------------------------------------------------------
    # `fit` takes an SDE with observed paths by the Euler likelihood of the
    # increments (`symml.EulerLikelihood`).
    result = sm.fit(ude, data, steps=steps, lbfgs_steps=lbfgs_steps, seed=args.seed)
    found = sm.discover(result, library=sm.PolynomialLibrary(degree=3))
    true_terms = {U[0]: {x * y: -BETA}, U[1]: {x * y: GAMMA}}
    outputs = {}
    for output, truth_terms in true_terms.items():
        terms = found.terms[output]
        outputs[str(output)] = {
            "expression": str(found.expressions[output]),
            "terms": {str(k): v for k, v in terms.items()},
            "true_terms": {str(k): v for k, v in truth_terms.items()},
            "terms_exact": set(terms) == set(truth_terms),
            "coefficient_relative_errors": {
                str(k): abs(terms[k] - v) / abs(v)
                for k, v in truth_terms.items()
                if k in terms
            },
        }

    # -- the recovered SDE against the truth from a new initial state ----------------
    recovered = ude.replace(found.expressions)
    new_u0 = rng.uniform(0.5, 4.0, size=2)
    dense = np.linspace(0.0, T_DATA, 101)
    n_check = 200 if args.quick else 2000
    key = jr.PRNGKey(args.seed + 1)
    truth_paths = np.asarray(
        sm.simulate(
            truth, dense, new_u0, key=key, paths=n_check, dt=DT_SIM, brownian="unsafe"
        )
    )
    recovered_paths = np.asarray(
        sm.simulate(
            recovered,
            dense,
            new_u0,
            key=key,
            paths=n_check,
            dt=DT_SIM,
            brownian="unsafe",
        )
    )
    (m_t, s_t), (m_r, s_r) = moments(truth_paths), moments(recovered_paths)
    wall = time.perf_counter() - start
    summary = {
        "seed": args.seed,
        "quick": args.quick,
        "paths": n_paths,
        "observation_step": DT_OBS,
        "unknowns": outputs,
        "all_terms_exact": all(o["terms_exact"] for o in outputs.values()),
        "max_coefficient_relative_error": max(
            (
                e
                for o in outputs.values()
                for e in o["coefficient_relative_errors"].values()
            ),
            default=None,
        ),
        "final_loss": result.final_loss,
        "fit_seconds": result.wall_time,
        "new_initial_state": new_u0.tolist(),
        "moments_max_abs_difference": {
            "mean": float(np.max(np.abs(m_t - m_r))),
            "sd": float(np.max(np.abs(s_t - s_r))),
        },
        "recovered_drift": [str(e) for e in recovered.drift],
        "wall_seconds": wall,
    }
    atomic_write(
        args.out / "summary.json",
        lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2)),
    )
    if not args.no_plot:
        plot(args.out / "moments.png", ts, paths, dense, truth_paths, recovered_paths)
    for name, o in outputs.items():
        print(
            f"{name}: {o['terms']} (exact: {o['terms_exact']}), relative errors "
            f"{o['coefficient_relative_errors']}"
        )
    print(f"recovered drift: {summary['recovered_drift']}")
    print(f"wall time {wall:.1f} s; results in {args.out}/")
    return summary


if __name__ == "__main__":
    main()
