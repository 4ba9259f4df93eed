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
from ..lower import CompiledRHS, Params, init_params
from ._data import Data, _name, as_datasets
from ._optim import Phase, adam, lbfgs, run_phases
from ._progress import Progress
from ._result import FitResult, SolverOptions


class _Trainable(eqx.Module):
    params: Params
    initial: tuple  # the unobserved entries of each trajectory's initial state


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
    failed = jnp.asarray(False)
    for j in range(len(s.ts)):
        y0 = s.y0[j]
        if s.free[j]:
            y0 = y0.at[np.asarray(s.free[j])].set(x.initial[j])
        sol = s.options.solve(s.rhs, x.params, y0, s.ts[j])
        err = (sol.ys[:, np.asarray(s.observed[j])] - s.ys[j]) ** 2
        owner = np.asarray(s.owner[j])
        per_state += jax.ops.segment_sum(jnp.sum(err, axis=0), owner, n)
        counts += np.bincount(owner, minlength=n) * err.shape[0]
        failed = failed | (sol.result != dfx.RESULTS.successful)
    observed = counts > 0
    terms = jnp.where(observed, per_state / jnp.maximum(counts, 1) / s.scale, 0.0)
    loss = jnp.sum(terms) / jnp.sum(observed)
    loss = jnp.where(failed, jnp.inf, loss)
    return loss, {name: terms[i] for i, name in enumerate(s.names)} | {
        "solver": jnp.where(failed, jnp.inf, 0.0)
    }


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
    derivatives=None,
    dtype=None,
    progress: bool | None = None,
) -> FitResult:
    """Fit an ODE system (a `Model` of ODEs, or a discretised PDE) to data."""
    datasets = as_datasets(data)
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
    if not any(observed):
        raise DataError("The data observe no state of the model.")
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
    )
    trainable = _Trainable(params, tuple(free_init))
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
            x.params,
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
