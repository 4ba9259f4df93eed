"""A physics-informed network for y' = −y, y(0) = 1 on t ∈ [0, 2].

The field y(t) is a tanh network trained on the residual of its ODE and its
initial condition; the maximum error against exp(−t) is reported. The same
fit with relu shows why the activation matters: a relu network is piecewise
linear, so its derivative is piecewise constant and cannot follow −y closely
(and with a second derivative in the model it would be zero everywhere, which
symml warns about when lowering).

    python examples/pinn_decay.py [--quick] [--scheme taylor] [--out DIR]
"""

import argparse
import json
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402

import symml as sm  # noqa: E402
from symml.export import atomic_write  # noqa: E402


def solve(activation: str, scheme: str, steps: int, lbfgs_steps: int, seed: int):
    t = sp.Symbol("t")
    y = sm.Field("y", [t], hidden=[32, 32], activation=activation)
    model = sm.Model(
        [sp.Eq(y.diff(t), -y)],
        conditions=[sp.Eq(y.subs(t, 0), 1)],
        domain={t: (0, 2)},
    )
    start = time.perf_counter()
    result = sm.fit(
        model,
        method=sm.PhysicsInformed(derivatives=scheme, points=128),
        seed=seed,
        steps=steps,
        learning_rate=3e-3,
        lbfgs_steps=lbfgs_steps,
    )
    wall = time.perf_counter() - start
    ts = np.linspace(0.0, 2.0, 401)
    error = float(np.max(np.abs(result.predict(t=ts)["y"] - np.exp(-ts))))
    summary = {
        "max_error": error,
        "wall_time_seconds": wall,
        "final_loss": result.final_loss,
    }
    return summary, result


def plot(path: Path, result) -> None:
    """The trained field against exp(-t)."""
    fig = sm.plot.field(result, reference=lambda t: np.exp(-t))
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--scheme", default="taylor", choices=["taylor", "forward", "reverse", "fd"]
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/pinn_decay"))
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    steps, lbfgs_steps = (300, 50) if args.quick else (2000, 300)
    summary = {"scheme": args.scheme, "quick": args.quick, "seed": args.seed}
    for activation in ("tanh", "relu"):
        summary[activation], result = solve(
            activation, args.scheme, steps, lbfgs_steps, args.seed
        )
        if not args.no_plot:
            plot(args.out / f"{activation}.png", result)
        print(
            f"{activation:5s}: max |y - exp(-t)| = "
            f"{summary[activation]['max_error']:.2e} "
            f"({summary[activation]['wall_time_seconds']:.1f} s)"
        )
    tmp = args.out / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(args.out / "summary.json")
    return summary


if __name__ == "__main__":
    main()
