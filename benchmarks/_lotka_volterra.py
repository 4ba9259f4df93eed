"""The Lotka–Volterra problem of `examples/lotka_volterra.py`, for the
benchmarks that repeat it over many seeds and noise levels.

x' = αx − βxy, y' = γxy − δy with α, β, γ, δ = 1.3, 0.9, 0.8, 1.8; t ∈ [0, 5]
saved every 0.25; u₀ drawn in [0, 5]² from the seed; the model keeps αx and
−δy and a tanh network U(x, y) with two 32-unit layers learns the rest. The
data are drawn with the same generator calls, in the same order, as the
example's, so a seed gives the example's initial state.
"""

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

    def rhs(t, u):
        x, y = u
        return [ALPHA * x - BETA * x * y, GAMMA * x * y - DELTA * y]

    clean = solve_ivp(
        rhs, (0.0, ts[-1]), u0, t_eval=ts, method="DOP853", rtol=1e-12, atol=1e-12
    ).y.T
    noisy = clean + noise * clean.mean(axis=0) * rng.standard_normal(clean.shape)
    return u0, ts, noisy


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
