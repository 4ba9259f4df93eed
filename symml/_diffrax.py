"""The one place symml calls diffrax: solver and adjoint names, tolerances,
and failures turned into symml errors.

Every ODE solve in symml (simulations, the solve inside a UDE loss, stiff
solves with sparse Jacobians) is described by a [`SolveOptions`] and run by
[`diffeqsolve`]; a failed solve that a user asked for is reported by
[`raise_if_failed`] with diffrax's reason, the state that went bad and what to
try.
"""

from dataclasses import dataclass, field
from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._errors import SymmlError

RTOL = 1e-6
ATOL = 1e-8
MAX_STEPS = 16_384

_ADJOINTS = {
    "recursive": dfx.RecursiveCheckpointAdjoint,
    "backsolve": dfx.BacksolveAdjoint,
    "direct": dfx.DirectAdjoint,
}


def as_solver(solver, error: type[SymmlError]) -> dfx.AbstractSolver:
    """A diffrax solver from an instance or its name (`"Tsit5"`, `"Kvaerno5"`)."""
    if isinstance(solver, dfx.AbstractSolver):
        return solver
    cls = getattr(dfx, solver, None) if isinstance(solver, str) else None
    if isinstance(cls, type) and issubclass(cls, dfx.AbstractSolver):
        try:
            return cls()
        except TypeError:
            pass
    raise error(
        f"`solver={solver!r}` is not a diffrax ODE solver; use a name such as "
        "'Tsit5', 'Dopri5' (explicit) or 'Kvaerno5' (implicit, for stiff models), "
        "or a solver instance such as `diffrax.Tsit5()`."
    )


def as_adjoint(adjoint, error: type[SymmlError]) -> dfx.AbstractAdjoint:
    """A diffrax adjoint from an instance or a name in `_ADJOINTS`."""
    if adjoint is None:
        return dfx.RecursiveCheckpointAdjoint()
    if isinstance(adjoint, dfx.AbstractAdjoint):
        return adjoint
    if isinstance(adjoint, str) and adjoint in _ADJOINTS:
        return _ADJOINTS[adjoint]()
    raise error(
        f"`adjoint={adjoint!r}` is not known; use one of {', '.join(_ADJOINTS)} or a "
        "diffrax adjoint instance."
    )


def _positive(value, name: str, error, *, integer: bool = False):
    ok_type = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, ok_type):
        ok = False
    else:
        ok = bool(np.isfinite(value)) and value > 0
    if not ok:
        kind = "a positive integer" if integer else "a finite positive number"
        raise error(f"`{name}` must be {kind}; got {value!r}.")
    return int(value) if integer else float(value)


@dataclass(frozen=True)
class SolveOptions:
    """How an ODE is solved: hashable, so it can be a static argument of a
    jitted function.

    **Arguments:**

    - `solver`: a diffrax solver.
    - `rtol`, `atol`: the adaptive step-size controller's tolerances (ignored
      by solvers without error estimates, which take steps of the data's
      spacing).
    - `max_steps`: the most steps a solve may take.
    - `adjoint`: how gradients go through the solve.
    - `linear_solver`: for implicit solvers, the linear solver of their root
      finder (a sparse one for large sparse systems), or `None` for diffrax's
      default.
    """

    solver: dfx.AbstractSolver
    rtol: float = RTOL
    atol: float = ATOL
    max_steps: int = MAX_STEPS
    adjoint: dfx.AbstractAdjoint = field(default_factory=dfx.RecursiveCheckpointAdjoint)
    linear_solver: Any = None

    @classmethod
    def make(
        cls,
        *,
        solver="Tsit5",
        rtol=RTOL,
        atol=ATOL,
        max_steps=MAX_STEPS,
        adjoint=None,
        error: type[SymmlError],
    ) -> "SolveOptions":
        """Validated options from user input (names or instances)."""
        return cls(
            as_solver(solver, error),
            _positive(rtol, "rtol", error),
            _positive(atol, "atol", error),
            _positive(max_steps, "max_steps", error, integer=True),
            as_adjoint(adjoint, error),
        )

    @property
    def adaptive(self) -> bool:
        return isinstance(self.solver, dfx.AbstractAdaptiveSolver)

    @property
    def implicit(self) -> bool:
        return isinstance(self.solver, dfx.AbstractImplicitSolver)

    def _solver(self) -> dfx.AbstractSolver:
        if self.linear_solver is None or not self.implicit:
            return self.solver
        return eqx.tree_at(
            lambda s: s.root_finder.linear_solver, self.solver, self.linear_solver
        )


