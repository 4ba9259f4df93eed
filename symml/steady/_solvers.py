"""Root finders for `f(t, u, params) = 0`: Newton, Levenberg–Marquardt, and
integration to equilibrium polished by Newton.

A solver is an object carrying its own options (tolerances, step limit, linear
solver). It is resolved against one system by `_Problem`, which knows the
Jacobian pattern and chooses the linear solver, and solves with optimistix so
that gradients can flow through the root by the implicit function theorem.
"""

from __future__ import annotations

import abc
import weakref
from typing import Any, Literal

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import optimistix as optx
from jaxtyping import Array, Bool, Float, Int

from .._errors import SteadyStateInputError
from ..sparsity import SparseLU
from ._linear import ColoredLU

__all__ = [
    "AbstractSteadySolver",
    "Newton",
    "LevenbergMarquardt",
    "IntegrateToSteady",
    "SPARSE_FROM",
]

# `linear_solver="auto"` factorises sparsely from this many unknowns on. Below
# it a dense LU inside JAX (n³/3 flops, of the Jacobian evaluated by one JVP
# per colour) is cheaper than the host round trip of the sparse factorisation
# and vmaps over experiments; `benchmarks/steady_state.py` measures the
# crossover (its "crossover" table) on 1-D and 2-D reaction–diffusion problems.
SPARSE_FROM = 256

LinearSolverChoice = Literal["auto", "sparse", "dense"] | lx.AbstractLinearSolver
AdjointChoice = Literal["implicit", "unrolled"] | optx.AbstractAdjoint


def default_tolerance(dtype) -> float:
    """The default `rtol`/`atol`: tight in float64, loose enough in float32
    that rounding in a discretised residual does not stall the test."""
    return 1e-8 if jnp.finfo(dtype).bits >= 64 else 1e-4


class _Problem(eqx.Module):
    """One steady-state problem: the residual of a system at a frozen time.

    `system` and `n` are static (the system is hashed by identity), so `jit`
    caches one compilation per system and solver.

    **Fields:**

    - `system`: callable as `system(t, u, params)`, with `jacobian_sparsity()`.
    - `n`: the number of unknowns.
    - `active`: `None`, or a boolean: where it is false the residual is `u`
      itself (root 0, Jacobian `I`, independent of the parameters), so that a
      solve that failed can be differentiated as zero without touching the
      model where it broke down.
    """

    system: Any = eqx.field(static=True)
    n: int = eqx.field(static=True)
    active: Bool[Array, ""] | None = None

    def residual(self, u: Float[Array, " n"], args: Any) -> Float[Array, " n"]:
        """`f(t, u, params)` with `args = (t, params)`: optimistix's form."""
        t, params = args
        if self.active is None:
            return self.system(t, u, params)
        safe = jnp.where(self.active, u, jnp.zeros_like(u))
        return jnp.where(self.active, self.system(t, safe, params), u)

    def vector_field(self, s, u: Float[Array, " n"], args: Any) -> Float[Array, " n"]:
        """diffrax's form, with time frozen at `t` (the steady state of the
        system at `t`)."""
        del s
        return self.residual(u, args)

    def linear_solver(self, choice: LinearSolverChoice) -> lx.AbstractLinearSolver:
        """The lineax solver for `choice` (`"auto"`, `"sparse"`, `"dense"` or a
        lineax solver)."""
        if isinstance(choice, lx.AbstractLinearSolver):
            return choice
        if choice == "auto":
            choice = "sparse" if self.n >= SPARSE_FROM else "dense"
        if choice in ("sparse", "dense"):
            return cached_solver(self.system, choice)
        raise SteadyStateInputError(
            f"`linear_solver` must be 'auto', 'sparse', 'dense' or a lineax solver; "
            f"got {choice!r}."
        )


# The linear solvers of each system, built once: their colourings are reused,
# and repeated solves compile once (a new solver is a new static argument to
# `jit`).
_SOLVERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def cached_solver(system: Any, kind: str) -> lx.AbstractLinearSolver:
    """The [`SparseLU`][symml.sparsity.SparseLU] (`kind="sparse"`) or
    `ColoredLU` (`"dense"`) of `system`'s Jacobian pattern."""
    build = SparseLU if kind == "sparse" else ColoredLU
    try:
        solvers = _SOLVERS.setdefault(system, {})
    except TypeError:  # not weak-referenceable: build one per call
        return build(system.jacobian_sparsity())
    if kind not in solvers:
        solvers[kind] = build(system.jacobian_sparsity())
    return solvers[kind]


def _adjoint(choice: AdjointChoice, linear_solver) -> optx.AbstractAdjoint:
    if isinstance(choice, optx.AbstractAdjoint):
        return choice
    if choice == "implicit":
        return optx.ImplicitAdjoint(linear_solver=linear_solver)
    if choice == "unrolled":
        return optx.RecursiveCheckpointAdjoint()
    raise SteadyStateInputError(
        f"`adjoint` must be 'implicit' (gradients by the implicit function theorem),"
        f" 'unrolled' (through the iterations) or an optimistix adjoint; got "
        f"{choice!r}."
    )


