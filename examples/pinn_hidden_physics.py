"""Hidden physics from scattered data: a physics-informed network learns a
diffusion coefficient and an unknown reaction term, and discovery recovers it.

    u_t = D u_xx + R(u)   on x ∈ [0, 1] (periodic), t ∈ [0, 1],

with the truth D = 0.01 and R(u) = u − u³. The truth is simulated here by a
Fourier pseudo-spectral method with an integrating factor (the diffusion
exactly, the reaction by classical RK4), float64, checked against a second
resolution (half the modes, twice the step). 500 observations of u at random
points of the domain get Gaussian noise of 1 % of u's RMS. The model keeps
`D u_xx` with `D` trainable (starting at 0.05, five times the truth) and
leaves `R` a network of u; the fit trains u(t, x), R and D together on the
observations and the PDE residual. `symml.discover` then regresses R on
polynomials in u, and the discovered model is refitted once more with its
coefficients and D trainable (`Discovery.trainable_model(refit_parameters=
True)`): a polynomial in place of the network is a better-posed problem, and
the refit's values are the final answer (`D`, `expression`), next to the
network fit's (`D_network_fit`, `discovered_expression`).

    python examples/pinn_hidden_physics.py                # full run (~5 min)
    python examples/pinn_hidden_physics.py --quick        # a smoke run for tests
    python examples/pinn_hidden_physics.py --seed 1 --out results/hidden

Writes `summary.json` (`D`, `expression` per unknown, `wall_seconds`, and the
errors) to `--out`.
"""

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402

import symml as sm  # noqa: E402
from symml.export import atomic_write  # noqa: E402

D_TRUE = 0.01


def initial(x: np.ndarray) -> np.ndarray:
    return 1.2 * np.sin(2 * np.pi * x) + 0.3 * np.cos(4 * np.pi * x)


def simulate(
    times: np.ndarray, *, modes: int = 256, dt: float = 1e-3
) -> tuple[np.ndarray, np.ndarray]:
    """u_t = D u_xx + u − u³ on the periodic [0, 1): integrating-factor RK4 in
    Fourier space (the diffusion integrated exactly), float64.

    **Returns:** `(x, u)` with `u` of shape `(len(times), modes)`.
    """
    x = np.arange(modes) / modes
    k = 2 * np.pi * np.fft.rfftfreq(modes, d=1.0 / modes)
    lin = -D_TRUE * k**2
    half, full = np.exp(lin * dt / 2), np.exp(lin * dt)

    def reaction(v):
        w = np.fft.irfft(v, modes)
        return np.fft.rfft(w - w**3)

    steps = np.rint(np.asarray(times) / dt).astype(int)
    v = np.fft.rfft(initial(x))
    out = np.empty((len(times), modes))
    j = 0
    for s in range(steps[-1] + 1):
        while j < len(steps) and steps[j] == s:
            out[j] = np.fft.irfft(v, modes)
            j += 1
        if s == steps[-1]:
            break
        a = dt * reaction(v)
        b = dt * reaction(half * (v + a / 2))
        c = dt * reaction(half * v + b / 2)
        d = dt * reaction(full * v + half * c)
        v = full * v + (full * a + 2 * half * (b + c) + d) / 6
    return x, out


def truth_at(ts: np.ndarray, xs: np.ndarray, grid_t, grid_x, u) -> np.ndarray:
    """The simulated u at scattered points: spectral interpolation in x (exact
    for the resolved modes), cubic in t between saved times."""
    from scipy.interpolate import CubicSpline

    coeffs = np.fft.rfft(u, axis=1) / u.shape[1]
    k = np.fft.rfftfreq(u.shape[1], d=1.0 / u.shape[1])
    weight = np.where((k == 0) | (k == u.shape[1] / 2), 1.0, 2.0)
    spline = CubicSpline(grid_t, coeffs, axis=0)
    c = spline(ts)  # (n, modes/2 + 1)
    phase = np.exp(2j * np.pi * xs[:, None] * k[None, :])
    return np.real(np.sum(weight * c * phase, axis=1))


