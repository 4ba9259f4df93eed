"""Cost and accuracy of the derivative schemes inside a PINN-style loss.

For a 4×64 tanh network u(t, x) and N points, times the loss *and* its gradient
with respect to the weights, `eqx.filter_value_and_grad(mean(∂_x^k u ** 2))`,
for every scheme at orders 1–4 in float32 and float64 (with JAX's own Taylor
mode, `jax.experimental.jet`, as a reference row), and reports the relative
error of ∂_x^k u against float64 nested `jax.jacfwd`. Then times the Laplacian
of a 16-input network: collapsed Taylor vs the trace of a nested Hessian vs
forward mode.

    python benchmarks/derivatives.py [--quick] [--sweep] [--malloc default]
        [--seed N] [--out DIR]

`--out DIR` writes `DIR/summary.json` with the target ratios per dtype
(`taylor_k2_vs_fd_k2`, `taylor_k4_vs_k1`, `laplacian_taylor_vs_hessian_trace`)
and every timed row.

By default the process uses `symml.use_heap_allocator()`: with the C library's
defaults every call whose scratch memory exceeds 32 MB maps (and faults in)
fresh pages, a cost that jumps at that size and would blur the comparison of
the schemes' own work; `--malloc default` shows it.
"""

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import equinox as eqx
import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import jax.tree_util as jtu  # noqa: E402
from jax.experimental import jet  # noqa: E402

import symml as sm  # noqa: E402
from symml.derivatives import (  # noqa: E402
    FiniteDifference,
    Forward,
    Reverse,
    Taylor,
)
from symml.nets import make_network  # noqa: E402


class _Jet:
    """`jax.experimental.jet`, JAX's own Taylor mode, as a reference row.

    Only pure derivatives: `∂^α` with one nonzero entry is `D_v^k` along that
    axis, which jet returns unnormalised.
    """

    def derivatives(self, fn, x, alphas):
        out = []
        for alpha in alphas:
            (axis,) = [i for i, a in enumerate(alpha) if a]
            k = alpha[axis]
            v = jnp.zeros_like(x).at[axis].set(1)
            zeros = [jnp.zeros_like(x)] * (k - 1)
            _, series = jet.jet(fn, (x,), ((v, *zeros),))
            out.append(series[k - 1])
        return out


SCHEMES = {
    "fd": FiniteDifference(scale=(1.0, 2.0)),
    "taylor": Taylor(),
    "forward": Forward(),
    "reverse": Reverse(),
    "jet": _Jet(),
}


def _interleaved_medians(steps: dict, args: tuple, reps: int, seconds: float) -> dict:
    """Median time of each function, measured round-robin after a warm-up.

    Interleaving the repetitions makes the ratios robust to the machine's load
    drifting during the run (other processes on a shared CPU).
    """
    for fn in steps.values():
        jax.block_until_ready(fn(*args))
    times = {name: [] for name in steps}
    start = time.perf_counter()
    while True:
        for name, fn in steps.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times[name].append(time.perf_counter() - t0)
        n = len(times[name])
        if n >= 200 or (n >= reps and time.perf_counter() - start >= seconds):
            break
    return {name: statistics.median(t) for name, t in times.items()}


def _cast(tree, dtype):
    return jtu.tree_map(
        lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, tree
    )


def _nested_jacfwd(net, x, order):
    def g(z):
        return net(z)[0]

    for _ in range(order):
        g = (lambda h: lambda z: jax.jacfwd(h)(z)[1])(g)
    return g(x)


def _step(quantity):
    """`value_and_grad` w.r.t. the weights of `mean(quantity(net, pts) ** 2)`."""

    def loss(net, pts):
        values = quantity(net, pts)
        return jnp.mean(values**2), values

    return eqx.filter_jit(eqx.filter_value_and_grad(loss, has_aux=True))


def _print_header(header: str) -> None:
    print(header)
    print("-" * len(header))


def _scratch_mb(step, net, pts) -> float:
    """XLA's scratch memory for one step, in MB.

    On a CPU the step slows down several-fold once this outgrows the cache
    (32 MB of L3 on the machine these figures were first measured on).
    """
    params, static = eqx.partition(net, eqx.is_inexact_array)
    compiled = (
        jax.jit(lambda p, x: step(eqx.combine(p, static), x))
        .lower(params, pts)
        .compile()
    )
    analysis = compiled.memory_analysis()
    return float("nan") if analysis is None else analysis.temp_size_in_bytes / 1e6


def _rel_error(step, net, pts, exact) -> float:
    (_, values), _ = step(net, pts)
    values = values.astype(jnp.float64)
    return float(jnp.linalg.norm(values - exact) / jnp.linalg.norm(exact))


