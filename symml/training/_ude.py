"""Universal differential equations: an ODE solve inside the loss."""

import time
from dataclasses import dataclass

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._errors import DataError, FitError
from ..dsl import Model
from ..lowering import CompiledRHS, Params, init_params
from ..dsl._data import Data, _name, as_datasets
from ._optim import Phase, adam, lbfgs, run_phases
from ._penalty import compile_penalty
from ._progress import Progress
from ._result import FitResult, SolverOptions


class _Trainable(eqx.Module):
    params: Params
    initial: tuple  # the unobserved entries of each trajectory's initial state
    nodes: tuple = ()  # multiple shooting: per trajectory, (segments - 1, n)


class _Static(eqx.Module):
    rhs: CompiledRHS = eqx.field(static=True)
    options: SolverOptions = eqx.field(static=True)
    names: tuple = eqx.field(static=True)
    free: tuple = eqx.field(static=True)  # per trajectory: indices trained
    observed: tuple = eqx.field(static=True)  # per trajectory: observed indices
    owner: tuple = eqx.field(static=True)  # per observed column: its state's index
    y0: tuple  # per trajectory: initial state with observed entries
    ts: tuple
    ys: tuple  # per trajectory: observations (T, n_observed)
    scale: jax.Array  # per state: normalisation of its squared error
    units: dict  # per trainable parameter: the unit it is optimised in
    # Multiple shooting: per trajectory, the time indices where segments start
    # (and the last index); a single segment is a plain solve.
    segments: tuple = eqx.field(static=True, default=())
    state_of: tuple = eqx.field(static=True, default=())  # flat index -> state
    continuity: float = eqx.field(static=True, default=0.0)
    penalties: tuple = ()  # CompiledPenalty terms added to the loss


def _with_units(params: Params, units: dict, *, divide: bool = False) -> Params:
    """`params` with each trainable value multiplied (or divided) by its unit."""
    op = jnp.divide if divide else jnp.multiply
    values = {k: op(v, units[k]) for k, v in params.values.items()}
    return Params(values, params.networks)


def _solver(solver) -> dfx.AbstractSolver:
    if solver is None:
        return dfx.Tsit5()
    if isinstance(solver, str):
        cls = getattr(dfx, solver, None)
        if not (isinstance(cls, type) and issubclass(cls, dfx.AbstractSolver)):
            raise FitError(
                f"`solver={solver!r}` is not a diffrax solver; use a name such as "
                "'Tsit5', 'Dopri5' or 'Kvaerno5', or a solver instance."
            )
        return cls()
    if isinstance(solver, dfx.AbstractSolver):
        return solver
    raise FitError(f"`solver` must be a diffrax solver or its name; got {solver!r}.")


_ADJOINTS = {
    "recursive": dfx.RecursiveCheckpointAdjoint,
    "backsolve": dfx.BacksolveAdjoint,
    "direct": dfx.DirectAdjoint,
}


def _adjoint(adjoint) -> dfx.AbstractAdjoint:
    if adjoint is None:
        return dfx.RecursiveCheckpointAdjoint()
    if isinstance(adjoint, dfx.AbstractAdjoint):
        return adjoint
    if adjoint in _ADJOINTS:
        return _ADJOINTS[adjoint]()
    raise FitError(
        f"`adjoint={adjoint!r}` is not known; use one of {', '.join(_ADJOINTS)} or a "
        "diffrax adjoint instance."
    )


@dataclass(frozen=True)
class _Layout:
    """Where each observable state lives in the flat ODE state vector."""

    names: tuple[str, ...]
    index: dict  # name -> flat indices (np.ndarray)
    shape: dict  # name -> shape of one observation (() for an ODE state)
    n: int

    @classmethod
    def of(cls, system) -> "_Layout":
        if isinstance(system, CompiledRHS):
            names = system.state_names
            return cls(
                names,
                {n: np.array([i]) for i, n in enumerate(names)},
                dict.fromkeys(names, ()),
                len(names),
            )
        names = tuple(system.state_names)
        index = {n: np.arange(system.n)[system.state_slice(n)] for n in names}
        return cls(names, index, dict.fromkeys(names, tuple(system.shape)), system.n)