def build_model(hidden: Sequence[int]):
    t, x = sp.symbols("t x")
    D = sp.Symbol("D")
    u = sm.Field("u", [t, x], hidden=list(hidden), activation="tanh")
    R = sm.Unknown("R", [u], hidden=[16, 16], input_range=((-1.6,), (1.6,)))
    model = sm.Model(
        [sp.Eq(u.diff(t), D * u.diff(x, 2) + R[0])],
        parameters={D: sm.trainable(0.05)},
        domain={t: (0, 1), x: (0, 1)},
    )
    return model, (t, x, u, D, R)


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/pinn_hidden_physics"))
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if args.quick:
        settings = {
            "hidden": [32, 32, 32],
            "points": 1024,
            "steps": 1500,
            "lbfgs": 1000,
        }
        refit = {"steps": 200, "lbfgs": 200}
    else:
        settings = {
            "hidden": [32, 32, 32],
            "points": 2048,
            "steps": 3000,
            "lbfgs": 3000,
        }
        refit = {"steps": 1000, "lbfgs": 1000}

    # The truth, at two resolutions.
    grid_t = np.linspace(0.0, 1.0, 101)
    grid_x, u = simulate(grid_t, modes=256, dt=1e-3)
    _, coarse = simulate(grid_t, modes=128, dt=2e-3)
    resolution_error = float(np.max(np.abs(u[:, ::2] - coarse)))

    rng = np.random.default_rng(args.seed)
    n_obs = 500
    ts, xs = rng.uniform(0, 1, n_obs), rng.uniform(0, 1, n_obs)
    clean = truth_at(ts, xs, grid_t, grid_x, u)
    sigma = 0.01 * float(np.sqrt(np.mean(u**2)))
    observed = clean + sigma * rng.standard_normal(n_obs)

    model, (t, x, field, D, R) = build_model(settings["hidden"])
    data = sm.Data.points({t: ts, x: xs}, {field: observed}, sigma=sigma)
    result = sm.fit(
        model,
        data,
        method=sm.PhysicsInformed(points=settings["points"]),
        seed=args.seed,
        steps=settings["steps"],
        learning_rate=3e-3,
        lbfgs_steps=settings["lbfgs"],
        progress=args.progress or None,
    )
    d_learned = float(result.parameter_values()[D])
    found = sm.discover(result)
    key = R[0]
    terms = {str(k): float(v) for k, v in found.terms[key].items()}

    # Refine the discovered coefficients and D on the same data.
    refined = sm.fit(
        found.trainable_model(refit_parameters=True),
        data,
        method=sm.PhysicsInformed(points=settings["points"]),
        seed=args.seed,
        steps=refit["steps"],
        learning_rate=3e-3,
        lbfgs_steps=refit["lbfgs"],
    )
    refined_values = refined.parameter_values()
    d_final = float(refined_values[D])
    coefficients = {
        str(found.coefficient_terms()[s][1]): float(v)
        for s, v in refined_values.items()
        if s != D
    }
    final_expression = sum(
        (sp.Float(v) * found.coefficient_terms()[s][1])
        for s, v in refined_values.items()
        if s != D
    )
    wall = time.perf_counter() - start

    test_t, test_x = rng.uniform(0, 1, 2000), rng.uniform(0, 1, 2000)
    pred = result.predict(t=test_t, x=test_x)["u"]
    exact = truth_at(test_t, test_x, grid_t, grid_x, u)
    truth_terms = {str(field): 1.0, str(field**3): -1.0}
    coefficient_errors = {
        name: abs(terms.get(name, 0.0) - c) / abs(c) for name, c in truth_terms.items()
    }
    refined_errors = {
        name: abs(coefficients.get(name, 0.0) - c) / abs(c)
        for name, c in truth_terms.items()
    }
    summary = {
        "D": d_final,
        "D_relative_error": abs(d_final - D_TRUE) / D_TRUE,
        "expression": {str(key): str(final_expression)},
        "coefficient_relative_errors": refined_errors,
        "exact_terms": sorted(terms) == sorted(truth_terms),
        "D_network_fit": d_learned,
        "D_network_fit_relative_error": abs(d_learned - D_TRUE) / D_TRUE,
        "discovered_expression": {str(k): str(v) for k, v in found.expressions.items()},
        "discovered_terms": terms,
        "discovered_coefficient_relative_errors": coefficient_errors,
        "refined_coefficients": coefficients,
        "field_relative_l2_error": float(
            np.linalg.norm(pred - exact) / np.linalg.norm(exact)
        ),
        "truth_resolution_error": resolution_error,
        "observations": n_obs,
        "noise_sigma": sigma,
        "fit_seconds": result.wall_time,
        "refit_seconds": refined.wall_time,
        "wall_seconds": wall,
        "load_average": list(os.getloadavg()),
        "seed": args.seed,
        "quick": args.quick,
        "settings": settings,
    }
    print(
        f"D = {d_final:.5f} (error {summary['D_relative_error']:.2%}; network "
        f"fit {d_learned:.5f}); R = {final_expression} (discovered "
        f"{found.expressions[key]}); {wall:.0f} s"
    )
    atomic_write(
        args.out / "summary.json",
        lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2)),
    )
    return summary


if __name__ == "__main__":
    main()