class _Outcome(eqx.Module):
    u: Float[Array, " n"]
    result: optx.RESULTS
    num_steps: Int[Array, ""]
    stats: dict[str, Array]


class AbstractSteadySolver(eqx.Module):
    """A way to find a steady state `u` with `f(t, u, params) = 0`.

    Subclasses are final and implement `solve`; they are passed to
    [`steady_state`][symml.steady_state] as `solver=`.
    """

    @abc.abstractmethod
    def tolerance(self, dtype) -> tuple[float, float]:
        """`(rtol, atol)` of this solver for states of `dtype`."""

    @abc.abstractmethod
    def solve(
        self,
        problem: _Problem,
        u0: Float[Array, " n"],
        args: Any,
        adjoint: AdjointChoice,
    ) -> _Outcome:
        """Find the root from `u0` (pure; called under `jit`)."""


def _check_positive(name: str, value, owner: str, integer: bool = False) -> None:
    if value is None:
        return
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or value <= 0:
        what = "a positive integer" if integer else "a positive number"
        raise SteadyStateInputError(
            f"`{name}` of `{owner}` must be {what}; got {value!r}."
        )


def _tolerance(rtol, atol, dtype) -> tuple[float, float]:
    default = default_tolerance(dtype)
    return (default if rtol is None else rtol), (default if atol is None else atol)


class Newton(AbstractSteadySolver):
    """Newton's method on `f(t, u, params) = 0`.

    The Jacobian comes from the system's sparsity pattern: one JVP per colour,
    factorised sparsely (SuperLU) for large systems and densely for small ones.
    Fast (quadratic) near a root, but it needs a guess in the root's basin:
    from far away use [`IntegrateToSteady`][symml.IntegrateToSteady].

    **Arguments:**

    - `rtol`, `atol`: stop when the Newton step is below `atol + rtol |u|` and
      the residual's max-norm is below `atol` (both in every component). The
      default is `1e-8` in float64 and `1e-4` in float32. The residual test is
      absolute: in float32 on a fine grid, where rounding in `u_xx / h²` alone
      exceeds `1e-4`, raise `atol`.
    - `max_steps`: the most Newton iterations before a
      [`SteadyStateError`][symml.SteadyStateError].
    - `linear_solver`: `"auto"` (sparse from `SPARSE_FROM` unknowns on, else
      dense), `"sparse"`, `"dense"`, or a lineax solver. The implicit adjoint
      solves its transposed system with the same one.
    """

    rtol: float | None = None
    atol: float | None = None
    max_steps: int = 50
    linear_solver: Any = eqx.field(default="auto", static=True)

    def __check_init__(self):
        _check_positive("rtol", self.rtol, "Newton")
        _check_positive("atol", self.atol, "Newton")
        _check_positive("max_steps", self.max_steps, "Newton", integer=True)

    def tolerance(self, dtype) -> tuple[float, float]:
        return _tolerance(self.rtol, self.atol, dtype)

    def solve(self, problem, u0, args, adjoint) -> _Outcome:
        rtol, atol = self.tolerance(u0.dtype)
        linear = problem.linear_solver(self.linear_solver)
        solver = optx.Newton(rtol=rtol, atol=atol, linear_solver=linear)
        sol = optx.root_find(
            problem.residual,
            solver,
            u0,
            args,
            max_steps=self.max_steps,
            adjoint=_adjoint(adjoint, linear),
            throw=False,
        )
        return _Outcome(sol.value, sol.result, sol.stats["num_steps"], {})


class LevenbergMarquardt(AbstractSteadySolver):
    """Levenberg–Marquardt on `‖f(t, u, params)‖²`: a trust-region Newton
    method, more robust than [`Newton`][symml.Newton] from a poor guess.

    Its damped steps use a dense QR factorisation, so it is meant for small
    systems (ODEs, coarse grids). A minimum of `‖f‖²` that is not a root
    (`‖f‖∞ > atol`) is reported as a failure.

    **Arguments:**

    - `rtol`, `atol`: as for [`Newton`][symml.Newton].
    - `max_steps`: the most iterations.
    """

    rtol: float | None = None
    atol: float | None = None
    max_steps: int = 200

    def __check_init__(self):
        _check_positive("rtol", self.rtol, "LevenbergMarquardt")
        _check_positive("atol", self.atol, "LevenbergMarquardt")
        _check_positive("max_steps", self.max_steps, "LevenbergMarquardt", integer=True)

    def tolerance(self, dtype) -> tuple[float, float]:
        return _tolerance(self.rtol, self.atol, dtype)

    def solve(self, problem, u0, args, adjoint) -> _Outcome:
        rtol, atol = self.tolerance(u0.dtype)
        # optimistix differentiates a least-squares solve through its
        # optimality condition `Jᵀ f = 0`, whose Jacobian `JᵀJ` does not have
        # the pattern of `J`: the adjoint's solve is dense.
        linear = lx.LU()
        sol = optx.root_find(
            problem.residual,
            optx.LevenbergMarquardt(rtol=rtol, atol=atol),
            u0,
            args,
            max_steps=self.max_steps,
            adjoint=_adjoint(adjoint, linear),
            throw=False,
        )
        residual = jnp.max(jnp.abs(problem.residual(sol.value, args)))
        result = optx.RESULTS.where(
            (sol.result == optx.RESULTS.successful) & ~(residual <= atol),
            optx.RESULTS.nonlinear_divergence,
            sol.result,
        )
        return _Outcome(sol.value, result, sol.stats["num_steps"], {})


