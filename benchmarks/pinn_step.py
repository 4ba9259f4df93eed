"""PINN training step time: symml against jinns, side by side.

Burgers' equation, u_t + u u_x = (0.01/π) u_xx on t ∈ [0, 1], x ∈ [−1, 1],
u(0, x) = −sin(πx), u(t, ±1) = 0; u a 4 × 64 tanh network of (t, x); 4096
collocation points, 256 points for the initial condition and 256 on each
boundary; Adam at 1e-3, float32, the same points in every step (symml with
`resample_every=None`, jinns without mini-batches). Both start from the same
weights on the same points, and their first losses are compared before any
time is.

Each implementation runs in its own process, once as it starts (the default)
and once with `symml.use_heap_allocator()` called first, so four worker
processes (plus, without `--quick`, symml with the `forward` and `reverse`
derivative schemes instead of its default `taylor`). They are compiled once
and then run in turns, one at a time, so they see the same machine: in each
round every worker trains `--chunks` chunks of 50 Adam steps. symml runs its
own fit loop (`lax.scan` over 50 steps per call, host work between calls)
and reports each chunk's time; jinns runs `jinns.solve` (all steps in one
compiled `while_loop`) for the round's steps and reports its own training
time, which leaves its compilation out. Step times are medians over chunks
(symml) and rounds (jinns), in milliseconds.

    python benchmarks/pinn_step.py [--quick] [--seed N] [--out DIR]
        [--rounds R] [--chunks K] [--no-schemes]

`--out DIR` writes `DIR/summary.json`: `step_ms_symml`,
`step_ms_symml_allocator`, `step_ms_reference` (jinns in a default process),
`step_ms_reference_allocator`, `ratio_default_vs_reference` (symml ÷ jinns,
both default), `ratio_allocator_vs_reference` (symml with the allocator
setting ÷ jinns in a default process), `allocator_speedup` (symml default ÷
symml with it), `loss_agreement` (relative difference of the first losses),
the load averages and the settings. Without jinns installed
(`pip install jinns`) the reference entries are `null`.
"""

import argparse
import contextlib
import io
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CHUNK = 50  # steps per timed chunk, as in symml's fit loop
NU = 0.01 / np.pi
_TAG = "@@ "  # prefix of the workers' protocol lines (jinns prints too)


def sizes(quick: bool) -> dict:
    if quick:
        return {"hidden": [16, 16], "points": 256, "boundary": 32}
    return {"hidden": [64] * 4, "points": 4096, "boundary": 256}


def make_setup(path: Path, *, hidden, points, boundary, seed) -> None:
    """The points and the initial weights both implementations start from.

    Weights are Glorot-normal for symml's network, which sees its inputs
    mapped to [−1, 1] (t ↦ 2t − 1); jinns' first layer takes that map in."""
    rng = np.random.default_rng(seed)
    interior = np.column_stack(
        [rng.uniform(0, 1, points), rng.uniform(-1, 1, points)]
    ).astype(np.float32)
    initial_x = rng.uniform(-1, 1, (boundary, 1)).astype(np.float32)
    boundary_t = rng.uniform(0, 1, (boundary, 1)).astype(np.float32)
    layer_sizes = [2, *hidden, 1]
    arrays = {}
    for i, (n_in, n_out) in enumerate(
        zip(layer_sizes[:-1], layer_sizes[1:], strict=True)
    ):
        std = np.sqrt(2.0 / (n_in + n_out))
        arrays[f"w{i}"] = (std * rng.standard_normal((n_out, n_in))).astype(np.float32)
        arrays[f"b{i}"] = (0.1 * rng.standard_normal(n_out)).astype(np.float32)
    np.savez(
        path,
        interior=interior,
        initial_x=initial_x,
        boundary_t=boundary_t,
        layers=len(layer_sizes) - 1,
        **arrays,
    )


# -- the workers -----------------------------------------------------------------


def _send(message: dict) -> None:
    sys.__stdout__.write(_TAG + json.dumps(message) + "\n")
    sys.__stdout__.flush()


