"""`solve`: simulate any lowered system, with sparse linear algebra for stiff
solvers."""

from collections.abc import Mapping
from typing import Any, final

import diffrax as dfx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._diffrax import (
    SolveOptions,
    check_times,
    diffeqsolve,
    evaluations,
    raise_if_failed,
)
from .._errors import LoweringError
from ..sparsity import SparseLU
from ._params import Params
from ._system import AbstractSystem


@final
class Solution:
    """The result of [`solve`][symml.solve].

    **Attributes:**

    - `ts`: the save times, shape `(T,)`.
    - `ys`: the flat states, shape `(T, n)`.
    - `system`: the [`AbstractSystem`][symml.AbstractSystem] solved.
    - `stats`: diffrax's statistics (`num_steps`, `num_accepted_steps`, ...).
    - `nfe`: the number of evaluations of the right-hand side the solve made
      (rejected steps included), counted during the solve; `None` for
      implicit solvers, whose Newton iterations are not counted.
    """

    def __init__(self, system: AbstractSystem, solution: dfx.Solution):
        self.system = system
        self.ts: Float[Array, " T"] = solution.ts
        self.ys: Float[Array, "T n"] = solution.ys
        self.stats = solution.stats
        self.result = solution.result
        self.nfe: int | None = evaluations(solution)

    def unflatten(self) -> dict[str, Float[Array, "T ..."]]:
        """`{state name: array of shape (T, *state shape)}`."""
        return self.system.unflatten(self.ys)

    def __getitem__(self, state) -> Float[Array, "T ..."]:
        """The trajectory of one state (the state or its name)."""
        name = self.system._name(state)
        return self.ys[:, self.system.state_slice(name)].reshape(
            self.ys.shape[0], *self.system.state_shape(name)
        )

    def __repr__(self) -> str:
        return f"Solution(ts={tuple(self.ts.shape)}, ys={tuple(self.ys.shape)})"


def _times(system, t_span, saveat, dtype):
    error = system._error
    model = system.model
    if saveat is not None and not isinstance(saveat, dfx.SaveAt):
        ts = np.asarray(saveat, dtype=float)
        if ts.ndim != 1 or ts.size < 1 or not np.all(np.isfinite(ts)):
            raise error(
                f"`saveat` must be a 1-D array of finite times; got shape {ts.shape}."
            )
        if ts.size > 1 and np.any(np.diff(ts) <= 0):
            raise error(
                "`saveat` must be strictly increasing; sort the times (symml "
                "integrates forward in time only)."
            )
    else:
        ts = None
    if t_span is None:
        t0 = getattr(model, "initial_time", None)
        span = getattr(model, "time_span", None)
        if ts is not None:
            t_span = (t0 if t0 is not None else ts[0], ts[-1])
        elif span is not None:
            t_span = (t0 if t0 is not None else span[0], span[1])
        else:
            raise error(
                "`solve` needs `t_span=(t0, t1)` (or save times in `saveat=`, or a "
                "time span in the model's `domain=`)."
            )
    try:
        t0, t1 = (float(t) for t in t_span)
    except (TypeError, ValueError):
        raise error(
            f"`t_span` must be a pair of numbers (t0, t1); got {t_span!r}."
        ) from None
    if not (np.isfinite(t0) and np.isfinite(t1) and t0 < t1):
        raise error(
            f"`t_span` is ({t0}, {t1}); it must be finite with t0 < t1 (symml "
            "integrates forward in time only: a diffusion equation run backwards "
            "is ill-posed)."
        )
    if ts is not None:
        if ts[0] < t0 or ts[-1] > t1:
            raise error(
                f"`saveat` runs from {ts[0]:g} to {ts[-1]:g}, outside `t_span` "
                f"({t0:g}, {t1:g}); save only at times inside the span."
            )
        check_times(np.concatenate([[t0], ts]), dtype, error, "`saveat`")
    return t0, t1, ts


