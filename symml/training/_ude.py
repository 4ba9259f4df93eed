"""Universal differential equations: an ODE solve inside the loss."""

from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._diffrax import SolveOptions, check_times, diffeqsolve
from .._errors import DataError, FitError
from ..dsl import Data, ODEModel
from ..dsl._data import as_datasets, state_key
from ..lowering import AbstractSystem, CompiledRHS, Params
from ..lowering._compile import check_derivatives
from ._checkpoint import fingerprint
from ._loop import Problem
from ._method import (
    AbstractFitMethod,
    non_negative_number,
    positive_integer,
    set_field,
)
from ._penalty import Penalty, compile_penalty
from ._regularize import AbstractRegularization
from ._result import UDEResult
from ._ude_batch import batched


class _Trainable(eqx.Module):
    params: Params
    initial: tuple  # per trajectory: the trained entries of its initial state
    nodes: tuple = ()  # multiple shooting: per trajectory, (segments - 1, n)


class _Static(eqx.Module):
    system: AbstractSystem = eqx.field(static=True)
    options: SolveOptions = eqx.field(static=True)
    names: tuple = eqx.field(static=True)
    free: tuple = eqx.field(static=True)  # per trajectory: indices trained
    observed: tuple = eqx.field(static=True)  # per trajectory: observed indices
    owner: tuple = eqx.field(static=True)  # per observed column: its state's index
    y0: tuple  # per trajectory: the initial state's fixed entries
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
    regularize: AbstractRegularization | None = eqx.field(static=True, default=None)


def _with_units(params: Params, units: dict, *, divide: bool = False) -> Params:
    """`params` with each trainable value multiplied (or divided) by its unit."""
    op = jnp.divide if divide else jnp.multiply
    values = {k: op(v, units[k]) for k, v in params.values.items()}
    return Params(values, params.networks)


def _initial_state(y0, free, initial):
    return y0.at[np.asarray(free)].set(initial) if free else y0


def _loss(x: _Trainable, s: _Static):
    n = len(s.names)
    per_state = jnp.zeros(n, s.scale.dtype)
    counts = jnp.zeros(n, s.scale.dtype)
    continuity = jnp.zeros((), s.scale.dtype)
    regularization = jnp.zeros((), s.scale.dtype)
    failed = jnp.asarray(False)
    params = _with_units(x.params, s.units)
    for j in range(len(s.ts)):
        y0 = _initial_state(s.y0[j], s.free[j], x.initial[j])
        bounds = s.segments[j] if s.segments else (0, len(s.ts[j]) - 1)
        starts = [y0, *(x.nodes[j] if s.segments else ())]
        owner = np.asarray(s.owner[j])
        observed = np.asarray(s.observed[j])
        for k in range(len(bounds) - 1):
            a, b = bounds[k], bounds[k + 1]
            if s.regularize is None:
                sol = diffeqsolve(
                    s.system, s.options, starts[k], params, ts=s.ts[j][a : b + 1]
                )
            else:
                sol, term = s.regularize.solve(
                    s.system, s.options, starts[k], params, s.ts[j][a : b + 1]
                )
                regularization += term
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
    if s.regularize is not None:
        extra[s.regularize.name] = regularization
        loss = loss + regularization
    loss = jnp.where(failed, jnp.inf, loss)
    return loss, {name: terms[i] for i, name in enumerate(s.names)} | extra | {
        "solver": jnp.where(failed, jnp.inf, 0.0)
    }


@dataclass(frozen=True)
class _Trajectory:
    """One data set laid out on the system's flat state."""

    t: np.ndarray
    y0: np.ndarray  # fixed entries of the initial state (zeros where trained)
    free: tuple[int, ...]  # flat indices of the trained initial entries
    start: np.ndarray  # their starting values
    observed: tuple[int, ...]  # flat indices observed, in column order
    owner: tuple[int, ...]  # per column: index of its state
    ys: np.ndarray  # (T, columns)