def _command() -> str:
    line = sys.stdin.readline()
    return line.strip() or "quit"


class _Quit(Exception):
    pass


def symml_worker(setup, chunks: int, rounds: int, scheme: str) -> None:
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import sympy as sp

    import symml as sm
    from symml.training._loop import adam, optimize
    from symml.training._progress import Progress

    hidden = [int(setup[f"b{i}"].shape[0]) for i in range(int(setup["layers"]) - 1)]
    n_points = setup["interior"].shape[0]
    t, x = sp.symbols("t x")
    u = sm.Field("u", [t, x], hidden=hidden, activation="tanh")
    model = sm.Model(
        [sp.Eq(u.diff(t) + u * u.diff(x), 0.01 / sp.pi * u.diff(x, 2))],
        conditions=[
            sp.Eq(u.subs(t, 0), -sp.sin(sp.pi * x)),
            sp.Eq(u.subs(x, -1), 0),
            sp.Eq(u.subs(x, 1), 0),
        ],
        domain={t: (0, 1), x: (-1, 1)},
    )
    method = sm.PhysicsInformed(
        derivatives=scheme,
        points=n_points,
        boundary_points=setup["initial_x"].shape[0],
        resample_every=None,
    )
    problem = method.prepare(model, None, seed=0, dtype=jnp.float32, init=None)
    layers = int(setup["layers"])
    problem.trainable = eqx.tree_at(
        lambda p: (p.networks["u"].weights, p.networks["u"].biases),
        problem.trainable,
        (
            [jnp.asarray(setup[f"w{i}"]) for i in range(layers)],
            [jnp.asarray(setup[f"b{i}"]) for i in range(layers)],
        ),
    )
    bt = jnp.asarray(setup["boundary_t"])
    problem.static = eqx.tree_at(
        lambda s: s.points,
        problem.static,
        (jnp.asarray(setup["interior"]), jnp.asarray(setup["initial_x"]), bt, bt),
    )
    first_loss = float(jax.jit(problem.loss)(problem.trainable, problem.static)[0])

    class Clock(Progress):
        """Times each chunk and hands control back to the parent between
        rounds (the waiting is not timed)."""

        def __init__(self):
            super().__init__(False)
            self.seen = 0
            self.times = []
            self.resumed = time.perf_counter()

        def update(self, phase, step, total, loss, force=False):
            now = time.perf_counter()
            self.seen += 1
            if self.seen > 1:  # the first chunk compiles
                self.times.append(now - self.resumed)
            if self.seen > 1 and len(self.times) == chunks:
                _send({"step_s": [s / CHUNK for s in self.times], "loss": loss})
                self.times = []
                if _command() != "run":
                    raise _Quit
            self.resumed = time.perf_counter()

    _send({"ready": True, "first_loss": first_loss})
    if _command() != "run":
        return
    with contextlib.suppress(_Quit):
        optimize(
            problem,
            [adam(CHUNK * (1 + chunks * rounds), 1e-3, clip=None)],
            progress=Clock(),
        )


