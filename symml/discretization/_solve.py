"""`solve`: integrate a discretised PDE, sparse linear algebra for stiff solvers."""

from __future__ import annotations

from typing import Any, final

import diffrax as dfx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._errors import DiscretizeError
from ..lowering import Params
from ..sparsity import solve_stiff
from ._discretize import DiscretizedModel


@final
class MOLSolution:
    """The result of [`solve`][symml.solve].

    **Attributes:**

    - `ts`: the save times, shape `(T,)`.
    - `ys`: the flat states, shape `(T, n)`.
    - `ode`: the [`DiscretizedModel`][symml.DiscretizedModel].
    - `stats`, `result`: diffrax's statistics and result code.
    """

    def __init__(self, ode: DiscretizedModel, solution: dfx.Solution):
        self.ode = ode
        self.ts: Float[Array, " T"] = solution.ts
        self.ys: Float[Array, "T n"] = solution.ys
        self.stats = solution.stats
        self.result = solution.result

    def unflatten(self) -> dict[str, Float[Array, "T ..."]]:
        """`{state name: array of shape (T, *grid shape)}`."""
        return self.ode.unflatten(self.ys)

    def __getitem__(self, name: str) -> Float[Array, "T ..."]:
        return self.ys[:, self.ode.state_slice(name)].reshape(
            self.ys.shape[0], *self.ode.shape
        )

    def __repr__(self) -> str:
        return f"MOLSolution(ts={self.ts.shape}, ys={self.ys.shape})"


def _solver(solver) -> dfx.AbstractSolver:
    if isinstance(solver, dfx.AbstractSolver):
        return solver
    cls = getattr(dfx, str(solver), None) if isinstance(solver, str) else None
    if not (isinstance(cls, type) and issubclass(cls, dfx.AbstractSolver)):
        raise DiscretizeError(
            f"`solver={solver!r}` is not a diffrax solver; pass an instance such "
            "as `diffrax.Kvaerno5()` or a name such as 'Kvaerno5' or 'Tsit5'."
        )
    return cls()


def _saveat(saveat) -> dfx.SaveAt:
    if saveat is None:
        return dfx.SaveAt(t1=True)
    if isinstance(saveat, dfx.SaveAt):
        return saveat
    return dfx.SaveAt(ts=jnp.asarray(saveat))


def solve(
    ode: DiscretizedModel,
    y0: Float[ArrayLike, " n"] | None = None,
    t_span: tuple[float, float] | None = None,
    *,
    saveat: Any = None,
    solver: Any = "Kvaerno5",
    rtol: float = 1e-6,
    atol: float = 1e-8,
    params: Params | None = None,
    sparse: bool = True,
    max_steps: int | None = 100_000,
    dt0: float | None = None,
) -> MOLSolution:
    """Integrate a discretised PDE.

    **Arguments:**

    - `ode`: a [`DiscretizedModel`][symml.DiscretizedModel].
    - `y0`: the flat initial state (e.g. `ode.initial_state({u: expr})`);
      by default the model's initial conditions (`Eq(u.subs(t, 0), expr)`).
    - `t_span`: `(t0, t1)` (required).
    - `saveat`: the save times (an array), a `diffrax.SaveAt`, or `None` for
      the final time only.
    - `solver`: a diffrax solver or its name (`"Kvaerno5"` by default: stiff).
    - `rtol`, `atol`: the step-size controller's tolerances.
    - `params`: the [`Params`][symml.Params]; required if the model has unknown
      terms or trainable parameters (`symml.init_params(model, key=...)`).
    - `sparse`: for implicit solvers, solve the stage equations with the
      stencil's Jacobian pattern, colouring and a sparse LU
      ([`symml.sparsity.SparseLU`][symml.sparsity.SparseLU]); `False` keeps
      diffrax's dense default. Explicit solvers ignore it.
    - `max_steps`, `dt0`: as in `diffrax.diffeqsolve`.

    **Returns:**

    A [`MOLSolution`][symml.MOLSolution] with `ts`, flat `ys` and
    `unflatten()`.
    """
    if not isinstance(ode, DiscretizedModel):
        raise DiscretizeError(
            f"`solve` needs a `DiscretizedModel` (from `symml.discretize`); got "
            f"{type(ode).__name__}."
        )
    if params is None and ode._needs_params:
        raise DiscretizeError(
            "The model has unknown terms or trainable parameters, so `solve` needs "
            "`params=` (e.g. `symml.init_params(model, key=key)`)."
        )
    if t_span is None:
        raise DiscretizeError("`solve` needs `t_span=(t0, t1)`.")
    y0 = jnp.asarray(ode.initial_state(None) if y0 is None else y0)
    if y0.shape != (ode.n,):
        raise DiscretizeError(
            f"`y0` has shape {y0.shape}; expected ({ode.n},), the flat state (use "
            "`ode.initial_state(...)` or `ode.flatten(...)`)."
        )
    t0, t1 = (float(t) for t in t_span)
    solver = _solver(solver)
    save = _saveat(saveat)
    implicit = isinstance(solver, dfx.AbstractImplicitSolver)
    if implicit and sparse:
        solution = solve_stiff(
            ode.rhs,
            y0,
            (t0, t1),
            ode.jacobian_sparsity(),
            args=params,
            solver=solver,
            saveat=save,
            rtol=rtol,
            atol=atol,
            dt0=dt0,
            max_steps=max_steps,
        )
    else:
        solution = dfx.diffeqsolve(
            dfx.ODETerm(ode.rhs),
            solver,
            t0,
            t1,
            dt0,
            y0,
            args=params,
            saveat=save,
            stepsize_controller=dfx.PIDController(rtol=rtol, atol=atol),
            max_steps=max_steps,
        )
    return MOLSolution(ode, solution)