class IntegrateToSteady(AbstractSteadySolver):
    """Integrate `du/dt = f(t₀, u, params)` until it stops moving, then polish
    with Newton: the steady state that the dynamics reach from the guess.

    Slower than Newton from a good guess, but it finds the *stable* steady
    state in the guess's basin of attraction, where Newton from far away may
    diverge or land on an unstable root. Time is frozen at `t` of
    [`steady_state`][symml.steady_state], so the system must be autonomous
    for the result to be a steady state of the dynamics. Gradients come from
    the Newton polish alone (the root does not depend on where the
    integration stopped).

    **Arguments:**

    - `solver`: a diffrax solver (default `diffrax.Kvaerno5()`: discretised
      diffusion is stiff). For an implicit solver its stage equations are
      solved with the same sparse-or-dense choice as Newton's.
    - `t1`: the longest time to integrate for; if equilibrium is not reached
      by then the polish starts from where the integration stopped.
    - `rtol`, `atol`: the integration's step-size control, and the
      steady-state event: stop when `‖f‖ < atol + rtol ‖u‖` (default `1e-6`).
    - `max_steps`: the integration's step limit.
    - `polish`: the [`Newton`][symml.Newton] solver that finishes the solve.
    """

    solver: dfx.AbstractSolver | None = None
    t1: float = 1e4
    rtol: float = 1e-6
    atol: float = 1e-6
    max_steps: int = 100_000
    polish: Newton = Newton()

    def __check_init__(self):
        _check_positive("t1", self.t1, "IntegrateToSteady")
        _check_positive("rtol", self.rtol, "IntegrateToSteady")
        _check_positive("atol", self.atol, "IntegrateToSteady")
        _check_positive("max_steps", self.max_steps, "IntegrateToSteady", integer=True)
        if not isinstance(self.polish, Newton):
            raise SteadyStateInputError(
                f"`polish` of `IntegrateToSteady` must be a `symml.Newton`; got "
                f"{type(self.polish).__name__}."
            )
        if self.solver is not None and not isinstance(self.solver, dfx.AbstractSolver):
            raise SteadyStateInputError(
                f"`solver` of `IntegrateToSteady` must be a diffrax solver (e.g. "
                f"`diffrax.Kvaerno5()`); got {type(self.solver).__name__}."
            )

    def tolerance(self, dtype) -> tuple[float, float]:
        return self.polish.tolerance(dtype)

    def solve(self, problem, u0, args, adjoint) -> _Outcome:
        solver = dfx.Kvaerno5() if self.solver is None else self.solver
        root_finder = getattr(solver, "root_finder", None)
        if root_finder is not None and hasattr(root_finder, "linear_solver"):
            linear = problem.linear_solver(self.polish.linear_solver)
            solver = eqx.tree_at(lambda s: s.root_finder.linear_solver, solver, linear)
        # The root does not depend on where the integration stopped, so no
        # gradient is taken through it: the polish's adjoint carries them all.
        u0, args0 = jax.lax.stop_gradient((u0, args))
        sol = dfx.diffeqsolve(
            dfx.ODETerm(problem.vector_field),
            solver,
            0.0,
            self.t1,
            None,
            u0,
            args=args0,
            saveat=dfx.SaveAt(t1=True),
            stepsize_controller=dfx.PIDController(rtol=self.rtol, atol=self.atol),
            event=dfx.Event(dfx.steady_state_event(self.rtol, self.atol)),
            max_steps=self.max_steps,
            throw=False,
        )
        start = jnp.where(jnp.isfinite(sol.ys[-1]), sol.ys[-1], u0)
        out = self.polish.solve(problem, start, args, adjoint)
        stats = {
            "integration_steps": sol.stats["num_steps"],
            "integration_time": sol.ts[-1],
        }
        return _Outcome(out.u, out.result, out.num_steps, stats)