def jinns_worker(setup, chunks: int) -> None:
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import jinns
    import optax

    layers = int(setup["layers"])
    weights = [np.asarray(setup[f"w{i}"]) for i in range(layers)]
    biases = [np.asarray(setup[f"b{i}"]) for i in range(layers)]
    # symml's network maps t ∈ [0, 1] to 2t − 1 first; fold that into layer 0.
    scale = np.array([2.0, 1.0], np.float32)
    shift = np.array([-1.0, 0.0], np.float32)
    biases[0] = biases[0] + weights[0] @ shift
    weights[0] = weights[0] * scale
    eqx_list = []
    for w in weights:
        eqx_list += [(eqx.nn.Linear, w.shape[1], w.shape[0]), (jax.nn.tanh,)]
    eqx_list = tuple(eqx_list[:-1])
    key = jax.random.PRNGKey(0)
    u, nn_params = jinns.nn.PINN_MLP.create(
        key=key, eqx_list=eqx_list, eq_type="PDENonStatio"
    )
    linear = [lay for lay in nn_params.layers if isinstance(lay, eqx.nn.Linear)]
    nn_params = eqx.tree_at(
        lambda p: [
            leaf
            for lay in p.layers
            if isinstance(lay, eqx.nn.Linear)
            for leaf in (lay.weight, lay.bias)
        ],
        nn_params,
        [jnp.asarray(a) for w, b in zip(weights, biases, strict=True) for a in (w, b)],
    )
    assert len(linear) == layers
    interior = jnp.asarray(setup["interior"])
    initial = jnp.asarray(setup["initial_x"])
    bt = setup["boundary_t"][:, 0]
    border = np.stack(
        [np.stack([bt, bt], axis=-1), np.tile([-1.0, 1.0], (bt.size, 1))], axis=1
    ).astype(np.float32)
    data = jinns.data.CubicMeshPDENonStatio(
        key=key,
        n=interior.shape[0],
        nb=2 * bt.size,
        ni=initial.shape[0],
        dim=1,
        min_pts=(-1.0,),
        max_pts=(1.0,),
        tmin=0.0,
        tmax=1.0,
        method="uniform",
    )
    data = eqx.tree_at(
        lambda d: (d.domain, d.border, d.initial),
        data,
        (interior, jnp.asarray(border), initial),
    )
    params = jinns.parameters.Params(
        nn_params=nn_params, eq_params={"nu": jnp.asarray(NU, jnp.float32)}
    )
    loss = jinns.loss.LossPDENonStatio(
        u=u,
        dynamic_loss=jinns.loss.BurgersEquation(),
        loss_weights=jinns.loss.LossWeightsPDENonStatio(
            dyn_loss=1.0, initial_condition=1.0, boundary_loss=1.0
        ),
        boundary_condition=jinns.loss.Dirichlet(),
        initial_condition_fun=lambda x: -jnp.sin(jnp.pi * x),
        params=params,
    )
    optimizer = optax.adam(1e-3)
    first_loss = None

    def run(n_iter):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            out = jinns.solve(
                init_params=params,
                data=data,
                loss=loss,
                optimizer=optimizer,
                n_iter=n_iter,
                print_loss_every=10**9,
            )
            jax.block_until_ready(out[1])
        took = re.search(r"Training took\s+([0-9.eE+-]+)", printed.getvalue())
        return float(took.group(1)), np.asarray(out[1])

    _send({"ready": True, "first_loss": None})
    while _command() == "run":
        seconds, losses = run(CHUNK * chunks)
        if first_loss is None:
            first_loss = float(losses[0])
        _send(
            {
                "step_s": [seconds / (CHUNK * chunks)],
                "loss": float(losses[-1]),
                "first_loss": first_loss,
            }
        )


def worker(args) -> None:
    if args.allocator:
        import symml

        symml.use_heap_allocator()  # before any JAX computation
    setup = dict(np.load(args.setup))
    if args.worker == "symml":
        symml_worker(setup, args.chunks, args.rounds, args.scheme)
    else:
        jinns_worker(setup, args.chunks)


# -- the parent --------------------------------------------------------------------