def bench_orders(
    n_points, orders, dtypes, schemes, reps, seconds, seed=0
) -> list[dict]:
    key_net, key_pts = jr.split(jr.PRNGKey(seed))
    net64 = make_network(2, 1, [64] * 4, "tanh", key=key_net, dtype=jnp.float64)
    lo, hi = jnp.array([0.0, -1.0]), jnp.array([1.0, 1.0])
    pts64 = lo + (hi - lo) * jr.uniform(key_pts, (n_points, 2), jnp.float64)
    exact = {
        k: jax.jit(jax.vmap(lambda z, k=k: _nested_jacfwd(net64, z, k)))(pts64)
        for k in orders
    }
    rows = []
    for dtype in dtypes:
        net, pts = _cast(net64, dtype), pts64.astype(dtype)
        # Every (order, scheme) of one dtype is timed round-robin, so that both
        # ratio columns (÷ fd, ÷ order 1) compare measurements taken together.
        steps = {
            (k, name): _step(
                lambda net, pts, s=scheme, a=((0, k),): jax.vmap(
                    lambda z: s.derivatives(net, z, a)[0][0]
                )(pts)
            )
            for k in orders
            for name, scheme in SCHEMES.items()
            if name in schemes
        }
        errors = {
            key: _rel_error(f, net, pts, exact[key[0]]) for key, f in steps.items()
        }
        scratch = {key: _scratch_mb(f, net, pts) for key, f in steps.items()}
        times = _interleaved_medians(steps, (net, pts), reps, seconds)
        for k, name in steps:
            rows.append(
                dict(
                    order=k,
                    dtype=jnp.dtype(dtype).name,
                    scheme=name,
                    t=times[(k, name)],
                    err=errors[(k, name)],
                    mb=scratch[(k, name)],
                )
            )
    rows.sort(key=lambda r: (r["order"], r["dtype"]))
    return rows


def _hessian_trace(net, z):
    return jnp.trace(jax.hessian(lambda y: net(y)[0])(z))[None]


LAPLACIANS = {
    "taylor (collapsed)": lambda net, z: Taylor().laplacian(net, z),
    "trace nested Hessian": _hessian_trace,
    "forward": lambda net, z: Forward().laplacian(net, z),
    "reverse": lambda net, z: Reverse().laplacian(net, z),
    "fd": lambda net, z: FiniteDifference(scale=2.0).laplacian(net, z),
}


