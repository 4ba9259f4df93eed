"""Overhead of symml's compiled UDE against the same model written by hand.

Times one loss-and-gradient of the Lotka–Volterra UDE (x' = αx + U₀(x, y),
y' = −δy + U₁(x, y), U a 2→32→32→2 tanh network, Tsit5 solve over 21 save
points) as symml builds it and as a user would write it directly with equinox
and diffrax: same weights, same data, same solver settings. The two are timed
alternately, after compilation, and the medians compared.

    python benchmarks/ude_overhead.py [--quick] [--repeats N] [--seed N] [--out DIR]

`--out DIR` writes `DIR/summary.json` with `ratio_symml_vs_hand` and the
medians.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import diffrax as dfx  # noqa: E402
import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402

import symml as sm  # noqa: E402
from symml.export import atomic_write  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from lotka_volterra import ALPHA, DELTA, make_data  # noqa: E402


class HandMLP(eqx.Module):
    layers: list

    def __call__(self, x):
        for w, b in self.layers[:-1]:
            x = jnp.tanh(w @ x + b)
        w, b = self.layers[-1]
        return w @ x + b


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/ude_overhead"))
    args = parser.parse_args(argv)
    repeats = args.repeats or (20 if args.quick else 400)

    t = sp.Symbol("t")
    x, y = sm.states("x y", t)
    alpha, delta = sp.symbols("alpha delta")
    U = sm.Unknown("U", inputs=[x, y], outputs=2, hidden=[32, 32])
    model = sm.Model(
        [sp.Eq(x.diff(t), alpha * x + U[0]), sp.Eq(y.diff(t), -delta * y + U[1])],
        parameters={alpha: ALPHA, delta: DELTA},
    )
    _, ts, noisy = make_data(args.seed)
    data = sm.Data(ts, {x: noisy[:, 0], y: noisy[:, 1]})
    # The loss exactly as `symml.fit` builds and trains it (its initial state
    # is trained too, starting at the first observation).
    problem = sm.SolveInLoop().prepare(
        model, data, seed=args.seed, dtype=jnp.float64, init=None
    )
    symml_x, static, loss = problem.trainable, problem.static, problem.loss
    params = symml_x.params
    scale = static.scale
    tss, ys = static.ts, static.ys

    net = params.networks["U"]
    hand = HandMLP([(w, b) for w, b in zip(net.weights, net.biases, strict=True)])
    y0, tsj, obs = jnp.asarray(noisy[0]), tss[0], ys[0]

    def hand_rhs(t, u, mlp):
        out = mlp(u)  # this network takes the states unscaled (shift 0, scale 1)
        return jnp.stack([ALPHA * u[0] + out[0], -DELTA * u[1] + out[1]])

    def hand_loss(mlp):
        sol = dfx.diffeqsolve(
            dfx.ODETerm(hand_rhs),
            dfx.Tsit5(),
            tsj[0],
            tsj[-1],
            None,
            y0,
            args=mlp,
            saveat=dfx.SaveAt(ts=tsj),
            stepsize_controller=dfx.PIDController(rtol=1e-6, atol=1e-8),
            max_steps=4096,
            throw=False,
        )
        return jnp.mean(jnp.mean((sol.ys - obs) ** 2, axis=0) / scale)

    symml_step = eqx.filter_jit(
        eqx.filter_value_and_grad(lambda p: loss(p, static), has_aux=True)
    )
    hand_step = eqx.filter_jit(eqx.filter_value_and_grad(hand_loss))

    (ls, _), gs = symml_step(symml_x)
    lh, gh = hand_step(hand)
    agree = abs(float(ls) - float(lh)) / abs(float(lh))
    gw_s = gs.params.networks["U"].weights[0]
    gw_h = gh.layers[0][0]
    grad_agree = float(jnp.max(jnp.abs(gw_s - gw_h)) / jnp.max(jnp.abs(gw_h)))

    times = {"symml": [], "hand": []}
    for _ in range(repeats):
        for name, fn, arg in (
            ("symml", symml_step, symml_x),
            ("hand", hand_step, hand),
        ):
            start = time.perf_counter()
            jax.block_until_ready(fn(arg))
            times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"Lotka–Volterra UDE loss-and-gradient, float64, {repeats} repeats each, "
        "alternating"
    )
    print(
        f"  loss agreement |symml - hand| / hand = {agree:.1e}; "
        f"first-layer gradient agreement {grad_agree:.1e}"
    )
    print(f"{'implementation':<16}{'median (ms)':>14}{'ratio':>10}")
    for name in ("hand", "symml"):
        print(f"{name:<16}{1e3 * med[name]:>14.3f}{med[name] / med['hand']:>10.3f}")
    ratio = med["symml"] / med["hand"]
    print(f"target: symml / hand <= 1.05 -> {'met' if ratio <= 1.05 else 'MISSED'}")
    summary = {
        "seed": args.seed,
        "quick": args.quick,
        "repeats": repeats,
        "ratio_symml_vs_hand": ratio,
        "median_ms": {k: 1e3 * v for k, v in med.items()},
        "loss_agreement": agree,
        "grad_agreement": grad_agree,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write(
        args.out / "summary.json",
        lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2)),
    )
    return summary


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
