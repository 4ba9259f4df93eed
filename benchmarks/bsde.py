"""Overhead of symml's deep BSDE loss against the same loss written by hand.

Times one training step (loss, gradient and Adam update) of the deep BSDE
method on the 100-dimensional HJB equation u_t + Δu − λ‖∇u‖² = 0 in the
configuration of `examples/hjb_deep_bsde.py` (N = 20 time steps, 256 paths a
step, one d+1 → d+10 → d+10 → d ReLU network of (t, x)), as symml builds it
from the symbolic declaration and as a user would write it directly with JAX
and equinox, in two ways: a loop over time steps (as in the paper's code) and
with the network applied to all steps at once. Same weights, same Brownian
increments, same normalisation. The three are timed in turn, after
compilation, and the medians compared against the faster hand-written one.

    python benchmarks/bsde.py [--quick] [--seed N] [--out DIR] [--dim D]
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
import sympy as sp

import symml as sm
from symml.export import atomic_write


def declare(dim: int, lam: float = 1.0) -> sm.ParabolicPDE:
    t, u, lam_ = sp.symbols("t u lambda")
    x, du = sp.MatrixSymbol("x", dim, 1), sp.MatrixSymbol("Du", dim, 1)
    return sm.ParabolicPDE(
        u,
        (t, x),
        terminal=sp.log((1 + sp.DotProduct(x, x)) / 2),
        horizon=1.0,
        x0=0.0,
        diffusion=sp.sqrt(2),
        nonlinearity=-lam_ * sp.DotProduct(du, du),
        gradient=du,
        parameters={lam_: lam},
    )


class HandParams(eqx.Module):
    u0: jax.Array
    grad0: jax.Array
    net: eqx.nn.MLP


def _inputs(static, batch):
    """Brownian increments, the paths X_0..X_{N-1} and X_N, as symml draws
    them (the same key gives the same numbers)."""
    n, d = static.shift.shape
    dt = static.times[1] - static.times[0]
    dw = jnp.sqrt(dt) * jr.normal(static.key, (n, batch, d), static.x0.dtype)
    noise = jnp.sqrt(jnp.asarray(2.0, static.x0.dtype)) * dw
    return dt, noise


def hand_loss(params: HandParams, static, *, lam: float, batch: int):
    """The deep BSDE loss for the HJB equation written directly, a loop over
    time steps as in the paper's code."""
    n, d = static.shift.shape
    dt, noise = _inputs(static, batch)
    x = jnp.broadcast_to(static.x0, (batch, d))
    y = jnp.broadcast_to(params.u0, (batch,))
    for i in range(n):
        if i == 0:
            grad = jnp.broadcast_to(params.grad0, (batch, d))
        else:
            t = jnp.full((batch, 1), static.times[i] / static.times[-1])
            z = (x - static.shift[i]) / static.scale[i]
            grad = jax.vmap(params.net)(jnp.concatenate([t, z], axis=-1))
        grad = static.out_scale * grad
        f = -lam * jnp.sum(grad * grad, axis=-1)
        y = y + jnp.sum(grad * noise[i], axis=-1) - f * dt
        x = x + noise[i]
    g = jnp.log((1 + jnp.sum(x * x, axis=-1)) / 2)
    return jnp.mean((y - g) ** 2)


def hand_loss_batched(params: HandParams, static, *, lam: float, batch: int):
    """The same loss with the network applied to every step at once."""
    n, d = static.shift.shape
    dt, noise = _inputs(static, batch)
    # The paths step by step (`jnp.cumsum` over the steps would cost more
    # than the rest of the loss on a CPU).
    xs = [jnp.broadcast_to(static.x0, (batch, d))]
    for i in range(n):
        xs.append(xs[-1] + noise[i])
    x_end, xs = xs[-1], jnp.stack(xs[:-1])
    t = jnp.broadcast_to(
        (static.times[1:-1] / static.times[-1])[:, None, None], (n - 1, batch, 1)
    )
    z = (xs[1:] - static.shift[1:, None]) / static.scale[1:, None]
    rest = jax.vmap(jax.vmap(params.net))(jnp.concatenate([t, z], axis=-1))
    grads = static.out_scale * jnp.concatenate(
        [jnp.broadcast_to(params.grad0, (1, batch, d)), rest], axis=0
    )
    f = -lam * jnp.sum(grads * grads, axis=-1)
    y = params.u0 + jnp.sum(jnp.sum(grads * noise, axis=-1) - f * dt, axis=0)
    g = jnp.log((1 + jnp.sum(x_end * x_end, axis=-1)) / 2)
    return jnp.mean((y - g) ** 2)