def diffeqsolve(
    f,
    options: SolveOptions,
    y0,
    args,
    *,
    ts=None,
    t0=None,
    t1=None,
    dt0=None,
    saveat: dfx.SaveAt | None = None,
) -> dfx.Solution:
    """Solve `du/dt = f(t, u, args)` from `y0` at `t0`, saved at `ts` or at
    `t1` only, or as `saveat` says (`t0` and `t1` default to the first and
    last of `ts`). Never
    throws: the caller checks `solution.result` (inside a loss) or calls
    `raise_if_failed`."""
    if ts is not None:
        t0 = ts[0] if t0 is None else t0
        t1 = ts[-1] if t1 is None else t1
        saveat = dfx.SaveAt(ts=ts)
    elif saveat is None:
        saveat = dfx.SaveAt(t1=True)
    if options.adaptive:
        controller = dfx.PIDController(rtol=options.rtol, atol=options.atol)
    else:
        controller = dfx.ConstantStepSize()
        if dt0 is None:
            few = ts is None or len(ts) < 2
            dt0 = (t1 - t0) / 100 if few else ts[1] - ts[0]
    return dfx.diffeqsolve(
        dfx.ODETerm(f),
        options._solver(),
        t0=t0,
        t1=t1,
        dt0=dt0,
        y0=y0,
        args=args,
        saveat=saveat,
        stepsize_controller=controller,
        adjoint=options.adjoint,
        max_steps=options.max_steps,
        throw=False,
    )


def _reason(result) -> str:
    return str(dfx.RESULTS[result]).split("\n")[0]


def raise_if_failed(
    solution: dfx.Solution,
    *,
    names: tuple[str, ...],
    slices: dict | None,
    options: SolveOptions,
    error: type[SymmlError],
    what: str = "The solve",
) -> None:
    """Raise `error` if `solution` failed: diffrax's reason, the first state
    that became non-finite (or the largest one), the time reached, and what to
    try."""
    if bool(solution.result == dfx.RESULTS.successful):
        return
    ys = np.asarray(solution.ys)
    ts = np.asarray(solution.ts)
    finite_rows = np.all(np.isfinite(ys.reshape(ys.shape[0], -1)), axis=1)
    reached = ts[finite_rows][-1] if finite_rows.any() else ts[0]
    where = ""
    if not finite_rows.all():
        row = ys[int(np.argmin(finite_rows))].reshape(-1)
        bad = np.flatnonzero(~np.isfinite(row))
        name = _owner(int(bad[0]), names, slices)
        where = f" The state `{name}` became non-finite after t = {reached:g}."
    elif finite_rows.any():
        last = ys[-1].reshape(-1)
        i = int(np.argmax(np.abs(last)))
        name = _owner(i, names, slices)
        where = f" The largest state at the end is `{name}` ({last[i]:.3g})."
    hints = []
    if bool(solution.result == dfx.RESULTS.max_steps_reached):
        hints.append(
            f"raise `max_steps` (now {options.max_steps})"
            + (
                ", or use an implicit solver such as 'Kvaerno5' if the model is stiff"
                if not options.implicit
                else ""
            )
        )
    else:
        hints.append(
            "check that the model's values and parameters are sensible there, or "
            "try an implicit solver such as 'Kvaerno5' for a stiff model"
        )
    if ys.dtype == np.float32:
        hints.append(
            "solve in float64 (`jax.config.update('jax_enable_x64', True)` at the "
            "start of the program): float32 breaks stiff solves"
        )
    raise error(
        f"{what} failed: {_reason(solution.result)}{where} Try: "
        + "; ".join(hints)
        + "."
    )


def _owner(index: int, names, slices) -> str:
    if slices is None:
        return names[index] if index < len(names) else str(index)
    for name in names:
        s = slices[name]
        if s.start <= index < s.stop:
            return name if s.stop - s.start == 1 else f"{name}[{index - s.start}]"
    return str(index)


def check_times(ts, dtype, error: type[SymmlError], what: str = "`t`") -> None:
    """Raise `error` when the times are not distinct in `dtype` (float32 gives
    about seven significant digits: `1e7 + 0.1 k` collapses)."""
    ts = np.asarray(ts, dtype=float)
    if ts.size < 2:
        return
    cast = np.asarray(jnp.asarray(ts, dtype)).astype(float)
    if np.any((np.diff(cast) <= 0) & (np.diff(ts) > 0)):
        raise error(
            f"The times in {what} are not distinct in {np.dtype(dtype).name} (they "
            f"range from {ts.min():g} to {ts.max():g} with steps down to "
            f"{np.min(np.diff(ts)):g}). Shift the time origin close to the data, "
            "or enable float64 with `jax.config.update('jax_enable_x64', True)`."
        )


def is_tracer(x) -> bool:
    return isinstance(x, jax.core.Tracer)
