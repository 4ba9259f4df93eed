"""The cost and the correctness of sharding a fit over devices.

Times one training step (Adam, in the fit loop's compiled chunks) of

- a physics-informed Burgers fit (a 4×64 tanh network, 32768 collocation
  points), unsplit and with its points split over 2 and 4 devices;
- an ensemble of 32 Lotka–Volterra UDE fits (members stepping side by side),
  unsplit and with its members split over 2 and 4 devices (one program per
  device, each on its own members, run at the same time: no collectives);
- a 2-D reaction–diffusion UDE on a 256×256 periodic grid (a network
  reaction term; its right-hand side, and a training step through a short
  solve), unsplit and with its grid split along x over 2 and 4 devices
  (domain decomposition);

each device count in a subprocess of its own with that many CPU devices
forced (`--xla_force_host_platform_device_count`): on the same two cores, a
split can only cost, so the ratio to one device is the overhead of
sharding. Each subprocess also evaluates the loss and the gradient at the
same initial parameters; their disagreement across device counts is
reported. The two-process run of `examples/multiprocess_fit.py` is compared
with the same fit in one process. Last, a model of data-parallel scaling on
accelerators: a step costs its compute, split over p devices, plus a ring
all-reduce of the gradient, `2 (p − 1) (α + B / (p β))` for B gradient bytes,
link bandwidth β and per-message latency α.

    python benchmarks/scaling.py [--quick] [--seed N] [--out DIR]

`--out DIR` writes `DIR/summary.json` with `overhead_2_devices_pinn`,
`overhead_4_devices_pinn`, `overhead_2_devices_ensemble`,
`max_relative_disagreement`, `multiprocess_max_relative_disagreement`,
`overhead_2_devices_grid`, `overhead_4_devices_grid` and
`max_relative_disagreement_grid`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEVICE_COUNTS = (1, 2, 4)
# The reaction–diffusion grid: GRID × GRID points, split along x.
GRID = 256
# The interconnect the scaling model assumes: PCIe 4.0 x16 between GPUs
# (about 25 GB/s each way in practice) and 10 µs per message of a ring step
# (small-message NCCL latency over PCIe); NVLink (~300 GB/s) for comparison.
BANDWIDTH = 25e9
NVLINK_BANDWIDTH = 300e9
LATENCY = 10e-6


def child(devices: int, quick: bool, seed: int, out: Path) -> None:
    """Run in a subprocess with `devices` forced CPU devices."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import sympy as sp

    import symml as sm
    from symml.training._ensemble import _stack
    from symml.training._loop import _compile, _make_chunk, _new_carry, adam
    from symml.training._shard import Placement, auto, for_mesh

    assert jax.device_count() == devices
    mesh = None if devices == 1 else auto(jax.make_mesh((devices,), ("data",)))
    # Calls of `steps` steps each (of a compiled chunk of `CHUNK`).
    repeats, steps = (2, 5) if quick else (5, 10)
    record = {"devices": devices}

    def flat(tree):
        return np.concatenate([np.ravel(np.asarray(a)) for a in jax.tree.leaves(tree)])

    def time_steps(problem, placement, members):
        """Median seconds per step over `repeats` calls of `steps` steps."""
        x, x_static = eqx.partition(problem.trainable, eqx.is_array)
        phase = adam(10**6, 1e-3)
        chunk = _compile(
            _make_chunk(problem.loss, phase, x_static, final=False, members=members),
            placement,
        )
        if members:
            carry = eqx.filter_vmap(
                lambda x: _new_carry(x, phase.optimizer, jnp.float32)
            )(x)
        else:
            carry = _new_carry(x, phase.optimizer, jnp.float32)
        static = problem.static
        n = jnp.asarray(steps, jnp.int32)
        if placement is not None:
            carry, static = placement.carry(carry), placement.static(static)
            n = placement.scalar(n)
        start = time.perf_counter()
        carry, _ = chunk(carry, static, n)
        jax.block_until_ready(carry)
        compile_time = time.perf_counter() - start
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            carry, losses = chunk(carry, static, n)
            jax.block_until_ready((carry, losses))
            times.append((time.perf_counter() - start) / steps)
        return statistics.median(times), compile_time

    def value_and_grad(problem, placement, members):
        x, x_static = eqx.partition(problem.trainable, eqx.is_array)
        static = problem.static
        if placement is not None:
            x = (
                placement.carry(x)
                if members
                else jax.device_put(x, placement.replicated)
            )
            static = placement.static(static)

        def one(x, static):
            return problem.loss(eqx.combine(x, x_static), static)[0]

        f = jax.value_and_grad(one)
        if members:
            f = jax.vmap(f)
        value, grad = jax.jit(f)(x, static)
        return np.ravel(np.asarray(value)), flat(grad)

    # -- PINN: Burgers, 4×64, 32k points ----------------------------------
    t, x = sp.symbols("t x")
    u = sm.Field("u", (t, x), hidden=[16, 16] if quick else [64] * 4)
    burgers = sm.Model(
        [sp.Eq(u.diff(t) + u * u.diff(x), 0.01 / sp.pi * u.diff(x, 2))],
        conditions=[
            sp.Eq(u.subs(t, 0), -sp.sin(sp.pi * x)),
            sp.Eq(u.subs(x, -1), 0),
            sp.Eq(u.subs(x, 1), 0),
        ],
        domain={t: (0, 1), x: (-1, 1)},
    )
    points = 1024 if quick else 32768
    method = sm.PhysicsInformed(points=points, boundary_points=128 if quick else 512)
    problem = method.prepare(burgers, None, seed=seed, dtype=jnp.float32, init=None)
    placement = None
    if mesh is not None:
        problem = for_mesh(problem, mesh, "PhysicsInformed")
        placement = Placement(mesh, problem.shard)
    record["pinn_step_seconds"], record["pinn_compile_seconds"] = time_steps(
        problem, placement, False
    )
    value, grad = value_and_grad(problem, placement, False)
    record["pinn_loss"], record["pinn_grad"] = value.tolist(), grad.tolist()
    record["pinn_parameters"] = int(
        sum(
            a.size for a in jax.tree.leaves(eqx.filter(problem.trainable, eqx.is_array))
        )
    )
    record["pinn_points"] = points

    # -- Ensemble: 32 Lotka–Volterra UDEs ---------------------------------
    sys.path.insert(0, str(ROOT / "examples"))
    from lotka_volterra import ALPHA, DELTA, make_data

    tau = sp.Symbol("t")
    a, b = sm.states("x y", tau)
    alpha, delta = sp.symbols("alpha delta")
    U = sm.Unknown("U", inputs=[a, b], outputs=2, hidden=[8] if quick else [32, 32])
    model = sm.Model(
        [sp.Eq(a.diff(tau), alpha * a + U[0]), sp.Eq(b.diff(tau), -delta * b + U[1])],
        parameters={alpha: ALPHA, delta: DELTA},
    )
    _, ts, noisy = make_data(seed)
    data = sm.Data(ts, {a: noisy[:, 0], b: noisy[:, 1]})
    members = 4 if quick else 32
    ude = sm.SolveInLoop()
    problems = [
        ude.prepare(model, data, seed=s, dtype=jnp.float32, init=None)
        for s in range(seed, seed + members)
    ]
    ensemble = sm.training._loop.Problem(
        loss=problems[0].loss,
        trainable=_stack([p.trainable for p in problems], "parameters"),
        static=_stack([p.static for p in problems], "data"),
        result=problems[0].result,
        members=members,
    )
    placement = None if mesh is None else Placement(mesh, members=True)
    record["ensemble_step_seconds"], record["ensemble_compile_seconds"] = time_steps(
        ensemble, placement, True
    )
    value, grad = value_and_grad(ensemble, placement, True)
    record["ensemble_loss"], record["ensemble_grad"] = value.tolist(), grad.tolist()
    record["ensemble_members"] = members

    # -- Grid: a 2-D reaction–diffusion UDE, its grid split along x -------
    grid_record = grid_child(mesh, quick, seed, time_steps, value_and_grad)
    record.update(grid_record)
    record["load_average"] = os.getloadavg()
    (out / f"devices-{devices}.json").write_text(json.dumps(record))


