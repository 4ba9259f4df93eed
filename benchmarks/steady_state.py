"""Steady states: sparse against dense Newton, implicit against unrolled
gradients, and Newton with and without a skip guess — side by side in one run.

1. **Sparse vs dense Newton** on the 2-D problem
   0 = 0.1 Δu + u − u³ + 2 sin(πx) sin(πy) on the unit square, u = 0 on the
   boundary, N×N interior points, Newton from zero: SuperLU on the host
   (`linear_solver="sparse"`) against a dense LU inside JAX of the same
   Jacobian evaluated by colours (`"dense"`), and, where it fits, optimistix's
   default (`lineax.LU`, one JVP per unknown). Median seconds per solve.
2. **Crossover**: the same two on small 1-D and 2-D problems, which sets
   `symml.steady.SPARSE_FROM`.
3. **Implicit vs unrolled gradients** of the steady reaction–diffusion loss of
   `examples/steady_reaction.py` (8 experiments, 64 points, a 1→16→16→1
   network): the implicit function theorem against differentiating the Newton
   iterations, time and agreement.
4. **Skip guess**: that problem fitted with a skip guess (a network of the
   experiment's inputs trained jointly to predict the root) and without (every
   experiment from one fixed state, the mean observed one, by Newton or by
   integrating to equilibrium first); Newton iterations, time per training
   step at the trained model and per prediction at 8 new inputs, and
   whole-fit time. The observed data as the guess is a last row for reference
   (it needs every state observed).

Times are medians over repeats of compiled calls, the compared variants
interleaved in one process.

    python benchmarks/steady_state.py [--quick] [--seed N] [--out DIR]
"""

import os

# OpenBLAS threads spin while they wait; on a shared 2-core machine the dense
# LU then stalls for hundreds of milliseconds. One thread measures the
# algorithms, not the contention (override by setting the variable).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.flatten_util  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import lineax as lx  # noqa: E402
import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402

import symml as sm  # noqa: E402
from symml.export import atomic_write  # noqa: E402
from symml.steady import SPARSE_FROM  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import steady_reaction as ex  # noqa: E402


def median_times(calls: dict, repeats: int) -> dict:
    """Median seconds of each zero-argument call, the calls interleaved."""
    for call in calls.values():  # compile
        jax.block_until_ready(call())
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            jax.block_until_ready(call())
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def reaction_diffusion_2d(n: int):
    t, x, y = sp.symbols("t x y")
    (u,) = sm.states("u", t, x, y)
    model = sm.Model(
        [
            sp.Eq(
                u.diff(t),
                0.1 * (u.diff(x, 2) + u.diff(y, 2))
                + u
                - u**3
                + 2 * sp.sin(sp.pi * x) * sp.sin(sp.pi * y),
            )
        ],
        domain={x: (0, 1), y: (0, 1)},
        boundary="dirichlet",
    )
    return sm.discretize(model, {x: n, y: n})


def reaction_diffusion_1d(n: int):
    t, x = sp.symbols("t x")
    (u,) = sm.states("u", t, x)
    model = sm.Model(
        [sp.Eq(u.diff(t), 0.1 * u.diff(x, 2) + u - u**3 + 2 * sp.sin(sp.pi * x))],
        domain={x: (0, 1)},
        boundary="dirichlet",
    )
    return sm.discretize(model, {x: n})


def newton_times(ode, solvers: dict, repeats: int) -> tuple[dict, int]:
    guess = jnp.zeros(ode.n)
    calls = {
        name: (
            lambda s=s: sm.steady_state(ode, guess, solver=sm.Newton(linear_solver=s)).u
        )
        for name, s in solvers.items()
    }
    steps = int(sm.steady_state(ode, guess).num_steps)
    return median_times(calls, repeats), steps


def sparse_vs_dense(sizes, dense_upto: int, naive_upto: int, repeats: int) -> list:
    rows = []
    for n in sizes:
        ode = reaction_diffusion_2d(n)
        solvers = {"sparse": "sparse"}
        if ode.n <= dense_upto:
            solvers["dense"] = "dense"
        if ode.n <= naive_upto:
            solvers["optimistix_default"] = lx.LU()
        times, steps = newton_times(ode, solvers, repeats)
        row = {"N": n, "n": ode.n, "newton_steps": steps}
        row.update({f"{k}_s": v for k, v in times.items()})
        if "dense" in times:
            row["ratio_dense_over_sparse"] = times["dense"] / times["sparse"]
        else:
            row["dense_not_run"] = (
                f"the dense Jacobian alone needs {ode.n**2 * 8 / 1e9:.1f} GB and "
                f"each LU {ode.n**3 / 3:.1e} flops"
            )
        rows.append(row)
        print(
            f"  N={n:4d} n={ode.n:6d} steps={steps:2d}  sparse {times['sparse']:9.4f} s"
            + (
                f"  dense {times['dense']:9.4f} s  dense/sparse "
                f"{row['ratio_dense_over_sparse']:7.1f}x"
                if "dense" in times
                else "  dense: not run (" + row["dense_not_run"] + ")"
            )
            + (
                f"  optimistix default {times['optimistix_default']:8.4f} s"
                if "optimistix_default" in times
                else ""
            ),
            flush=True,
        )
    return rows