def to_hand(params, dim: int) -> HandParams:
    """symml's network as an `eqx.nn.MLP` with the same weights."""
    net = params.networks
    mlp = eqx.nn.MLP(
        dim + 1, dim, dim + 10, 2, activation=jax.nn.relu, key=jr.PRNGKey(0)
    )
    mlp = eqx.tree_at(
        lambda m: (
            [layer.weight for layer in m.layers] + [layer.bias for layer in m.layers]
        ),
        mlp,
        list(net.weights) + list(net.biases),
    )
    return HandParams(params.u0, params.grad0, mlp)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/bench_bsde"))
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    repeats = args.repeats or (20 if args.quick else 300)
    dim, steps, batch, lam = args.dim, 20, 256, 1.0

    method = sm.DeepBSDE(time_steps=steps, batch_size=batch, networks="shared")
    problem = method.problem(
        declare(dim, lam), key=jr.PRNGKey(args.seed), dtype=jnp.float32
    )
    params, static = problem.trainable, problem.static
    hand = to_hand(params, dim)

    def make_step(loss_fn, init):
        optimizer = optax.adam(1e-3)

        @eqx.filter_jit
        def step(p, state, static):
            loss, grad = eqx.filter_value_and_grad(loss_fn)(p, static)
            updates, state = optimizer.update(grad, state, p)
            return eqx.apply_updates(p, updates), state, loss

        return step, optimizer.init(eqx.filter(init, eqx.is_array))

    def symml_loss(p, s):
        return problem.loss_fn(p, s)[0]

    def written_loss(p, s):
        return hand_loss(p, s, lam=lam, batch=batch)

    def batched_loss(p, s):
        return hand_loss_batched(p, s, lam=lam, batch=batch)

    symml_step, symml_state = make_step(symml_loss, params)
    hand_step, hand_state = make_step(written_loss, hand)
    batched_step, batched_state = make_step(batched_loss, hand)

    ls = float(symml_loss(params, static))
    lh = float(written_loss(hand, static))
    agree = max(
        abs(ls - lh) / abs(lh),
        abs(float(batched_loss(hand, static)) - lh) / abs(lh),
    )
    gs = eqx.filter_grad(symml_loss)(params, static)
    gh = eqx.filter_grad(written_loss)(hand, static)
    grad_agree = float(
        jnp.max(jnp.abs(gs.networks.weights[0] - gh.net.layers[0].weight))
        / jnp.max(jnp.abs(gh.net.layers[0].weight))
    )

    runs = {
        "symml": (symml_step, params, symml_state),
        "hand (loop)": (hand_step, hand, hand_state),
        "hand (batched)": (batched_step, hand, batched_state),
    }
    times = {name: [] for name in runs}
    for step, p, state in runs.values():  # compile
        jax.block_until_ready(step(p, state, static))
    for i in range(repeats):
        s = eqx.tree_at(lambda s: s.key, static, jr.fold_in(static.key, i))
        for name, (step, p, state) in runs.items():
            start = time.perf_counter()
            p, state, _ = jax.block_until_ready(step(p, state, s))
            times[name].append(time.perf_counter() - start)
            runs[name] = (step, p, state)
    med = {k: statistics.median(v) for k, v in times.items()}
    # Against the faster of the two hand-written losses: the DSL must cost
    # nothing against the best a user would write.
    best = min(("hand (loop)", "hand (batched)"), key=med.get)
    ratio = med["symml"] / med[best]
    print(
        f"Deep BSDE training step (loss, gradient, Adam), HJB d = {dim}, N = {steps}, "
        f"batch {batch}, one network of (t, x), float32, {repeats} repeats each, "
        "in turn"
    )
    print(
        f"  loss agreement |symml - hand| / hand = {agree:.1e}; "
        f"gradient agreement {grad_agree:.1e}"
    )
    print(f"{'implementation':<18}{'median (ms)':>14}{'ratio':>10}")
    for name in ("hand (loop)", "hand (batched)", "symml"):
        print(f"{name:<18}{1e3 * med[name]:>14.3f}{med[name] / med[best]:>10.3f}")
    print(
        f"target: symml / fastest hand ({best}) <= 1.05 -> "
        f"{'met' if ratio <= 1.05 else 'MISSED'} ({ratio:.3f})"
    )
    summary = {
        "dim": dim,
        "time_steps": steps,
        "batch_size": batch,
        "repeats": repeats,
        "median_ms": {k: 1e3 * v for k, v in med.items()},
        "ratio": ratio,
        "ratio_against": best,
        "loss_agreement": agree,
        "grad_agreement": grad_agree,
        "seed": args.seed,
        "quick": args.quick,
    }
    atomic_write(
        args.out / "summary.json",
        lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2)),
    )
    return summary


if __name__ == "__main__":
    main()