def system_of(
    target, derivatives, owner: str, hint: str | None = None
) -> AbstractSystem:
    """The lowered system a fit method `owner` trains: an ODE model compiled
    with `derivatives`, or a system lowered already; `hint` says in the error
    which lowered systems the method takes."""
    if isinstance(target, ODEModel):
        return CompiledRHS(target, derivatives)
    if isinstance(target, AbstractSystem):
        return target
    raise FitError(
        f"`{owner}` fits ODE models and lowered systems"
        + (f" ({hint})" if hint else "")
        + f"; got {type(target).__name__}."
    )


def check_observations(system: AbstractSystem, data: Data) -> None:
    """Every observed name is a state of `system`, observed with the state's
    shape."""
    names = system.state_names
    for name, v in data.values.items():
        if name not in names:
            raise DataError(
                f"The data observe `{name}`, which is not a state of the model; its "
                f"states are {', '.join(names)}."
            )
        shape = system.state_shape(name)
        if v.shape[1:] != tuple(shape):
            raise DataError(
                f"Each observation of `{name}` has shape {v.shape[1:]}; the model's "
                f"`{name}` has shape {tuple(shape)}. Observe fields on the "
                "discretisation grid."
            )


def _layout(system: AbstractSystem, data: Data, initial: dict, fit_initial: bool):
    check_observations(system, data)
    names = system.state_names
    y0 = np.zeros(system.n)
    start = np.zeros(system.n)
    free, observed, owner, columns = [], [], [], []
    for i, name in enumerate(names):
        idx = system.state_indices(name)
        shape = system.state_shape(name)
        if name in data.values:
            first = data.values[name][0].ravel()
            observed.append(idx)
            owner.extend([i] * idx.size)
            columns.append(data.values[name].reshape(data.t.size, -1))
            if fit_initial:
                free.append(idx)
                guess = initial.get(name)
                start[idx] = (
                    first
                    if guess is None
                    else np.broadcast_to(np.asarray(guess, float), shape).ravel()
                )
            else:
                y0[idx] = first
        else:
            free.append(idx)
            start[idx] = np.broadcast_to(
                np.asarray(initial.get(name, 0.0), float), shape
            ).ravel()
    free_idx = np.concatenate(free) if free else np.zeros(0, int)
    obs_idx = np.concatenate(observed) if observed else np.zeros(0, int)
    return _Trajectory(
        data.t,
        y0,
        tuple(free_idx.tolist()),
        start[free_idx],
        tuple(obs_idx.tolist()),
        tuple(owner),
        np.concatenate(columns, axis=1) if columns else np.zeros((data.t.size, 0)),
    )


def _shooting(segments: int, traj: _Trajectory, dtype):
    """Segment bounds (time indices) and initial node states for one trajectory:
    observed entries from the data at each node, the others from the start."""
    size = len(traj.t)
    if segments < 2 or segments > size - 1:
        raise FitError(
            f"`shooting={segments}` segments do not fit a trajectory of {size} "
            f"times; use between 2 and {size - 1}, or `shooting=None`."
        )
    bounds = tuple(int(round(b)) for b in np.linspace(0, size - 1, segments + 1))
    nodes = []
    for b in bounds[1:-1]:
        node = np.array(traj.y0)
        if traj.free:
            node[np.asarray(traj.free)] = traj.start
        node[np.asarray(traj.observed)] = traj.ys[b]
        nodes.append(node)
    return bounds, jnp.asarray(np.stack(nodes), dtype)


def _initial_dict(initial, names) -> dict[str, Any]:
    if initial is None:
        return {}
    if not isinstance(initial, dict):
        raise FitError(
            "`initial` must be a dict `{state: value}`; got "
            f"{type(initial).__name__}."
        )
    out = {}
    for key, value in initial.items():
        name = state_key(key)
        if name not in names:
            raise FitError(
                f"`initial` names `{key}`, which is not a state of the model; its "
                f"states are {', '.join(names)}."
            )
        value = np.asarray(value, dtype=float)
        if not np.all(np.isfinite(value)):
            raise FitError(f"The initial guess of `{name}` is not finite.")
        out[name] = value
    return out