def crossover(sizes_1d, sizes_2d, repeats: int) -> list:
    rows = []
    for dim, sizes, build in (
        (1, sizes_1d, reaction_diffusion_1d),
        (2, sizes_2d, reaction_diffusion_2d),
    ):
        for n in sizes:
            ode = build(n)
            times, _ = newton_times(
                ode, {"dense": "dense", "sparse": "sparse"}, repeats
            )
            ratio = times["dense"] / times["sparse"]
            rows.append({"dim": dim, "n": ode.n, **times, "dense_over_sparse": ratio})
            print(
                f"  {dim}-D n={ode.n:5d}  dense {times['dense'] * 1e3:8.2f} ms  "
                f"sparse {times['sparse'] * 1e3:8.2f} ms  dense/sparse {ratio:6.2f}"
                f"  auto: {'sparse' if ode.n >= SPARSE_FROM else 'dense'}",
                flush=True,
            )
    return rows


def reaction_problem(seed: int):
    """The example's model and data, and per-experiment parameters."""
    R = sm.Unknown("R", [ex.u], hidden=(16, 16), input_range=((-1.5,), (1.5,)))
    ude = ex.declare(R[0], sm.trainable(ex.D_TRUE))
    ode = sm.discretize(ude, {ex.x: ex.GRID})
    clean, noisy, data = ex.make_data(seed)
    return ode, clean, noisy, data


def implicit_vs_unrolled(seed: int, repeats: int) -> dict:
    ode, clean, noisy, data = reaction_problem(seed)
    inputs = {ex.A: 0.0, ex.B: 0.0, ex.G: 0.0}
    inner = sm.discretize(
        ex.declare(
            ode.model.unknowns[0][0],
            sm.trainable(ex.D_TRUE),
            {s: sm.trainable(0.0) for s in inputs},
        ),
        {ex.x: ex.GRID},
    )
    params = sm.init_params(inner.model, key=jax.random.PRNGKey(seed))
    x_in = jnp.asarray(data.input_array())
    ys, guesses = jnp.asarray(noisy), jnp.asarray(noisy)
    # Tight tolerances: the two gradients differ by what the iterations leave
    # of the residual.
    solver = sm.Newton(rtol=1e-12, atol=1e-12)

    def loss(params, adjoint):
        def one(values, g0):
            p = sm.Params(
                {**params.values, "A": values[0], "B": values[1], "g": values[2]},
                params.networks,
            )
            return sm.steady_state(inner, g0, p, solver=solver, adjoint=adjoint).u

        us = jax.vmap(one)(x_in, guesses)
        return jnp.mean((us - ys) ** 2)

    grads = {
        a: eqx.filter_jit(jax.grad(lambda p, a=a: loss(p, a)))
        for a in ("implicit", "unrolled")
    }
    times = median_times({a: (lambda a=a: grads[a](params)) for a in grads}, repeats)
    g_imp = jax.flatten_util.ravel_pytree(grads["implicit"](params))[0]
    g_unr = jax.flatten_util.ravel_pytree(grads["unrolled"](params))[0]
    agreement = float(jnp.linalg.norm(g_imp - g_unr) / jnp.linalg.norm(g_unr))
    out = {
        "implicit_s": times["implicit"],
        "unrolled_s": times["unrolled"],
        "ratio_unrolled_over_implicit": times["unrolled"] / times["implicit"],
        "relative_difference": agreement,
        "n_parameters": int(g_imp.size),
    }
    print(
        f"  gradient of the 8-experiment loss ({g_imp.size} parameters): implicit "
        f"{times['implicit'] * 1e3:.2f} ms, unrolled {times['unrolled'] * 1e3:.2f} ms"
        f" (unrolled/implicit {out['ratio_unrolled_over_implicit']:.2f}x); "
        f"‖g_implicit − g_unrolled‖ / ‖g_unrolled‖ = {agreement:.2e}",
        flush=True,
    )
    return out