class Worker:
    def __init__(self, name, argv):
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, __file__, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.steps: list[float] = []
        self.first_loss = None
        self.last_loss = None

    def receive(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith(_TAG):
                return json.loads(line[len(_TAG) :])
        raise RuntimeError(f"The {self.name} worker exited with {self.proc.wait()}.")

    def run(self) -> None:
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        message = self.receive()
        self.steps.extend(message["step_s"])
        self.last_loss = message["loss"]
        if message.get("first_loss") is not None:
            self.first_loss = message["first_loss"]

    def stop(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
        self.proc.wait(timeout=120)

    def median_ms(self) -> float:
        return 1e3 * statistics.median(self.steps)


def _has_jinns() -> bool:
    try:
        import jinns  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/pinn_step"))
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--chunks", type=int, default=None)
    parser.add_argument(
        "--no-schemes",
        action="store_true",
        help="leave out symml's forward and reverse schemes (run without --quick)",
    )
    parser.add_argument("--worker", choices=["symml", "jinns"], help=argparse.SUPPRESS)
    parser.add_argument("--allocator", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scheme", default="taylor", help=argparse.SUPPRESS)
    parser.add_argument("--setup", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 2)
    args.chunks = args.chunks or (1 if args.quick else 2)
    if args.worker:
        return worker(args)

    from symml.export import atomic_write

    size = sizes(args.quick)
    args.out.mkdir(parents=True, exist_ok=True)
    setup = args.out / "setup.npz"
    make_setup(setup, **size, seed=args.seed)
    common = [
        "--setup",
        str(setup),
        "--chunks",
        str(args.chunks),
        "--rounds",
        str(args.rounds),
    ]
    plan = {
        "symml": ["--worker", "symml"],
        "symml_allocator": ["--worker", "symml", "--allocator"],
    }
    jinns = _has_jinns()
    if jinns:
        plan["reference"] = ["--worker", "jinns"]
        plan["reference_allocator"] = ["--worker", "jinns", "--allocator"]
    if not args.quick and not args.no_schemes:
        for scheme in ("forward", "reverse"):
            plan[f"symml_{scheme}"] = ["--worker", "symml", "--scheme", scheme]
    loads = [os.getloadavg()]
    start = time.perf_counter()
    workers = [Worker(name, [*flags, *common]) for name, flags in plan.items()]
    try:
        for w in workers:  # set up one at a time
            ready = w.receive()
            w.first_loss = ready["first_loss"]
        for r in range(args.rounds):
            # Each round in another order, so that a drifting load falls on
            # every worker alike.
            turn = r % len(workers)
            for w in workers[turn:] + workers[:turn]:
                w.run()
            loads.append(os.getloadavg())
    finally:
        for w in workers:
            w.stop()
    setup.unlink()
    ms = {w.name: w.median_ms() for w in workers}
    first = {w.name: w.first_loss for w in workers}
    ref = ms.get("reference")
    agreement = (
        abs(first["symml"] - first["reference"]) / abs(first["reference"])
        if jinns
        else None
    )
    summary = {
        "seed": args.seed,
        "quick": args.quick,
        "settings": {
            **size,
            "chunk": CHUNK,
            "rounds": args.rounds,
            "chunks": args.chunks,
        },
        "step_ms_symml": ms["symml"],
        "step_ms_symml_allocator": ms["symml_allocator"],
        "step_ms_reference": ref,
        "step_ms_reference_allocator": ms.get("reference_allocator"),
        "ratio_default_vs_reference": ms["symml"] / ref if ref else None,
        "ratio_allocator_vs_reference": ms["symml_allocator"] / ref if ref else None,
        "allocator_speedup": ms["symml"] / ms["symml_allocator"],
        "reference": "jinns" if jinns else None,
        "loss_agreement": agreement,
        "first_loss": first,
        "samples_ms": {w.name: [1e3 * s for s in w.steps] for w in workers},
        "loadavg": loads,
        "wall_s": time.perf_counter() - start,
    }
    for scheme in ("forward", "reverse"):
        if f"symml_{scheme}" in ms:
            summary[f"step_ms_symml_{scheme}"] = ms[f"symml_{scheme}"]
    if jinns:
        from importlib.metadata import version

        summary["jinns_version"] = version("jinns")
    width = max(len(n) for n in ms)
    print(
        f"Burgers PINN, {size['hidden']} tanh, {size['points']} points, float32, "
        f"{args.rounds} rounds of {args.chunks}×{CHUNK} steps, side by side"
    )
    print(f"first losses {first}")
    for name, value in ms.items():
        ratio = f"{value / ref:8.3f}× jinns" if ref else ""
        print(f"{name:<{width}}  {value:9.2f} ms/step  {ratio}")
    if ref:
        met = summary["ratio_default_vs_reference"] <= 0.6
        print(f"target: symml default ≤ 0.6× jinns -> {'met' if met else 'MISSED'}")
    print(f"load averages {loads}")
    atomic_write(
        args.out / "summary.json",
        lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2)),
    )
    return summary


if __name__ == "__main__":
    main()