def _prepare(layout: _Layout, datasets: list[Data], initial: dict, dtype):
    names = layout.names
    for d in datasets:
        d.check_against(names, layout.shape)
    initial = {_name(k): v for k, v in (initial or {}).items()}
    free, observed, owner, y0s, ts, ys, free_init = [], [], [], [], [], [], []
    for d in datasets:
        y0 = np.zeros(layout.n)
        init = np.zeros(layout.n)
        obs, trained = [], []
        for name in names:
            idx = layout.index[name]
            if name in d.values:
                y0[idx] = d.values[name][0].ravel()
                obs.append(idx)
            else:
                trained.append(idx)
                init[idx] = np.broadcast_to(
                    np.asarray(initial.get(name, 0.0), float), layout.shape[name]
                ).ravel()
        obs_idx = np.concatenate(obs) if obs else np.zeros(0, int)
        free_idx = np.concatenate(trained) if trained else np.zeros(0, int)
        free.append(tuple(free_idx.tolist()))
        free_init.append(jnp.asarray(init[free_idx], dtype))
        observed.append(tuple(obs_idx.tolist()))
        owner.append(
            tuple(
                i
                for i, name in enumerate(names)
                if name in d.values
                for _ in layout.index[name]
            )
        )
        y0s.append(jnp.asarray(y0, dtype))
        ts.append(jnp.asarray(d.t, dtype))
        ys.append(
            jnp.asarray(
                np.concatenate(
                    [
                        d.values[name].reshape(d.t.size, -1)
                        for name in names
                        if name in d.values
                    ],
                    axis=1,
                ),
                dtype,
            )
        )
    # Each state's squared error is divided by the variance of its observations,
    # so states of different magnitudes weigh the same.
    scale = np.ones(len(names))
    for i, name in enumerate(names):
        vals = [d.values[name].ravel() for d in datasets if name in d.values]
        if vals:
            v = np.concatenate(vals)
            scale[i] = max(np.var(v), 1e-3 * np.mean(v**2), 1e-12)
    return free, observed, owner, y0s, ts, ys, free_init, jnp.asarray(scale, dtype)


def _loss(x: _Trainable, s: _Static):
    n = len(s.names)
    per_state = jnp.zeros(n, s.scale.dtype)
    counts = jnp.zeros(n, s.scale.dtype)
    continuity = jnp.zeros((), s.scale.dtype)
    failed = jnp.asarray(False)
    params = _with_units(x.params, s.units)
    for j in range(len(s.ts)):
        y0 = s.y0[j]
        if s.free[j]:
            y0 = y0.at[np.asarray(s.free[j])].set(x.initial[j])
        bounds = s.segments[j] if s.segments else (0, len(s.ts[j]) - 1)
        starts = [y0, *(x.nodes[j] if s.segments else ())]
        owner = np.asarray(s.owner[j])
        observed = np.asarray(s.observed[j])
        for k in range(len(bounds) - 1):
            a, b = bounds[k], bounds[k + 1]
            sol = s.options.solve(s.rhs, params, starts[k], s.ts[j][a : b + 1])
            failed = failed | (sol.result != dfx.RESULTS.successful)
            last = k == len(bounds) - 2
            # A segment's end point is the next segment's (trainable) start.
            stop = b + 1 if last else b
            err = (sol.ys[: stop - a, observed] - s.ys[j][a:stop]) ** 2
            per_state += jax.ops.segment_sum(jnp.sum(err, axis=0), owner, n)
            counts += np.bincount(owner, minlength=n) * err.shape[0]
            if not last:
                scale = s.scale[np.asarray(s.state_of)]
                gap = (sol.ys[-1] - starts[k + 1]) ** 2 / scale
                continuity += jnp.mean(gap)
    observed = counts > 0
    terms = jnp.where(observed, per_state / jnp.maximum(counts, 1) / s.scale, 0.0)
    loss = jnp.sum(terms) / jnp.sum(observed)
    extra = {}
    if s.segments:
        extra["continuity"] = s.continuity * continuity
        loss = loss + extra["continuity"]
    for penalty in s.penalties:
        extra[penalty.name] = penalty(params)
        loss = loss + extra[penalty.name]
    loss = jnp.where(failed, jnp.inf, loss)
    return loss, {name: terms[i] for i, name in enumerate(s.names)} | extra | {
        "solver": jnp.where(failed, jnp.inf, 0.0)
    }


def _shooting_nodes(segments: int, ts, ys, y0, observed, free, free_init, dtype):
    """Segment bounds (time indices) and initial node states for one trajectory:
    observed entries from the data at each node, the others from `initial`."""
    size = len(ts)
    if segments < 2 or segments > size - 1:
        raise FitError(
            f"`shooting={segments}` segments do not fit a trajectory of {size} "
            f"times; use between 2 and {size - 1}, or `shooting=None`."
        )
    bounds = tuple(int(round(b)) for b in np.linspace(0, size - 1, segments + 1))
    nodes = []
    for b in bounds[1:-1]:
        node = jnp.asarray(y0, dtype).at[np.asarray(observed)].set(ys[b])
        if free:
            node = node.at[np.asarray(free)].set(free_init)
        nodes.append(node)
    return bounds, jnp.stack(nodes)


