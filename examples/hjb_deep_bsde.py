"""The Hamilton–Jacobi–Bellman equation in 100 dimensions by the deep BSDE method.

The reference problem of Han, Jentzen & E (PNAS 2018):

    u_t + Δu − λ‖∇u‖² = 0,   u(T, x) = g(x) = ln((1 + ‖x‖²) / 2),

λ = 1, T = 1, in d = 100 dimensions; the target is u(0, 0). The PDE is
declared once in vector notation (sympy `MatrixSymbol`s and `DotProduct`), so
the declaration is the same size for d = 100 and d = 1000. symml builds the
forward SDE X = √2 W, one network for ∇u per time step, and the BSDE loss,
and trains it. The reference comes from the Hopf–Cole formula

    u(0, x) = −(1/λ) ln E[exp(−λ g(x + √2 W_T))]

by Monte Carlo, with a standard error below 1e-4.

    python examples/hjb_deep_bsde.py               # d = 100 (seeded, ~2-4 min)
    python examples/hjb_deep_bsde.py --dim 1000    # d = 1000
    python examples/hjb_deep_bsde.py --quick       # a short smoke run for tests
"""

import argparse
import json
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import sympy as sp

import symml as sm
from symml.export import atomic_write


def declare(dim: int, lam: float = 1.0, horizon: float = 1.0) -> sm.ParabolicPDE:
    """The HJB equation in `dim` dimensions, independent of `dim` in size."""
    t, u, lam_ = sp.symbols("t u lambda")
    x, du = sp.MatrixSymbol("x", dim, 1), sp.MatrixSymbol("Du", dim, 1)
    return sm.ParabolicPDE(
        u,
        (t, x),
        terminal=sp.log((1 + sp.DotProduct(x, x)) / 2),
        horizon=horizon,
        x0=0.0,
        # ½ Tr(σσᵀ Hess u) = Δu with σ = √2 I.
        diffusion=sp.sqrt(2),
        nonlinearity=-lam_ * sp.DotProduct(du, du),
        gradient=du,
        parameters={lam_: lam},
    )


def settings(dim: int, quick: bool) -> dict:
    """Training settings. For d = 100, the paper's N = 20 steps and d+10
    wide networks, one network of (t, x) for all steps and 256 paths a step;
    for d = 1000, narrower networks and 64 paths a step (d+10 wide layers
    would cost a hundred times more per step)."""
    if quick:
        return dict(steps=300, time_steps=10, batch=64, hidden=(32, 32), samples=2**16)
    if dim <= 200:
        return dict(steps=3000, time_steps=20, batch=256, hidden=None, samples=2**22)
    return dict(steps=2000, time_steps=20, batch=64, hidden=(128, 128), samples=2**20)