@dataclass(frozen=True)
class SolveInLoop(AbstractFitMethod):
    """Fit an ODE system (an ODE model, or a PDE discretised by
    [`discretize`][symml.discretize]) by solving it inside the loss and
    comparing the solution with the data (a universal differential equation
    when the model has unknown terms).

    The loss is the mean over observed states of each state's mean squared
    error divided by the variance of its observations, so states of different
    magnitudes weigh the same.

    **Arguments:**

    - `solver`: a diffrax solver or its name (`"Tsit5"` by default; an implicit
      one such as `"Kvaerno5"` for a stiff model).
    - `rtol`, `atol`, `max_steps`: the solve inside the loss.
    - `adjoint`: how gradients go through the solve: `"recursive"` (the
      default), `"backsolve"`, `"direct"` or a diffrax adjoint.
    - `initial`: `{state: value}` starting guesses of initial states.
    - `fit_initial`: whether observed states' initial values are trained too
      (starting from their first observation, or from `initial`). On by
      default: a noisy first observation would otherwise bias every
      coefficient. Unobserved states' initial values are always trained.
    - `shooting`: split each trajectory into this many segments (multiple
      shooting): each segment starts from a trainable state, initialised from
      the data, and `continuity` (default 10) weighs the mismatch between a
      segment's end and the next one's start. It makes long or oscillatory
      trajectories easier to fit; `None` (the default) solves each trajectory
      in one piece.
    - `penalties`: [`Penalty`][symml.Penalty] terms added to the loss, e.g.
      `Penalty(U[0].diff(x)**2, over={x: (0, 5), y: (0, 5)}, weight=1e-3)`.
    - `derivatives`: the scheme of derivatives of networks in the model and
      the penalties (as in [`lower`][symml.lower]).
    - `regularize`: a term that makes the learned field cheap to solve,
      computed along the solves of the loss:
      [`SolverHeuristics`][symml.SolverHeuristics] (the solver's error and
      stiffness estimates, SRNODE: almost free) or
      [`TaylorRegularization`][symml.TaylorRegularization] (`∫‖d^K z/dt^K‖²`,
      TayNODE: several times the cost of a solve). `None` by default.
    """

    name: ClassVar[str] = "SolveInLoop"
    solver: Any = "Tsit5"
    rtol: float = 1e-6
    atol: float = 1e-8
    max_steps: int = 4096
    adjoint: Any = "recursive"
    initial: dict | None = None
    fit_initial: bool = True
    shooting: int | None = None
    continuity: float = 10.0
    penalties: tuple = ()
    derivatives: Any = None
    regularize: AbstractRegularization | None = None

    def __post_init__(self):
        owner = "SolveInLoop"
        set_field(
            self,
            "_options",
            SolveOptions.make(
                solver=self.solver,
                rtol=self.rtol,
                atol=self.atol,
                max_steps=self.max_steps,
                adjoint=self.adjoint,
                error=FitError,
            ),
        )
        positive_integer(self.shooting, "shooting", owner, allow_none=True)
        non_negative_number(self.continuity, "continuity", owner)
        if not isinstance(self.fit_initial, bool):
            raise FitError(
                f"`fit_initial` of `{owner}` must be True or False; got "
                f"{self.fit_initial!r}."
            )
        penalties = tuple(self.penalties or ())
        for i, p in enumerate(penalties):
            if not isinstance(p, Penalty):
                raise FitError(
                    f"`penalties` must be a list of `symml.Penalty`; item {i} is "
                    f"{type(p).__name__}."
                )
        set_field(self, "penalties", penalties)
        check_derivatives(self.derivatives, FitError)
        if self.regularize is not None and not isinstance(
            self.regularize, AbstractRegularization
        ):
            raise FitError(
                "`regularize` must be `symml.SolverHeuristics(...)` or "
                "`symml.TaylorRegularization(...)`, or None; got "
                f"{self.regularize!r}."
            )

    def prepare(self, target, data, *, seed: int, dtype, init) -> Problem:
        system = system_of(target, self.derivatives, "SolveInLoop")
        if data is None:
            raise FitError(
                "Fitting an ODE system needs observations: pass `data=symml.Data(t, "
                "{state: values})` (a list of them for several trajectories)."
            )
        datasets = as_datasets(data)
        model = system.model
        initial = _initial_dict(self.initial, system.state_names)
        trajectories = [_layout(system, d, initial, self.fit_initial) for d in datasets]
        if not any(tr.observed for tr in trajectories):
            raise DataError("The data observe no state of the model.")
        for d in datasets:
            check_times(d.t, dtype, DataError, "the data's `t`")
        if self.regularize is not None:
            self.regularize.check(system, self._options, dtype)
        # Unknown terms start small, so the first solves follow the known
        # physics.
        declared = system.init_params(
            key=jr.PRNGKey(seed), dtype=dtype, final_scale=0.1
        )
        params = declared if init is None else init.params
        # Trainable parameters are optimised in units of their declared
        # initial magnitude: Adam moves every variable by about the learning
        # rate per step, which would push a parameter of size 0.01 (a
        # diffusion coefficient) through zero within a few steps; in these
        # units a step is a fraction of it. A warm start (`init=`) keeps the
        # declared units: a previous fit that left a parameter near zero must
        # not freeze it there.
        units = {
            k: jnp.asarray(float(abs(v)) if float(v) != 0 else 1.0, dtype)
            for k, v in declared.values.items()
        }
        starts = [jnp.asarray(tr.start, dtype) for tr in trajectories]
        if init is not None and len(init.initial_states) == len(trajectories):
            starts = [
                jnp.asarray(np.asarray(s)[np.asarray(tr.free, int)], dtype)
                for s, tr in zip(init.initial_states, trajectories, strict=True)
            ]
        segments, nodes = (), ()
        if self.shooting is not None:
            shot = [_shooting(self.shooting, tr, dtype) for tr in trajectories]
            segments = tuple(b for b, _ in shot)
            nodes = tuple(n for _, n in shot)
        state_of = np.zeros(system.n, int)
        for i, name in enumerate(system.state_names):
            state_of[system.state_indices(name)] = i
        scale = _scales(system.state_names, datasets)
        penalties = ()
        if self.penalties:
            if not isinstance(model, ODEModel):
                raise FitError(
                    "Penalties are supported for ODE models; this is a discretised PDE."
                )
            # A generator of its own, so adding a penalty leaves the networks'
            # seeds be.
            rng = np.random.default_rng([seed, 1])
            penalties = tuple(
                compile_penalty(p, i, model, system.scheme, rng, dtype)
                for i, p in enumerate(self.penalties)
            )
        static = _Static(
            system,
            self._options,
            system.state_names,
            tuple(tr.free for tr in trajectories),
            tuple(tr.observed for tr in trajectories),
            tuple(tr.owner for tr in trajectories),
            tuple(jnp.asarray(tr.y0, dtype) for tr in trajectories),
            tuple(jnp.asarray(tr.t, dtype) for tr in trajectories),
            tuple(jnp.asarray(tr.ys, dtype) for tr in trajectories),
            jnp.asarray(scale, dtype),
            units,
            segments,
            tuple(state_of.tolist()),
            float(self.continuity),
            penalties,
            self.regularize,
        )
        trainable = _Trainable(
            _with_units(params, units, divide=True), tuple(starts), nodes
        )

        def result(x: _Trainable, history, static) -> UDEResult:
            initial_states = tuple(
                _initial_state(y0, f, init)
                for y0, f, init in zip(static.y0, static.free, x.initial, strict=True)
            )
            return UDEResult(
                model=model,
                params=_with_units(x.params, units),
                history=history,
                wall_time=0.0,
                method=self,
                seed=seed,
                system=system,
                initial_states=initial_states,
                data=tuple(datasets),
                options=self._options,
            )

        problem = Problem(
            loss=_loss,
            trainable=trainable,
            static=static,
            result=result,
            fingerprint=fingerprint(
                "SolveInLoop",
                model,
                self,
                seed,
                np.dtype(dtype).name,
                *[a for d in datasets for a in (d.t, *d.values.values())],
            ),
        )
        # On a mesh and in a bootstrap: one batch of solves (`_ude_batch.py`).
        problem.relayout = partial(batched, problem)
        return problem


def _scales(names, datasets) -> np.ndarray:
    # Each state's squared error is divided by the variance of its
    # observations, so states of different magnitudes weigh the same.
    scale = np.ones(len(names))
    for i, name in enumerate(names):
        vals = [d.values[name].ravel() for d in datasets if name in d.values]
        if vals:
            v = np.concatenate(vals)
            scale[i] = max(np.var(v), 1e-3 * np.mean(v**2), 1e-12)
    return scale
