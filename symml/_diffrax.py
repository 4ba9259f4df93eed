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
    count: bool = False,
    heuristics: bool = False,
) -> dfx.Solution:
    """Solve `du/dt = f(t, u, args)` from `y0` at `t0`, saved at `ts` or at
    `t1` only, or as `saveat` says (`t0` and `t1` default to the first and
    last of `ts`). Never
    throws: the caller checks `solution.result` (inside a loss) or calls
    `raise_if_failed`.

    With `count=True` the solve also counts its vector-field evaluations (read
    them with `evaluations`; `None` for solvers whose count is not known,
    see `evaluation_counts`). With `heuristics=True` it accumulates the
    adaptive solver's error and stiffness estimates over its accepted steps
    (read them with `heuristics_of`; the solver must be an explicit
    Runge–Kutta method with an embedded error estimate, see
    `check_heuristics`)."""
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
    solver = options._solver()
    counts = evaluation_counts(solver) if count else None
    if counts is not None:
        # Choosing the first step costs no evaluation: diffrax 0.7 starts an
        # adaptive solve of a (wrapped) term at dt0 = 0.01 without looking at
        # the field (`tests/test_regularization.py` counts at run time).
        controller = _Counting(controller, *counts)
    if heuristics:
        solver = _Heuristics(solver, options.rtol, options.atol)
    if counts is not None or heuristics:
        saveat = dfx.SaveAt(
            subs=saveat.subs,
            dense=saveat.dense,
            solver_state=saveat.solver_state or heuristics,
            controller_state=saveat.controller_state or counts is not None,
            made_jump=saveat.made_jump,
        )
    return dfx.diffeqsolve(
        dfx.ODETerm(f),
        solver,
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


# -- counting vector-field evaluations --------------------------------------------


def evaluation_counts(solver: dfx.AbstractSolver) -> tuple[int, bool] | None:
    """`(stages, fsal)` of an explicit solver whose evaluations can be counted
    from its steps: each step of an explicit Runge–Kutta method evaluates the
    field once per stage, except that a method that is *first same as last*
    (FSAL: Tsit5, Dopri5, Bosh3, Dopri8) reuses the previous accepted step's
    last evaluation as its first one. `None` for implicit solvers (their
    Newton iterations are not reported by the solve) and solvers without a
    Butcher tableau other than Euler."""
    if isinstance(solver, dfx.Euler):
        return 1, False
    tableau = getattr(solver, "tableau", None)
    if (
        isinstance(solver, dfx.AbstractERK)
        and isinstance(tableau, dfx.ButcherTableau)
        and not tableau.implicit
    ):
        return len(tableau.a_lower) + 1, bool(tableau.fsal)
    return None


class _CountState(eqx.Module):
    inner: Any  # the wrapped controller's state
    count: jax.Array  # evaluations so far
    accepted: jax.Array  # whether a step has been accepted yet


class _Counting(dfx.AbstractStepSizeController):
    """Wraps a step-size controller to count the vector-field evaluations of
    the solve in its state (which the solve carries through rejected steps as
    well as accepted ones, unlike the solver's state).

    A FSAL method evaluates the field at the start of a step only until a
    step has been accepted (afterwards the last stage of the accepted step is
    reused, also by steps that are then rejected)."""

    controller: dfx.AbstractStepSizeController
    stages: int = eqx.field(static=True)
    fsal: bool = eqx.field(static=True)

    def wrap(self, direction):
        return _Counting(self.controller.wrap(direction), self.stages, self.fsal)

    def init(self, terms, t0, t1, y0, dt0, args, func, error_order):
        tnext, state = self.controller.init(
            terms, t0, t1, y0, dt0, args, func, error_order
        )
        return tnext, _CountState(state, jnp.asarray(0, jnp.int32), jnp.asarray(False))

    def adapt_step_size(
        self, t0, t1, y0, y1_candidate, args, y_error, error_order, controller_state
    ):
        count, accepted = controller_state.count, controller_state.accepted
        keep, tprev, tnext, jump, state, result = self.controller.adapt_step_size(
            t0, t1, y0, y1_candidate, args, y_error, error_order, controller_state.inner
        )
        new = self.stages - 1 if self.fsal else self.stages
        if self.fsal:
            new = new + jnp.where(accepted, 0, 1)
        count = count + jnp.asarray(new, jnp.int32)
        state = _CountState(state, count, accepted | keep)
        return keep, tprev, tnext, jump, state, result


def evaluations(solution: dfx.Solution) -> int | None:
    """The number of vector-field evaluations of a solve run with
    `diffeqsolve(..., count=True)`, or `None` if the solver's count is not
    known (see `evaluation_counts`)."""
    state = solution.controller_state
    return int(state.count) if isinstance(state, _CountState) else None


# -- solver heuristics: error and stiffness estimates along the solve -------------


def check_heuristics(options: SolveOptions, error: type[SymmlError]) -> None:
    """Raise `error` unless the solver of `options` can report its error and
    stiffness estimates at every step (an explicit Runge–Kutta method with an
    embedded error estimate, such as Tsit5 or Dopri5, under an adaptive
    step-size controller)."""
    solver = options.solver
    tableau = getattr(solver, "tableau", None)
    if not (
        options.adaptive
        and isinstance(solver, dfx.AbstractERK)
        and isinstance(tableau, dfx.ButcherTableau)
        and tableau.b_error is not None
        and len(tableau.a_lower) >= 1
    ):
        raise error(
            f"The solver heuristics (local error and stiffness estimates) need an "
            f"adaptive explicit Runge–Kutta solver with an embedded error "
            f"estimate; got `{type(solver).__name__}`. Use `solver='Tsit5'` or "
            "'Dopri5'."
        )
    if not isinstance(
        options.adjoint, dfx.RecursiveCheckpointAdjoint | dfx.DirectAdjoint
    ):
        raise error(
            "The solver heuristics are differentiated through the solver's own "
            f"steps (a discrete adjoint); `adjoint={type(options.adjoint).__name__}"
            "()` does not do that. Use `adjoint='recursive'` (the default) or "
            "'direct'."
        )


def _safe_norm(x):
    # A norm whose gradient is 0, not NaN, at 0.
    squared = jnp.sum(x**2)
    positive = squared > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


class _Heuristics(dfx.AbstractAdaptiveSolver, dfx.AbstractWrappedSolver):
    """Wraps an explicit Runge–Kutta solver to accumulate, over the accepted
    steps, `Σ E_j h_j` (the local error estimate `E_j` in the step-size
    controller's scaled RMS norm, times the step `h_j`) and `Σ S_j` (the
    stiffness estimate `S_j = ‖k_s − k_{s−1}‖ / (h ‖Y_s − Y_{s−1}‖)` of the
    last two stages, an estimate of the largest eigenvalue's magnitude;
    Hairer & Wanner II, IV.2), the heuristics that SRNODE regularises.

    The sums live in the solver's state, which the solve keeps only when a
    step is accepted, and are differentiated with the solve (the step sizes
    themselves carry no gradient: diffrax's controller stops it)."""

    solver: dfx.AbstractRungeKutta
    rtol: float
    atol: float

    @property
    def term_structure(self):
        return self.solver.term_structure

    @property
    def interpolation_cls(self):  # pyright: ignore
        return self.solver.interpolation_cls

    @property
    def term_compatible_contr_kwargs(self):
        return self.solver.term_compatible_contr_kwargs

    def order(self, terms):
        return self.solver.order(terms)

    def strong_order(self, terms):
        return self.solver.strong_order(terms)

    def error_order(self, terms):
        return self.solver.error_order(terms)

    def func(self, terms, t0, y0, args):
        return self.solver.func(terms, t0, y0, args)

    def init(self, terms, t0, t1, y0, args):
        zero = jnp.zeros((), jnp.result_type(y0))
        return self.solver.init(terms, t0, t1, y0, args), zero, zero

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        inner, error_sum, stiffness_sum = solver_state
        y1, y_error, dense_info, inner, result = self.solver.step(
            terms, t0, t1, y0, args, inner, made_jump
        )
        h = t1 - t0
        scale = self.atol + self.rtol * jnp.maximum(jnp.abs(y0), jnp.abs(y1))
        ratio = (y_error / scale).ravel()
        estimate = _safe_norm(ratio) / jnp.sqrt(ratio.size)
        # `k` holds the stages times the step (diffrax's "k-space").
        k = dense_info["k"].reshape(dense_info["k"].shape[0], -1)
        rows = [np.zeros(0), *self.solver.tableau.a_lower]
        last, before = rows[-1], np.pad(rows[-2], (0, 1))
        weights = jnp.asarray(last - before, k.dtype)
        dy = weights @ k[: len(last)]
        dk = k[-1] - k[-2]
        size = _safe_norm(dy)
        stiffness = jnp.where(
            size > 0, _safe_norm(dk) / (jnp.abs(h) * jnp.where(size > 0, size, 1)), 0
        )
        state = (inner, error_sum + estimate * jnp.abs(h), stiffness_sum + stiffness)
        return y1, y_error, dense_info, state, result


def heuristics_of(solution: dfx.Solution) -> tuple[jax.Array, jax.Array]:
    """`(Σ E_j h_j, Σ S_j)` over the accepted steps of a solve run with
    `diffeqsolve(..., heuristics=True)`."""
    _, error_sum, stiffness_sum = solution.solver_state
    return error_sum, stiffness_sum


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
