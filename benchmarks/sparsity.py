"""Sparsity on the 2D Brusselator: detection, colouring, compressed Jacobians
and stiff implicit solves, against dense `jax.jacfwd` / diffrax defaults.

    python benchmarks/sparsity.py [--quick]

The RHS is written directly in JAX (periodic 5-point Laplacian with
`jnp.roll`); a method-of-lines `discretize` from the DSL will replace it.
"""

from __future__ import annotations

import argparse
import time

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from symml.sparsity import (
    color_columns,
    compressed_jacobian,
    jacobian_sparsity,
    solve_stiff,
)

jax.config.update("jax_enable_x64", True)

T1 = 11.5


def brusselator(n: int):
    """`rhs(t, y, args)` and `y0` of the standard 2D Brusselator on `n x n`."""
    xs = np.linspace(0.0, 1.0, n, endpoint=False)
    gx, gy = np.meshgrid(xs, xs, indexing="ij")
    alpha = 10.0 * n**2  # α / dx² with α = 10, dx = 1 / n
    disk = jnp.asarray((gx - 0.3) ** 2 + (gy - 0.6) ** 2 <= 0.1**2)

    def lap(u):
        return (
            jnp.roll(u, 1, 0)
            + jnp.roll(u, -1, 0)
            + jnp.roll(u, 1, 1)
            + jnp.roll(u, -1, 1)
            - 4 * u
        )

    def rhs(t, y, args):
        u, v = y.reshape(2, n, n)
        forcing = jnp.where(disk & (t >= 1.1), 5.0, 0.0)
        du = 1.0 + u**2 * v - 4.4 * u + alpha * lap(u) + forcing  # B + u²v − (A+1)u
        dv = 3.4 * u - u**2 * v + alpha * lap(v)
        return jnp.stack([du, dv]).ravel()

    y0 = np.stack([22 * (gy * (1 - gy)) ** 1.5, 27 * (gx * (1 - gx)) ** 1.5])
    return rhs, jnp.asarray(y0.ravel())


def _median_time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _compiled(fn, *args):
    """AOT-compile `fn(*args)`; return (compile seconds, compiled function)."""
    t0 = time.perf_counter()
    compiled = eqx.filter_jit(fn).lower(*args).compile()
    return time.perf_counter() - t0, compiled


def run(n: int, reps: int, t_cmp: float | None) -> dict[str, object]:
    rhs, y0 = brusselator(n)
    row: dict[str, object] = {"N": n, "states": y0.size}

    def fy(y, t):
        return rhs(t, y, None)

    jacobian_sparsity(fy, y0, 0.0)  # first call: imports, rule caches
    row["detect_ms"] = 1e3 * _median_time(lambda: jacobian_sparsity(fy, y0, 0.0), reps)
    pattern = jacobian_sparsity(fy, y0, 0.0)
    row["nnz/row"] = pattern.nnz / pattern.shape[0]
    t0 = time.perf_counter()
    colors = color_columns(pattern)
    row["color_ms"] = 1e3 * (time.perf_counter() - t0)
    row["colors"] = int(colors.max()) + 1

    sparse_jac = jax.jit(
        lambda y: compressed_jacobian(fy, y, pattern, colors, 2.0).data
    )
    dense_jac = jax.jit(lambda y: jax.jacfwd(fy)(y, 2.0))
    sparse_jac(y0).block_until_ready()
    dense_jac(y0).block_until_ready()
    row["sparse_jac_ms"] = 1e3 * _median_time(lambda: sparse_jac(y0), reps)
    row["dense_jac_ms"] = 1e3 * _median_time(lambda: dense_jac(y0), max(reps // 4, 1))
    row["jac_speedup"] = row["dense_jac_ms"] / row["sparse_jac_ms"]

    def sparse_solve(y0, t1):
        return solve_stiff(rhs, y0, (0.0, t1), pattern, rtol=1e-6, atol=1e-6).ys

    def dense_solve(y0, t1):
        return dfx.diffeqsolve(
            dfx.ODETerm(rhs),
            dfx.Kvaerno5(),
            0.0,
            t1,
            None,
            y0,
            stepsize_controller=dfx.PIDController(rtol=1e-6, atol=1e-6),
            max_steps=100_000,
        ).ys

    compile_s, compiled = _compiled(sparse_solve, y0, jnp.asarray(T1))
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(y0, jnp.asarray(T1)))
    row[f"sparse_solve_s(t1={T1})"] = time.perf_counter() - t0
    row["sparse_compile_s"] = compile_s
    if t_cmp is not None:
        # The dense solve costs one n x n LU (and n JVPs) per step: minutes even
        # at N = 16 to t1 = 11.5, so both are compared on [0, t_cmp].
        row["t_cmp"] = t_cmp
        t0 = time.perf_counter()
        ys_sparse = jax.block_until_ready(compiled(y0, jnp.asarray(t_cmp)))
        row["sparse_cmp_s"] = time.perf_counter() - t0
        _, dense_compiled = _compiled(dense_solve, y0, jnp.asarray(t_cmp))
        t0 = time.perf_counter()
        ys_dense = jax.block_until_ready(dense_compiled(y0, jnp.asarray(t_cmp)))
        row["dense_cmp_s"] = time.perf_counter() - t0
        row["solve_speedup"] = row["dense_cmp_s"] / row["sparse_cmp_s"]
        row["max|Δy|"] = float(jnp.max(jnp.abs(ys_sparse - ys_dense)))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 16, few reps")
    parser.add_argument(
        "--t-cmp",
        type=float,
        default=0.5,
        help="horizon of the sparse-vs-dense solve comparison (default 0.5)",
    )
    ns = parser.parse_args()
    if ns.quick:
        rows = [run(16, reps=5, t_cmp=0.1)]
    else:
        rows = [run(32, reps=20, t_cmp=ns.t_cmp), run(64, reps=20, t_cmp=None)]
    keys = list(dict.fromkeys(k for r in rows for k in r))
    print(f"{'':>18}" + "".join(f"{'N=' + str(r['N']):>14}" for r in rows))
    for k in keys[1:]:
        cells = []
        for r in rows:
            v = r.get(k, "—")
            cells.append(f"{v:>14.4g}" if isinstance(v, float) else f"{v!s:>14}")
        print(f"{k:>18}" + "".join(cells))
    print(
        "targets: detect_ms ≤ 10 at N=32, colors ≤ 12, jac_speedup ≥ 100 at N=32, "
        "solve_speedup ≥ 5 at N=32 (dense solve skipped at N=64: 8192² LU per step)"
    )


if __name__ == "__main__":
    main()
