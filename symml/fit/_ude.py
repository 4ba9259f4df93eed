"""Universal differential equations: an ODE solve inside the loss."""

import time

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._errors import DataError, FitError
from ..dsl import Model
from ..lower import CompiledRHS, Params, init_params
from ..lower._lower import _scheme
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


def _prepare(model: Model, datasets: list[Data], initial: dict, dtype):
    names = model.state_names
    n = len(names)
    for d in datasets:
        d.check_against(names)
    initial = {_name(k): v for k, v in (initial or {}).items()}
    free, observed, y0s, ts, ys, free_init = [], [], [], [], [], []
    for d in datasets:
        obs = tuple(i for i, name in enumerate(names) if name in d.values)
        y0 = np.zeros(n)
        trained = []
        for i, name in enumerate(names):
            if name in d.values:
                y0[i] = d.values[name][0]
            else:
                trained.append(i)
        free.append(tuple(trained))
        free_init.append(
            jnp.asarray([float(initial.get(names[i], 0.0)) for i in trained], dtype)
        )
        observed.append(obs)
        y0s.append(jnp.asarray(y0, dtype))
        ts.append(jnp.asarray(d.t, dtype))
        ys.append(jnp.asarray(np.stack([d.values[names[i]] for i in obs], 1), dtype))
    # Each state's squared error is divided by the variance of its observations,
    # so states of different magnitudes weigh the same.
    scale = np.ones(n)
    for i, name in enumerate(names):
        vals = [d.values[name] for d in datasets if name in d.values]
        if vals:
            v = np.concatenate(vals)
            scale[i] = max(np.var(v), 1e-3 * np.mean(v**2), 1e-12)
    return free, observed, y0s, ts, ys, free_init, jnp.asarray(scale, dtype)


def _loss(x: _Trainable, s: _Static):
    per_state = jnp.zeros(len(s.names), s.scale.dtype)
    counts = jnp.zeros(len(s.names), s.scale.dtype)
    failed = jnp.asarray(False)
    for j in range(len(s.ts)):
        y0 = s.y0[j]
        if s.free[j]:
            y0 = y0.at[jnp.asarray(s.free[j])].set(x.initial[j])
        sol = s.options.solve(s.rhs, x.params, y0, s.ts[j])
        idx = jnp.asarray(s.observed[j])
        err = (sol.ys[:, idx] - s.ys[j]) ** 2
        per_state = per_state.at[idx].add(jnp.sum(err, axis=0))
        counts = counts.at[idx].add(err.shape[0])
        failed = failed | (sol.result != dfx.RESULTS.successful)
    observed = counts > 0
    terms = jnp.where(observed, per_state / jnp.maximum(counts, 1) / s.scale, 0.0)
    loss = jnp.sum(terms) / jnp.sum(observed)
    loss = jnp.where(failed, jnp.inf, loss)
    return loss, {name: terms[i] for i, name in enumerate(s.names)} | {
        "solver": jnp.where(failed, jnp.inf, 0.0)
    }


def fit_ude(
    model: Model,
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
    datasets = as_datasets(data)
    if dtype is None:
        dtype = jnp.zeros(()).dtype
    options = SolverOptions(_solver(solver), rtol, atol, _adjoint(adjoint), max_steps)
    rhs = CompiledRHS(model, _scheme(derivatives))
    # Unknown terms start small, so the first solves follow the known physics.
    params = init_params(model, key=jr.PRNGKey(seed), dtype=dtype, final_scale=0.1)
    free, observed, y0s, ts, ys, free_init, scale = _prepare(
        model, datasets, initial, dtype
    )
    if not any(observed):
        raise DataError("The data observe no state of the model.")
    static = _Static(
        rhs,
        options,
        model.state_names,
        tuple(free),
        tuple(observed),
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
            y0.at[jnp.asarray(f)].set(init) if f else y0
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
