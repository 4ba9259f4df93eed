"""The Lotka–Volterra problem of `examples/lotka_volterra.py`, for the
benchmarks that repeat it over many seeds and noise levels.

x' = αx − βxy, y' = γxy − δy with α, β, γ, δ = 1.3, 0.9, 0.8, 1.8; t ∈ [0, 5]
saved every 0.25; u₀ drawn in [0, 5]² from the seed; the model keeps αx and
−δy and a tanh network U(x, y) with two 32-unit layers learns the rest. The
data are drawn with the same generator calls, in the same order, as the
example's, so a seed gives the example's initial state.

Run on its own, it records one seed's data set and checks it:

    python benchmarks/_lotka_volterra.py [--quick] [--seed N] [--noise X] [--out DIR]

`DIR/summary.json` holds the initial state, the times and the noisy data,
`reference_disagreement` (the largest relative difference between the truth
and a second solve by another method, Radau: how exact the benchmarks'
truth is) and `realised_noise` (the standard deviation of each state's noise
over its mean, against the requested `noise`).
"""

import argparse
import json
from pathlib import Path

import numpy as np
import sympy as sp
from scipy.integrate import solve_ivp

import symml as sm

ALPHA, BETA, GAMMA, DELTA = 1.3, 0.9, 0.8, 1.8
T_DATA, DT = 5.0, 0.25


def make_data(seed: int, noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(u0, ts, noisy)`: the truth by an independent tight solve, plus
    Gaussian noise of standard deviation `noise` × each state's mean."""
    rng = np.random.default_rng(seed)
    u0 = rng.uniform(0.0, 5.0, size=2)
    ts = np.arange(0.0, T_DATA + DT / 2, DT)
    clean = truth(u0, ts)
    noisy = clean + noise * clean.mean(axis=0) * rng.standard_normal(clean.shape)
    return u0, ts, noisy


def truth(u0, ts, method: str = "DOP853") -> np.ndarray:
    """The exact trajectory at `ts` (a tight scipy solve by `method`)."""

    def rhs(t, u):
        x, y = u
        return [ALPHA * x - BETA * x * y, GAMMA * x * y - DELTA * y]

    return solve_ivp(
        rhs, (0.0, ts[-1]), u0, t_eval=ts, method=method, rtol=1e-12, atol=1e-12
    ).y.T


def declare():
    """`(model, x, y, U)`: the universal differential equation."""
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
    model = sm.Model(
        [sp.Eq(x.diff(t), alpha * x + U[0]), sp.Eq(y.diff(t), -delta * y + U[1])],
        parameters={alpha: ALPHA, delta: DELTA},
    )
    return model, x, y, U


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the same (it is quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=0.005, help="the example's")
    parser.add_argument("--out", type=Path, default=Path("results/lotka_volterra_data"))
    args = parser.parse_args(argv)
    u0, ts, noisy = make_data(args.seed, args.noise)
    clean = truth(u0, ts)
    second = truth(u0, ts, method="Radau")
    summary = {
        "seed": args.seed,
        "quick": args.quick,
        "noise": args.noise,
        "initial_state": u0.tolist(),
        "t": ts.tolist(),
        "noisy": noisy.tolist(),
        "reference_disagreement": float(
            np.max(np.abs(second - clean) / np.abs(clean).max(axis=0))
        ),
        "realised_noise": ((noisy - clean).std(axis=0) / clean.mean(axis=0)).tolist(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    sm.export.write_text(args.out / "summary.json", json.dumps(summary, indent=2))
    print(
        f"seed {args.seed}: u0 = {u0.round(4).tolist()}, {ts.size} times; truth "
        f"against Radau {summary['reference_disagreement']:.1e}; realised noise "
        f"{np.round(summary['realised_noise'], 4).tolist()} (requested {args.noise})"
    )
    return summary


if __name__ == "__main__":
    main()