def plot(path, history, reference, stderr, terminal_mean):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_est) = plt.subplots(1, 2, figsize=(11, 4))
    ax_loss.semilogy(np.arange(len(history["loss"])), history["loss"], lw=0.6)
    ax_loss.set_xlabel("training step")
    ax_loss.set_title("loss E|Y_N - g(X_N)|²")
    ax_est.plot(
        np.arange(len(history["estimate"])),
        history["estimate"],
        lw=1,
        label="deep BSDE u(0, x₀)",
    )
    ax_est.axhline(reference, color="k", lw=1, label="Monte Carlo reference")
    for sign in (-1, 1):
        ax_est.axhline(reference * (1 + sign * 2e-3), color="0.6", ls="--", lw=0.8)
    ax_est.axhline(terminal_mean, color="C3", ls=":", lw=1, label="E g(X_T) (∇u = 0)")
    ax_est.set_ylim(reference * 0.994, reference * 1.006)
    ax_est.set_xlabel("training step")
    ax_est.set_title(f"estimate (reference {reference:.4f} ± {stderr:.1e}; ±0.2 %)")
    ax_est.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/hjb_deep_bsde"))
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--dim", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    dim = args.dim or (10 if args.quick else 100)
    lam, horizon = 1.0, 1.0
    opts = settings(dim, args.quick)
    steps = args.steps or opts["steps"]

    pde = declare(dim, lam, horizon)

    # -- the reference: Monte Carlo over the Hopf–Cole formula ---------------------
    start = time.perf_counter()
    reference, stderr = sm.hjb_reference(
        pde,
        jnp.asarray(pde.x0, jnp.float32),
        key=jr.PRNGKey(10_000 + args.seed),
        lam=lam,
        horizon=horizon,
        samples=opts["samples"],
    )
    reference_seconds = time.perf_counter() - start
    print(
        f"reference u(0, x0) = {reference:.5f} ± {stderr:.1e} "
        f"({reference_seconds:.1f} s)"
    )
    # The baseline: E g(X_T), what the method would return with ∇u = 0 (it
    # is u(0, x0) when λ = 0). The estimate must do better than this.
    system = sm.sde.CompiledParabolicPDE(pde)
    xi = jr.normal(jr.PRNGKey(20_000 + args.seed), (2**16, dim), jnp.float32)
    terminal_mean = float(
        jnp.mean(
            jax.vmap(system.terminal)(
                jnp.asarray(pde.x0, jnp.float32) + jnp.sqrt(2.0 * horizon) * xi
            )
        )
    )

    # -- the deep BSDE method ---------------------------------------------------------
    method = sm.DeepBSDE(
        time_steps=opts["time_steps"],
        batch_size=opts["batch"],
        hidden=opts["hidden"],
    )
    # CPU time alongside wall time: on a machine shared with other work the
    # wall time says as much about the neighbours as about the method.
    cpu_start = time.process_time()
    result = sm.fit(pde, method=method, steps=steps, seed=args.seed, dtype=jnp.float32)
    cpu_seconds = time.process_time() - cpu_start
    history = {"loss": result.history["adam"], "estimate": result.estimates}
    for step in range(500, steps + 1, 500):
        estimate = float(history["estimate"][step - 1])
        print(
            f"  step {step:5d}  loss {history['loss'][step - 1]:.4e}  u(0, x0) "
            f"{estimate:.5f}  relative error "
            f"{abs(estimate - reference) / reference:.2e}"
        )
    relative_error = abs(result.estimate - reference) / abs(reference)
    summary = {
        "estimate": result.estimate,
        "reference": reference,
        "relative_error": relative_error,
        "dim": dim,
        "wall_seconds": result.wall_time,
        "cpu_seconds": cpu_seconds,
        "load_average": os.getloadavg()[0],
        "reference_stderr": stderr,
        "reference_samples": opts["samples"],
        "reference_seconds": reference_seconds,
        "initial_estimate": float(history["estimate"][0]),
        "terminal_mean": terminal_mean,
        "terminal_mean_relative_error": abs(terminal_mean - reference) / abs(reference),
        "final_loss": result.final_loss,
        "steps": steps,
        "time_steps": opts["time_steps"],
        "batch_size": opts["batch"],
        "networks": method.networks,
        "hidden": list(opts["hidden"]) if opts["hidden"] else [dim + 10, dim + 10],
        "seed": args.seed,
        "quick": args.quick,
        "devices": str(jax.devices()),
        "equation_latex": sp.latex(pde.equation),
    }
    atomic_write(
        args.out / "summary.json",
        lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2)),
    )
    if not args.no_plot:
        plot(args.out / "training.png", history, reference, stderr, terminal_mean)
    print(
        f"d = {dim}: u(0, x0) = {result.estimate:.5f} against {reference:.5f} "
        f"(relative error {100 * relative_error:.3f} %; E g(X_T) alone: "
        f"{100 * summary['terminal_mean_relative_error']:.3f} %), trained in "
        f"{result.wall_time:.1f} s; results in {args.out}/"
    )
    return summary


if __name__ == "__main__":
    main()