def _penalties(penalties, system, model, rhs, seed, dtype) -> tuple:
    if not penalties:
        return ()
    if not isinstance(system, Model):
        raise FitError(
            "Penalties are supported for ODE models; this is a discretised PDE."
        )
    # A generator of its own, so adding a penalty leaves the networks' seeds be.
    rng = np.random.default_rng([seed, 1])
    return tuple(
        compile_penalty(p, i, model, rhs.scheme, rng, dtype)
        for i, p in enumerate(penalties)
    )


def build_loss(
    system,
    datasets: list[Data],
    *,
    seed: int = 0,
    solver=None,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    adjoint=None,
    max_steps: int = 4096,
    initial: dict | None = None,
    shooting: int | None = None,
    continuity: float = 10.0,
    penalties=(),
    derivatives=None,
    dtype=None,
):
    """Everything `fit_ude` optimises: `_loss(trainable, static)` is the loss.
    Also used by `benchmarks/ude_overhead.py`, which times exactly this loss."""
    if dtype is None:
        dtype = jnp.zeros(()).dtype
    options = SolverOptions(_solver(solver), rtol, atol, _adjoint(adjoint), max_steps)
    if isinstance(system, Model):
        model, rhs = system, CompiledRHS(system, derivatives)
    else:
        model, rhs = system.model, system
    layout = _Layout.of(rhs)
    # Unknown terms start small, so the first solves follow the known physics.
    params = init_params(model, key=jr.PRNGKey(seed), dtype=dtype, final_scale=0.1)
    free, observed, owner, y0s, ts, ys, free_init, scale = _prepare(
        layout, datasets, initial, dtype
    )
    # Trainable parameters are optimised in units of their initial magnitude:
    # Adam moves every variable by about the learning rate per step, which
    # would push a parameter of size 0.01 (a diffusion coefficient) through
    # zero within a few steps; in these units a step is a fraction of it.
    units = {
        k: jnp.asarray(float(abs(v)) if float(v) != 0 else 1.0, dtype)
        for k, v in params.values.items()
    }
    if not any(observed):
        raise DataError("The data observe no state of the model.")
    segments, nodes = (), ()
    if shooting is not None:
        shot = [
            _shooting_nodes(shooting, *args, dtype)
            for args in zip(ts, ys, y0s, observed, free, free_init, strict=True)
        ]
        segments = tuple(b for b, _ in shot)
        nodes = tuple(n for _, n in shot)
    state_of = np.zeros(layout.n, int)
    for i, name in enumerate(layout.names):
        state_of[layout.index[name]] = i
    static = _Static(
        rhs,
        options,
        layout.names,
        tuple(free),
        tuple(observed),
        tuple(owner),
        tuple(y0s),
        tuple(ts),
        tuple(ys),
        scale,
        units,
        segments,
        tuple(state_of.tolist()),
        float(continuity),
        _penalties(penalties, system, model, rhs, seed, dtype),
    )
    trainable = _Trainable(
        _with_units(params, units, divide=True), tuple(free_init), nodes
    )
    return model, rhs, options, layout, trainable, static, (y0s, free, units)


def fit_ude(
    system,
    data,
    *,
    seed: int = 0,
    steps: int = 1000,
    learning_rate: float = 3e-3,
    lbfgs_steps: int = 500,
    phases: list[Phase] | None = None,
    solver=None,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    adjoint=None,
    max_steps: int = 4096,
    initial: dict | None = None,
    shooting: int | None = None,
    continuity: float = 10.0,
    penalties=(),
    derivatives=None,
    dtype=None,
    progress: bool | None = None,
) -> FitResult:
    """Fit an ODE system (a `Model` of ODEs, or a discretised PDE) to data."""
    datasets = as_datasets(data)
    model, rhs, options, layout, trainable, static, (y0s, free, units) = build_loss(
        system,
        datasets,
        seed=seed,
        solver=solver,
        rtol=rtol,
        atol=atol,
        adjoint=adjoint,
        max_steps=max_steps,
        initial=initial,
        shooting=shooting,
        continuity=continuity,
        penalties=penalties,
        derivatives=derivatives,
        dtype=dtype,
    )
    if phases is None:
        phases = [adam(steps, learning_rate), lbfgs(lbfgs_steps)]
    start = time.perf_counter()

    def result(x: _Trainable, history) -> FitResult:
        initial_states = tuple(
            y0.at[np.asarray(f)].set(init) if f else y0
            for y0, f, init in zip(y0s, free, x.initial, strict=True)
        )
        return FitResult(
            model,
            rhs,
            _with_units(x.params, units),
            initial_states,
            tuple(datasets),
            history,
            time.perf_counter() - start,
            options,
        )

    def on_failure(error, last_good, history):
        error.result = result(last_good, history)
        return error

    trainable, history = run_phases(
        _loss,
        trainable,
        static,
        phases,
        progress=Progress(progress),
        on_failure=on_failure,
    )
    return result(trainable, history)