def skip_guess(
    seed: int, steps: int, lbfgs_steps: int, repeats: int, fit_all: bool
) -> dict:
    ode, clean, noisy, data = reaction_problem(seed)
    ode = sm.discretize(
        ex.declare(ode.model.unknowns[0][0], sm.trainable(ex.D_GUESS)),
        {ex.x: ex.GRID},
    )
    k = data.n_experiments
    # Without a skip guess every experiment starts from one fixed state, the
    # mean of the observed ones (also the skip guess's untrained offset), with
    # Newton or, more robustly, by integrating to equilibrium first.
    mean = np.mean(noisy, axis=0)
    variants = {
        "skip": ("skip", sm.Newton()),
        "fixed": (mean, sm.Newton()),
        "fixed+integrate": (mean, sm.IntegrateToSteady()),
        "data": ("data", sm.Newton()),
    }
    fits, failed = {}, {}
    for name, (guess, solver) in variants.items():
        if not fit_all and name != "skip":
            continue
        start = time.perf_counter()
        try:
            fits[name] = sm.fit(
                ode,
                data,
                method=sm.SteadyFit(solver=solver, guess=guess),
                seed=seed,
                steps=steps,
                lbfgs_steps=lbfgs_steps,
            )
            print(
                f"  fit, guess {name!r}: {fits[name].wall_time:.1f} s (compilation "
                f"included), final loss {fits[name].final_loss:.3e}",
                flush=True,
            )
        except sm.FitError as e:
            history = e.result.history
            failed[name] = {
                "phase": list(history)[-1] if history else "adam",
                "step": int(sum(len(h) for h in history.values())),
                "seconds": time.perf_counter() - start,
            }
            print(f"  fit, guess {name!r}: failed: {e}", flush=True)

    trained = fits["skip"]
    params, skip = trained.params, trained.guess
    setup = trained._setup
    x_in = jnp.asarray(data.input_array())
    new = jnp.asarray(
        0.5 * (data.input_array() + np.roll(data.input_array(), 1, axis=0))
    )
    fixed = jnp.broadcast_to(jnp.asarray(mean), (k, ode.n))
    # (skip network, fixed guesses, method) of each variant at the trained model
    use = {
        "skip": (skip, fixed, sm.Newton()),
        "fixed": (None, fixed, sm.Newton()),
        "fixed+integrate": (None, fixed, sm.IntegrateToSteady()),
        "data": (None, jnp.asarray(noisy), sm.Newton()),
    }

    def solve(method, params, skip, guesses, inputs):
        def one(values, g0):
            u0 = g0 if skip is None else skip(values)
            p = sm.Params(
                {**params.values, **dict(zip(setup.names, values, strict=True))},
                params.networks,
            )
            return sm.steady_state(setup.system, u0, p, solver=method, throw=False)

        return jax.vmap(one)(inputs, guesses)

    # One training step (loss and gradient) at the trained model.
    @eqx.filter_jit
    def step(method, params, skip, guesses):
        def loss(params, skip):
            sol = solve(method, params, skip, guesses, x_in)
            out = jnp.mean((sol.u - jnp.asarray(noisy)) ** 2)
            if skip is not None:
                out = out + jnp.mean(
                    (jax.vmap(skip)(x_in) - jax.lax.stop_gradient(sol.u)) ** 2
                )
            return out

        return eqx.filter_value_and_grad(loss)(params, skip)

    @eqx.filter_jit
    def predict(method, params, skip, guesses):
        return solve(method, params, skip, guesses, new).u

    @eqx.filter_jit
    def counts(method, params, skip, guesses, inputs):
        sol = solve(method, params, skip, guesses, inputs)
        return (
            sol.num_steps,
            sol.stats.get("integration_steps", jnp.zeros_like(sol.num_steps)),
            sol.converged,
        )

    step_times = median_times(
        {
            name: (lambda s=s, g=g, m=m: step(m, params, s, g))
            for name, (s, g, m) in use.items()
        },
        repeats,
    )
    predictors = {n: use[n] for n in ("skip", "fixed", "fixed+integrate")}
    predict_times = median_times(
        {
            name: (lambda s=s, m=m: predict(m, params, s, fixed))
            for name, (s, _, m) in predictors.items()
        },
        repeats,
    )
    rows = {}
    for name, (s, g, m) in use.items():
        newton, integration, ok = counts(m, params, s, g, x_in)
        row = {
            "newton_iterations": float(jnp.mean(newton)),
            "newton_iterations_max": int(jnp.max(newton)),
            "integration_steps": float(jnp.mean(integration)),
            "converged": int(jnp.sum(ok)),
            "step_seconds": step_times[name],
            "fit_seconds": fits[name].wall_time if name in fits else None,
            "fit_failed": failed.get(name),
        }
        if name in predictors:
            newton, integration, ok = counts(m, params, s, fixed, new)
            row.update(
                predict_newton_iterations=float(jnp.mean(newton)),
                predict_integration_steps=float(jnp.mean(integration)),
                predict_converged=int(jnp.sum(ok)),
                predict_seconds=predict_times[name],
            )
        rows[name] = row
    print(
        "  guess            Newton its  max  (+ integration)  solved  step ms  "
        "| predict: its  solved  ms  | whole fit s"
    )
    for name, r in rows.items():
        predict_part = (
            f"| {r['predict_newton_iterations']:12.2f}  {r['predict_converged']:3d}/8"
            f"  {r['predict_seconds'] * 1e3:6.2f}"
            if "predict_seconds" in r
            else "|" + " " * 31
        )
        if r["fit_seconds"] is not None:
            fit_part = f"{r['fit_seconds']:9.1f}"
        elif r["fit_failed"] is not None:
            fit_part = f"failed at step {r['fit_failed']['step']}"
        else:
            fit_part = "not run (--quick)"
        its, most = r["newton_iterations"], r["newton_iterations_max"]
        print(
            f"  {name:16s} {its:9.2f}  {most:3d}"
            f"  {r['integration_steps']:15.1f}  {r['converged']:3d}/{k}"
            f"  {r['step_seconds'] * 1e3:7.2f}  {predict_part}  | {fit_part}"
        )
    out = {"rows": rows, "D": {n: f.parameter_values()[ex.D] for n, f in fits.items()}}
    base = rows["fixed+integrate"]
    out["ratio_iterations_fixed_over_skip"] = (
        rows["fixed"]["newton_iterations"] / rows["skip"]["newton_iterations"]
    )
    out["ratio_step_fixed_over_skip"] = (
        rows["fixed"]["step_seconds"] / rows["skip"]["step_seconds"]
    )
    out["ratio_step_fixed_integrate_over_skip"] = (
        base["step_seconds"] / rows["skip"]["step_seconds"]
    )
    out["ratio_predict_fixed_over_skip"] = (
        rows["fixed"]["predict_seconds"] / rows["skip"]["predict_seconds"]
    )
    out["ratio_predict_fixed_integrate_over_skip"] = (
        base["predict_seconds"] / rows["skip"]["predict_seconds"]
    )
    if base["fit_seconds"] is not None:
        out["ratio_fit_fixed_integrate_over_skip"] = (
            base["fit_seconds"] / rows["skip"]["fit_seconds"]
        )
    print(
        "  without ÷ with the skip guess: Newton iterations "
        f"{out['ratio_iterations_fixed_over_skip']:.2f}x; training step "
        f"{out['ratio_step_fixed_over_skip']:.2f}x (fixed guess), "
        f"{out['ratio_step_fixed_integrate_over_skip']:.2f}x (integrate first); "
        f"prediction {out['ratio_predict_fixed_over_skip']:.2f}x / "
        f"{out['ratio_predict_fixed_integrate_over_skip']:.2f}x"
        + (
            f"; whole fit (integrate first) "
            f"{out['ratio_fit_fixed_integrate_over_skip']:.2f}x"
            if "ratio_fit_fixed_integrate_over_skip" in out
            else ""
        ),
        flush=True,
    )
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/steady_state"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if args.quick:
        sizes, dense_upto, naive_upto, repeats = (8, 16), 300, 100, 3
        sizes_1d, sizes_2d = (32,), (8,)
        steps, lbfgs_steps = 5, 0
    else:
        sizes, dense_upto, naive_upto, repeats = (32, 64, 128), 4096, 1024, 5
        sizes_1d, sizes_2d = (32, 64, 128, 256, 512, 1024), (8, 12, 16, 20, 24, 32)
        steps, lbfgs_steps = 300, 300

    print(
        f"jax {jax.__version__}, x64, OPENBLAS_NUM_THREADS="
        f"{os.environ['OPENBLAS_NUM_THREADS']}; medians of {repeats} interleaved "
        "runs, side by side"
    )
    print("1. Sparse vs dense Newton, 2-D reaction–diffusion (n = N² unknowns):")
    newton = sparse_vs_dense(sizes, dense_upto, naive_upto, repeats)
    print(f"2. Crossover (auto switches to sparse from n = {SPARSE_FROM}):")
    cross = crossover(sizes_1d, sizes_2d, repeats)
    print("3. Implicit vs unrolled gradients:")
    grads = implicit_vs_unrolled(args.seed, 3 * repeats)
    print("4. Skip guess:")
    skip = skip_guess(args.seed, steps, lbfgs_steps, 3 * repeats, not args.quick)
    summary = {
        "seed": args.seed,
        "quick": args.quick,
        "jax": jax.__version__,
        "openblas_threads": os.environ["OPENBLAS_NUM_THREADS"],
        "repeats": repeats,
        "sparse_vs_dense": newton,
        "sparse_from": SPARSE_FROM,
        "crossover": cross,
        "implicit_vs_unrolled": grads,
        "skip_guess": skip,
        "wall_seconds": time.perf_counter() - start,
    }
    atomic_write(
        args.out / "summary.json",
        lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2)),
    )
    print(f"wall time {summary['wall_seconds']:.0f} s; results in {args.out}/")
    return summary


if __name__ == "__main__":
    main()