def bench_laplacian(n_points, methods, dtypes, reps, seconds, seed=0) -> list[dict]:
    key_net, key_pts = jr.split(jr.PRNGKey(seed + 1))
    net64 = make_network(16, 1, [64] * 4, "tanh", key=key_net, dtype=jnp.float64)
    pts64 = jr.uniform(key_pts, (n_points, 16), jnp.float64, -1.0, 1.0)
    exact = jax.jit(jax.vmap(lambda z: _hessian_trace(net64, z)))(pts64)
    rows = []
    for dtype in dtypes:
        net, pts = _cast(net64, dtype), pts64.astype(dtype)
        steps = {
            name: _step(
                lambda net, pts, m=LAPLACIANS[name]: jax.vmap(lambda z: m(net, z))(pts)
            )
            for name in methods
        }
        errors = {n: _rel_error(f, net, pts, exact) for n, f in steps.items()}
        times = _interleaved_medians(steps, (net, pts), reps, seconds)
        for name in methods:
            rows.append(
                dict(
                    dtype=jnp.dtype(dtype).name,
                    method=name,
                    t=times[name],
                    err=errors[name],
                )
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="N=256, float32, orders 1, 2, 4, fd, taylor and jet, few reps",
    )
    parser.add_argument(
        "--malloc",
        choices=["heap", "default"],
        default="heap",
        help="heap: symml.use_heap_allocator(), so that steps whose scratch "
        "exceeds 32 MB do not pay page faults on every call (the default); "
        "default: the C library's own settings",
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="also time taylor orders 1 and 4 in float32 at N = 1024 ... 16384",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="network weights and points"
    )
    parser.add_argument("--out", type=Path, default=None, help="write DIR/summary.json")
    args = parser.parse_args()
    if args.quick:
        # Compilation dominates here; the timings are only a smoke test.
        n, reps, seconds = 256, 15, 0.0
        orders, dtypes = (1, 2, 4), (jnp.float32,)
        schemes = ["fd", "taylor", "jet"]
        methods = ["taylor (collapsed)", "trace nested Hessian"]
    else:
        n, reps, seconds = 4096, 15, 10.0
        orders, dtypes = (1, 2, 3, 4), (jnp.float32, jnp.float64)
        schemes = list(SCHEMES)
        methods = list(LAPLACIANS)
    heap = args.malloc == "heap" and sm.use_heap_allocator()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, N = {n} points")
    print(
        "allocator: "
        + (
            "heap (symml.use_heap_allocator)"
            if heap
            else "C library defaults (large blocks mapped afresh per call)"
        )
    )
    print("loss + weight gradient of mean((∂_x^k u)²), u = 4×64 tanh MLP of (t, x)")

    rows = bench_orders(n, orders, dtypes, schemes, reps, seconds, args.seed)
    t_of = {(r["order"], r["dtype"], r["scheme"]): r["t"] for r in rows}
    header = (
        f"{'dtype':8} {'k':>2} {'scheme':8} {'time [ms]':>10} {'÷ fd':>7} "
        f"{'÷ order 1':>10} {'rel. error':>11} {'scratch [MB]':>13}"
    )
    _print_header(header)
    for r in rows:
        vs_fd = r["t"] / t_of[(r["order"], r["dtype"], "fd")]
        vs_k1 = r["t"] / t_of[(1, r["dtype"], r["scheme"])]
        print(
            f"{r['dtype']:8} {r['order']:>2} {r['scheme']:8} {1e3 * r['t']:>10.2f} "
            f"{vs_fd:>7.2f} {vs_k1:>10.2f} {r['err']:>11.2e} {r['mb']:>13.1f}"
        )

    print()
    n_lap = min(n, 1024)
    print(f"Laplacian of a 16-input 4×64 tanh MLP, loss + weight gradient, N = {n_lap}")
    lrows = bench_laplacian(n_lap, methods, dtypes, reps, seconds, args.seed)
    t_ref = {r["dtype"]: r["t"] for r in lrows if r["method"] == "trace nested Hessian"}
    header = (
        f"{'dtype':8} {'method':22} {'time [ms]':>10} {'÷ Hessian':>10} "
        f"{'rel. error':>11}"
    )
    _print_header(header)
    for r in lrows:
        print(
            f"{r['dtype']:8} {r['method']:22} {1e3 * r['t']:>10.2f} "
            f"{r['t'] / t_ref[r['dtype']]:>10.2f} {r['err']:>11.2e}"
        )

    print()
    print("Targets")
    targets = {}
    for dt in sorted({r["dtype"] for r in rows}):
        ratio2 = t_of[(2, dt, "taylor")] / t_of[(2, dt, "fd")]
        ratio4 = t_of[(4, dt, "taylor")] / t_of[(1, dt, "taylor")]
        lap = next(
            r["t"]
            for r in lrows
            if r["dtype"] == dt and r["method"].startswith("taylor")
        )
        ratio_lap = lap / t_ref[dt]
        targets[dt] = {
            "taylor_k2_vs_fd_k2": ratio2,
            "taylor_k4_vs_k1": ratio4,
            "laplacian_taylor_vs_hessian_trace": ratio_lap,
        }
        print(
            f"{dt}: taylor k=2 ÷ fd k=2 = {ratio2:.3f} (target ≤ 1.0, "
            f"{'met' if ratio2 <= 1.0 else 'missed'}); taylor k=4 ÷ k=1 = "
            f"{ratio4:.3f} (≤ 5, {'met' if ratio4 <= 5 else 'missed'}); "
            f"Laplacian ÷ Hessian trace = {ratio_lap:.3f} "
            f"(≤ 0.5, {'met' if ratio_lap <= 0.5 else 'missed'})"
        )
    sweep_rows = []
    if args.sweep:
        sizes = (128, 256) if args.quick else (1024, 2048, 4096, 16384)
        sweep_rows = sweep(sizes, reps, seconds / 2)
    if args.out is not None:
        summary = {
            "seed": args.seed,
            "quick": args.quick,
            "n_points": n,
            "allocator": "heap" if heap else "default",
            "jax": jax.__version__,
            "load_average": os.getloadavg(),
            "targets": targets,
            "orders": [_in_ms(r) for r in rows],
            "laplacian": [_in_ms(r) for r in lrows],
            "sweep": sweep_rows,
        }
        path = sm._files.write_text(
            args.out / "summary.json", json.dumps(summary, indent=2, default=float)
        )
        print(f"summary: {path}")


def _in_ms(row: dict) -> dict:
    out = {k: v for k, v in row.items() if k != "t"}
    out["t_ms"] = 1e3 * row["t"]
    return out


def sweep(sizes, reps, seconds) -> list[dict]:
    """Taylor order 4 ÷ order 1 against N: where the step leaves the cache."""
    print()
    print("taylor, float32: order 4 ÷ order 1 against the number of points")
    header = (
        f"{'N':>6} {'k=1 [ms]':>9} {'k=4 [ms]':>9} {'k4 ÷ k1':>8} "
        f"{'scratch k=1 [MB]':>17} {'scratch k=4 [MB]':>17}"
    )
    _print_header(header)
    out = []
    for n in sizes:
        rows = bench_orders(n, (1, 4), (jnp.float32,), ["taylor"], reps, seconds)
        r1, r4 = (next(r for r in rows if r["order"] == k) for k in (1, 4))
        print(
            f"{n:>6} {1e3 * r1['t']:>9.2f} {1e3 * r4['t']:>9.2f} "
            f"{r4['t'] / r1['t']:>8.2f} {r1['mb']:>17.1f} {r4['mb']:>17.1f}"
        )
        out.append({"n": n, "k1_ms": 1e3 * r1["t"], "k4_ms": 1e3 * r4["t"]})
    return out


if __name__ == "__main__":
    main()
