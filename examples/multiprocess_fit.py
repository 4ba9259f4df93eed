"""One physics-informed fit run by several processes (`jax.distributed`).

The fit of y' = -y, y(0) = 1 on t in [0, 2] splits its collocation points
over the devices of every process (`fit(..., mesh=True)`); each process runs
the same script, and only process 0 writes results. Run as is, the script
launches the processes itself on localhost, waits for them, repeats the fit
in a single process and reports how far the two results are apart.

    # N processes on this machine (the script starts them):
    python examples/multiprocess_fit.py [--processes 2] [--quick] [--seed N] [--out DIR]
    # on a cluster, every process runs the script with `--worker`:
    srun -n 4 python examples/multiprocess_fit.py --worker --out DIR     # SLURM
    JAX_COORDINATOR_ADDRESS=10.0.0.1:1234 JAX_NUM_PROCESSES=4 \\
        JAX_PROCESS_ID=<i> python examples/multiprocess_fit.py --worker --out DIR
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

WORKER_TIMEOUT = 600  # seconds; the launcher stops the workers past it


def build(quick: bool):
    import sympy as sp

    import symml as sm

    t = sp.Symbol("t")
    y = sm.Field("y", [t], hidden=[16, 16] if quick else [32, 32])
    model = sm.Model(
        [sp.Eq(y.diff(t), -y)], conditions=[sp.Eq(y.subs(t, 0), 1)], domain={t: (0, 2)}
    )
    method = sm.PhysicsInformed(points=128 if quick else 1024, resample_every=20)
    steps, lbfgs_steps = (60, 10) if quick else (2000, 200)
    return model, method, steps, lbfgs_steps


def run_fit(quick: bool, seed: int, mesh) -> dict:
    """The fit, and what it gives: flat parameters, loss, error to exp(-t)."""
    import jax

    import symml as sm

    model, method, steps, lbfgs_steps = build(quick)
    start = time.perf_counter()
    result = sm.fit(
        model,
        method=method,
        seed=seed,
        steps=steps,
        lbfgs_steps=lbfgs_steps,
        mesh=mesh,
    )
    wall = time.perf_counter() - start
    ts = np.linspace(0.0, 2.0, 201)
    leaves = jax.tree.leaves(result.params)
    return {
        "params": np.concatenate([np.ravel(np.asarray(a)) for a in leaves]).tolist(),
        "final_loss": result.final_loss,
        "max_error": float(np.max(np.abs(result.predict(t=ts)["y"] - np.exp(-ts)))),
        "wall_time_seconds": wall,
        "devices": 1 if mesh is None else jax.device_count(),
        "processes": jax.process_count(),
        "platform": jax.default_backend(),
    }


def write_json(path: Path, content: dict) -> None:
    from symml.export import atomic_write

    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(content, indent=2)))


def worker(args) -> None:
    """One process of the group: join it, fit, and (process 0) write."""
    import symml as sm

    rank, count = sm.initialize_distributed()
    out = run_fit(args.quick, args.seed, mesh=True)
    if rank == 0:
        args.out.mkdir(parents=True, exist_ok=True)
        write_json(args.out / "multiprocess.json", out)
    print(f"process {rank} of {count}: final loss {out['final_loss']:.6g}")


def reference(args) -> None:
    """The same fit in one process on one device, for comparison."""
    write_json(args.out / "single.json", run_fit(args.quick, args.seed, mesh=None))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(processes: int, args, mode: str = "--worker") -> None:
    """Start `processes` workers on localhost with the environment a cluster
    launcher would set, and wait for them (bounded by `WORKER_TIMEOUT`)."""
    address = f"127.0.0.1:{free_port()}"
    command = [sys.executable, os.path.abspath(__file__), mode]
    command += ["--seed", str(args.seed), "--out", str(args.out)]
    command += ["--quick"] if args.quick else []
    workers = []
    for rank in range(processes):
        env = dict(
            os.environ,
            JAX_PLATFORMS="cpu",
            XLA_FLAGS=f"--xla_force_host_platform_device_count={args.devices}",
        )
        if mode == "--worker":
            env.update(
                JAX_COORDINATOR_ADDRESS=address,
                JAX_NUM_PROCESSES=str(processes),
                JAX_PROCESS_ID=str(rank),
            )
        workers.append(subprocess.Popen(command, env=env))
    deadline = time.monotonic() + WORKER_TIMEOUT
    try:
        for w in workers:
            code = w.wait(timeout=max(deadline - time.monotonic(), 1))
            if code:
                raise RuntimeError(f"a worker process exited with status {code}")
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/multiprocess_fit"))
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--devices", type=int, default=1, help="per process")
    parser.add_argument("--worker", action="store_true", help="one process of a group")
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return {}
    if args.single:
        reference(args)
        return {}
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("multiprocess.json", "single.json"):
        (args.out / name).unlink(missing_ok=True)
    start = time.perf_counter()
    launch(args.processes, args)
    group_wall = time.perf_counter() - start
    group = json.loads((args.out / "multiprocess.json").read_text())
    # The reference in a process of its own, with the workers' settings.
    launch(1, args, "--single")
    single = json.loads((args.out / "single.json").read_text())
    a, b = np.asarray(group["params"]), np.asarray(single["params"])
    summary = {
        "quick": args.quick,
        "seed": args.seed,
        "processes": args.processes,
        "devices": group["devices"],
        "platform": group["platform"],
        # Over the parameters, relative to their largest magnitude.
        "multiprocess_max_relative_disagreement": float(
            np.max(np.abs(a - b)) / np.max(np.abs(b))
        ),
        "final_loss_multiprocess": group["final_loss"],
        "final_loss_single": single["final_loss"],
        "max_error_multiprocess": group["max_error"],
        "max_error_single": single["max_error"],
        "wall_time_multiprocess_seconds": group_wall,
        "wall_time_single_seconds": single["wall_time_seconds"],
        "load_average": os.getloadavg(),
    }
    write_json(args.out / "summary.json", summary)
    print(
        f"{args.processes} processes x {args.devices} device(s): final loss "
        f"{group['final_loss']:.6g}; one process: {single['final_loss']:.6g}; "
        "parameters apart by "
        f"{summary['multiprocess_max_relative_disagreement']:.2e} (relative)"
    )
    return summary


if __name__ == "__main__":
    main()