def grid_child(mesh, quick, seed, time_steps, value_and_grad) -> dict:
    """ρ_t = N(ρ) + D (ρ_xx + ρ_yy) on a periodic square, N a network: the
    right-hand side alone, and a training step of a UDE fit (the gradient
    through a short solve), with the grid split along x over the mesh."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import sympy as sp

    import symml as sm
    from symml.training._shard import Placement, for_mesh

    t, x, y = sp.symbols("t x y")
    (rho,) = sm.states("rho", t, x, y)
    N = sm.Unknown("N", inputs=[rho], outputs=1, hidden=[16, 16])
    D = sp.Symbol("D")
    model = sm.Model(
        [sp.Eq(rho.diff(t), N[0] + D * (rho.diff(x, 2) + rho.diff(y, 2)))],
        parameters={D: 1e-4},
        domain={x: (0, 1), y: (0, 1)},
        boundary="periodic",
    )
    size = 64 if quick else GRID
    system = sm.discretize(model, {x: size, y: size})
    xs, ys = system.grid[x][:, None], system.grid[y][None]
    bump = 0.02 + 0.88 * np.exp(-((xs - 0.5) ** 2 + (ys - 0.5) ** 2) / 0.02)
    ts = np.linspace(0.0, 0.1, 5)
    # Logistic growth of the bump: data for the fit's loss.
    values = bump / (bump + (1 - bump) * np.exp(-ts[:, None, None]))
    data = sm.Data(ts, {rho: values})
    method = sm.SolveInLoop(rtol=1e-4, atol=1e-6)
    problem = method.prepare(system, data, seed=seed, dtype=jnp.float32, init=None)
    placement = None
    if mesh is not None:
        problem = for_mesh(problem, mesh, "SolveInLoop")
        placement = Placement(mesh, problem.shard)
    split = problem.static.system
    record = {"grid_points": int(system.size), "grid_shape": list(system.shape)}

    # The right-hand side on its own.
    params = sm.init_params(model, key=jax.random.PRNGKey(seed), dtype=jnp.float32)
    u = jnp.asarray(bump.ravel(), jnp.float32)
    if placement is not None:
        params = jax.device_put(params, placement.replicated)
        u = jax.device_put(u, placement.replicated)
    rhs = eqx.filter_jit(lambda u, p: split(0.0, u, p))
    jax.block_until_ready(rhs(u, params))
    repeats = 20 if quick else 50
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            value = rhs(u, params)
        jax.block_until_ready(value)
        times.append((time.perf_counter() - start) / repeats)
    record["grid_rhs_seconds"] = statistics.median(times)
    record["grid_rhs"] = np.asarray(value).tolist()
    if placement is not None:
        text = jax.jit(lambda u, p: split(0.0, u, p)).lower(u, params).compile()
        text = text.as_text()
        record["grid_collectives"] = {
            op: text.count(f"{op}(")
            for op in ("collective-permute", "all-gather", "all-reduce", "all-to-all")
        }
    # A training step: Adam on the loss through the solve.
    record["grid_step_seconds"], record["grid_compile_seconds"] = time_steps(
        problem, placement, False
    )
    value, grad = value_and_grad(problem, placement, False)
    record["grid_loss"], record["grid_grad"] = value.tolist(), grad.tolist()
    return record


def run_child(devices: int, args) -> dict:
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
        PYTHONPATH=str(ROOT),
    )
    command = [sys.executable, os.path.abspath(__file__), "--child", str(devices)]
    command += ["--seed", str(args.seed), "--out", str(args.out)]
    command += ["--quick"] if args.quick else []
    subprocess.run(command, env=env, check=True, timeout=3600)
    return json.loads((args.out / f"devices-{devices}.json").read_text())


def relative(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def allreduce_seconds(nbytes: float, p: int, bandwidth: float) -> float:
    """A ring all-reduce: 2 (p − 1) steps, each moving nbytes / p."""
    return 2 * (p - 1) * (LATENCY + nbytes / p / bandwidth)


def efficiency(step: float, nbytes: float, p: int, bandwidth: float) -> float:
    """Data-parallel efficiency on p devices of a step of `step` seconds on
    one: (step / p) / (step / p + all-reduce), no overlap assumed."""
    return (step / p) / (step / p + allreduce_seconds(nbytes, p, bandwidth))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/scaling"))
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.child:
        child(args.child, args.quick, args.seed, args.out)
        return {}
    load_before = os.getloadavg()
    runs = {d: run_child(d, args) for d in DEVICE_COUNTS}
    one = runs[1]
    disagreement = max(
        max(
            relative(runs[d]["pinn_loss"], one["pinn_loss"]),
            relative(runs[d]["pinn_grad"], one["pinn_grad"]),
            relative(runs[d]["ensemble_loss"], one["ensemble_loss"]),
            relative(runs[d]["ensemble_grad"], one["ensemble_grad"]),
        )
        for d in DEVICE_COUNTS[1:]
    )
    grid_disagreement = max(
        max(
            relative(runs[d]["grid_rhs"], one["grid_rhs"]),
            relative(runs[d]["grid_loss"], one["grid_loss"]),
            relative(runs[d]["grid_grad"], one["grid_grad"]),
        )
        for d in DEVICE_COUNTS[1:]
    )
    sys.path.insert(0, str(ROOT / "examples"))
    from multiprocess_fit import main as multiprocess

    group = multiprocess(
        [
            "--quick",
            "--processes",
            "2",
            "--seed",
            str(args.seed),
            "--out",
            str(args.out / "multiprocess"),
        ]
    )
    # The gradient all-reduced per step: float32 parameters.
    nbytes = 4 * one["pinn_parameters"]
    step = one["pinn_step_seconds"]
    target = 0.9
    # The one-device step time above which 8 devices reach `target`:
    # step / 8 >= target / (1 - target) × all-reduce.
    needed = 8 * target / (1 - target) * allreduce_seconds(nbytes, 8, BANDWIDTH)
    summary = {
        "quick": args.quick,
        "seed": args.seed,
        "pinn_points": one["pinn_points"],
        "ensemble_members": one["ensemble_members"],
        "pinn_step_seconds": {d: runs[d]["pinn_step_seconds"] for d in runs},
        "ensemble_step_seconds": {d: runs[d]["ensemble_step_seconds"] for d in runs},
        "compile_seconds": {
            d: [runs[d]["pinn_compile_seconds"], runs[d]["ensemble_compile_seconds"]]
            for d in runs
        },
        "overhead_2_devices_pinn": runs[2]["pinn_step_seconds"] / step,
        "overhead_4_devices_pinn": runs[4]["pinn_step_seconds"] / step,
        "overhead_2_devices_ensemble": runs[2]["ensemble_step_seconds"]
        / one["ensemble_step_seconds"],
        "overhead_4_devices_ensemble": runs[4]["ensemble_step_seconds"]
        / one["ensemble_step_seconds"],
        "ensemble_note": "members split over the devices: one program per device "
        "(each an independent loop over its members' solves, called from a thread "
        "of its own, no collectives); the loss and gradient check runs the "
        "members as one program partitioned by XLA",
        "grid_shape": one["grid_shape"],
        "grid_step_seconds": {d: runs[d]["grid_step_seconds"] for d in runs},
        "grid_rhs_seconds": {d: runs[d]["grid_rhs_seconds"] for d in runs},
        "overhead_2_devices_grid": runs[2]["grid_step_seconds"]
        / one["grid_step_seconds"],
        "overhead_4_devices_grid": runs[4]["grid_step_seconds"]
        / one["grid_step_seconds"],
        "overhead_2_devices_grid_rhs": runs[2]["grid_rhs_seconds"]
        / one["grid_rhs_seconds"],
        "overhead_4_devices_grid_rhs": runs[4]["grid_rhs_seconds"]
        / one["grid_rhs_seconds"],
        "grid_collectives": {d: runs[d]["grid_collectives"] for d in DEVICE_COUNTS[1:]},
        "max_relative_disagreement_grid": grid_disagreement,
        "grid_note": "2-D periodic reaction-diffusion UDE (a 16x16 network term), "
        "grid split along x; step = Adam on the loss through a 5-time Tsit5 solve; "
        "disagreement over the RHS, the loss and the gradient, float32",
        "max_relative_disagreement": disagreement,
        "disagreement_note": "float32; loss and gradient at the same parameters, "
        "max |difference| / max |value| over 2 and 4 devices against 1",
        "multiprocess_max_relative_disagreement": group[
            "multiprocess_max_relative_disagreement"
        ],
        "multiprocess_note": "parameters after the quick fit of "
        "examples/multiprocess_fit.py, 2 processes x 1 device against 1 process",
        "scaling_model": {
            "gradient_bytes": nbytes,
            "bandwidth_bytes_per_second": BANDWIDTH,
            "latency_seconds_per_message": LATENCY,
            "allreduce_seconds_8_devices": allreduce_seconds(nbytes, 8, BANDWIDTH),
            "pinn_step_seconds_one_device_here": step,
            "predicted_efficiency_8_devices_pinn": efficiency(
                step, nbytes, 8, BANDWIDTH
            ),
            "predicted_efficiency_8_devices_pinn_nvlink": efficiency(
                step, nbytes, 8, NVLINK_BANDWIDTH
            ),
            "step_seconds_for_90_percent_at_8_devices": needed,
            "ensemble": "members are independent: no all-reduce, efficiency 1 "
            "up to the gather of results",
        },
        "load_average_before": load_before,
        "load_average": {d: runs[d]["load_average"] for d in runs},
        "load_average_after": os.getloadavg(),
    }
    from symml.export import atomic_write

    atomic_write(
        args.out / "summary.json",
        lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2)),
    )
    print(
        f"PINN step ({summary['pinn_points']} points): "
        + ", ".join(
            f"{d} dev {1e3 * s:.1f} ms" for d, s in summary["pinn_step_seconds"].items()
        )
    )
    print(
        f"ensemble step ({summary['ensemble_members']} members): "
        + ", ".join(
            f"{d} dev {1e3 * s:.1f} ms"
            for d, s in summary["ensemble_step_seconds"].items()
        )
    )
    print(
        f"overhead: PINN {summary['overhead_2_devices_pinn']:.2f}x (2), "
        f"{summary['overhead_4_devices_pinn']:.2f}x (4); ensemble "
        f"{summary['overhead_2_devices_ensemble']:.2f}x (2), "
        f"{summary['overhead_4_devices_ensemble']:.2f}x (4)"
    )
    print(
        f"grid {'x'.join(map(str, summary['grid_shape']))}: step "
        + ", ".join(
            f"{d} dev {1e3 * v:.1f} ms" for d, v in summary["grid_step_seconds"].items()
        )
        + "; RHS "
        + ", ".join(
            f"{d} dev {1e3 * v:.2f} ms" for d, v in summary["grid_rhs_seconds"].items()
        )
        + f"; disagreement {grid_disagreement:.1e}"
    )
    print(
        f"disagreement: devices {disagreement:.1e}, two processes "
        f"{summary['multiprocess_max_relative_disagreement']:.1e}"
    )
    model = summary["scaling_model"]
    print(
        f"8 devices, {nbytes} gradient bytes at {BANDWIDTH / 1e9:.0f} GB/s: "
        f"efficiency {model['predicted_efficiency_8_devices_pinn']:.2f} for this "
        f"step; 90 % needs a one-device step >= {1e3 * needed:.2f} ms"
    )
    return summary


if __name__ == "__main__":
    main()