def solve(
    system: AbstractSystem,
    y0: Float[ArrayLike, " n"] | Mapping | None = None,
    t_span: tuple[float, float] | None = None,
    *,
    saveat: Any = None,
    params: Params | None = None,
    solver: Any = None,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    max_steps: int = 100_000,
    sparse: bool = True,
) -> Solution:
    """Simulate a lowered system: an ODE right-hand side from
    [`lower`][symml.lower] or a discretised PDE from
    [`discretize`][symml.discretize].

    **Arguments:**

    - `system`: an [`AbstractSystem`][symml.AbstractSystem].
    - `y0`: the initial state: a flat array of shape `(n,)`, or `{state:
      value}` (see `system.initial_state`); by default the model's initial
      conditions.
    - `t_span`: `(t0, t1)` with `t0 < t1`; by default from the model's
      initial conditions and time domain, or from `saveat`.
    - `saveat`: the save times (an increasing array inside `t_span`), or
      `None` for the final time only.
    - `params`: the [`Params`][symml.Params]; required if the model has
      unknown terms or trainable parameters (`symml.init_params(model, key=...)`
      or a fit result's `params`).
    - `solver`: a diffrax solver or its name; by default `"Tsit5"` for an ODE
      and `"Kvaerno5"` (implicit, for stiff systems) for a discretised PDE.
    - `rtol`, `atol`: the step-size controller's tolerances.
    - `max_steps`: the most solver steps.
    - `sparse`: for implicit solvers, solve the stage equations with the
      system's Jacobian pattern, colouring and a sparse LU
      ([`SparseLU`][symml.sparsity.SparseLU]); `False` keeps diffrax's dense
      default. Explicit solvers ignore it.

    **Returns:**

    A [`Solution`][symml.Solution] with `ts`, flat `ys`, `unflatten()` and
    per-state access `solution[x]`. A failed solve raises a
    [`LoweringError`][symml.LoweringError] with diffrax's reason, the state
    that went bad and what to try.
    """
    if not isinstance(system, AbstractSystem):
        raise LoweringError(
            f"`solve` needs a lowered system (from `symml.lower` or "
            f"`symml.discretize`); got {type(system).__name__}."
        )
    if system.stochastic:
        raise system._error(
            "`solve` integrates deterministic systems; this one is stochastic and "
            "its function is only the drift. Draw paths with `symml.simulate(model, "
            "ts, y0, key=...)`."
        )
    if params is None and system.needs_params:
        raise system._error(
            "The model has unknown terms or trainable parameters, so `solve` needs "
            "`params=` (e.g. `symml.init_params(model, key=key)` or a fit "
            "result's `params`)."
        )
    if isinstance(y0, Mapping) or y0 is None:
        y0 = system.initial_state(y0)
    else:
        y0 = system.check_state(y0, "y0")
        if y0.ndim != 1:
            raise system._error(
                f"`y0` has shape {y0.shape}; expected ({system.n},), one state."
            )
        if not bool(jnp.all(jnp.isfinite(y0))):
            bad = np.flatnonzero(~np.isfinite(np.asarray(y0)))
            name = next(
                n for n in system.state_names if bad[0] in system.state_indices(n)
            )
            raise system._error(
                f"The initial state is not finite (NaN or inf) in `{name}`; give "
                "finite initial values."
            )
    t0, t1, ts = _times(system, t_span, saveat, y0.dtype)
    options = SolveOptions.make(
        solver=system._default_solver if solver is None else solver,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        error=system._error,
    )
    if options.implicit and sparse:
        options = SolveOptions(
            options.solver,
            options.rtol,
            options.atol,
            options.max_steps,
            options.adjoint,
            SparseLU(system.jacobian_sparsity()),
        )
    solution = diffeqsolve(
        system,
        options,
        y0,
        params,
        ts=None if ts is None else jnp.asarray(ts, y0.dtype),
        t0=t0,
        t1=t1,
        count=True,
    )
    slices = {n: system.state_slice(n) for n in system.state_names}
    raise_if_failed(
        solution,
        names=system.state_names,
        slices=slices,
        options=options,
        error=system._error,
    )
    return Solution(system, solution)
