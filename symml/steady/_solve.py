"""`steady_state`: the root of a system's right-hand side, with gradients by the
implicit function theorem and failures reported as errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import optimistix as optx
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from .._errors import SteadyStateError, SteadyStateInputError
from ..lowering import AbstractSystem, Params
from ._guess import SkipGuess
from ._solvers import (
    AbstractSteadySolver,
    AdjointChoice,
    Newton,
    _Outcome,
    _Problem,
)

__all__ = ["SteadyState", "steady_state", "flat_guess"]


class SteadyState(eqx.Module):
    """The result of [`steady_state`][symml.steady_state].

    **Fields:**

    - `u`: the steady state, a flat vector in the system's state order (use
      `system.unflatten(u)` for `{state: grid array}` on a discretised PDE).
    - `residual_norm`: `max |f(t, u, params)|` at `u`.
    - `num_steps`: the Newton (or Levenberg–Marquardt) iterations taken.
    - `converged`: whether the solve met its tolerances.
    - `stats`: extra counters (`integration_steps`, `integration_time` for
      [`IntegrateToSteady`][symml.IntegrateToSteady]).
    """

    u: Float[Array, " n"]
    residual_norm: Float[Array, ""]
    num_steps: Int[Array, ""]
    converged: Bool[Array, ""]
    stats: dict[str, Array]
    result: optx.RESULTS


def _check_system(system: Any) -> None:
    if not isinstance(system, AbstractSystem):
        raise SteadyStateInputError(
            f"`system` must be a lowered system, such as `symml.lower(model)[0]` or "
            f"`symml.discretize(model, grid)`; got {type(system).__name__}."
        )


def _params(system: AbstractSystem, params: Any) -> Any:
    if params is not None:
        return params
    if system.needs_params:
        raise SteadyStateInputError(
            "The model has unknown terms or trainable parameters, so `steady_state` "
            "needs `params=` (e.g. `system.init_params(key=jax.random.PRNGKey(0))`)."
        )
    return Params({}, {})


def flat_guess(system: AbstractSystem, guess: Any, n: int, inputs: Any = None) -> Array:
    """The flat initial guess from an array, a `{state: value}` dict or a
    [`SkipGuess`][symml.SkipGuess] evaluated at `inputs`."""
    if isinstance(guess, SkipGuess):
        if inputs is None:
            raise SteadyStateInputError(
                "`guess` is a `SkipGuess`, a network of the experiment's inputs, so "
                "`steady_state` needs `inputs=` (the known inputs of this "
                "experiment, an array of shape "
                f"({guess.n_inputs},))."
            )
        inputs = jnp.asarray(inputs)
        if inputs.shape != (guess.n_inputs,):
            raise SteadyStateInputError(
                f"`inputs` has shape {inputs.shape}; the `SkipGuess` takes "
                f"{guess.n_inputs} input(s), so pass an array of shape "
                f"({guess.n_inputs},)."
            )
        guess = guess(inputs)
    elif isinstance(guess, Mapping):
        names = system.state_names
        values = {str(getattr(k, "func", k)): v for k, v in guess.items()}
        missing = [s for s in names if s not in values]
        extra = [k for k in values if k not in names]
        if missing or extra:
            raise SteadyStateInputError(
                f"`guess` must give a value for every state ({', '.join(names)}); "
                + (f"missing: {', '.join(missing)}. " if missing else "")
                + (f"not states: {', '.join(extra)}." if extra else "")
            )
        guess = system.flatten(values)
    elif not isinstance(guess, jax.Array | np.ndarray | list | tuple | float | int):
        raise SteadyStateInputError(
            f"`guess` must be an array of the flat state, a `{{state: value}}` dict "
            f"or a `symml.SkipGuess`; got {type(guess).__name__}."
        )
    guess = jnp.asarray(guess)
    if not jnp.issubdtype(guess.dtype, jnp.floating):
        guess = guess.astype(jnp.zeros(()).dtype)
    if guess.shape != (n,):
        raise SteadyStateInputError(
            f"`guess` has shape {guess.shape}; the system has {n} unknowns, so the "
            f"guess must be a flat vector of shape ({n},)."
        )
    return guess


@eqx.filter_jit
def _run(
    solver: AbstractSteadySolver,
    problem: _Problem,
    u0: Array,
    args: Any,
    adjoint: AdjointChoice,
) -> SteadyState:
    out: _Outcome = solver.solve(problem, u0, args, adjoint)
    residual = jnp.max(jnp.abs(problem.residual(out.u, args)))
    converged = (out.result == optx.RESULTS.successful) & jnp.isfinite(residual)
    result = optx.RESULTS.where(
        (out.result == optx.RESULTS.successful) & ~jnp.isfinite(residual),
        optx.RESULTS.nonfinite,
        out.result,
    )
    return SteadyState(out.u, residual, out.num_steps, converged, out.stats, result)


def _linear_choice(solver: AbstractSteadySolver):
    return getattr(getattr(solver, "polish", solver), "linear_solver", "auto")


@eqx.filter_jit
def _run_masked(
    solver: AbstractSteadySolver,
    problem: _Problem,
    u0: Array,
    args: Any,
    adjoint: AdjointChoice,
) -> SteadyState:
    """`_run`, with a failed solve giving a zero gradient instead of a NaN (or
    an error from inside lineax): solve without gradients, then differentiate
    one Newton step from the root, on the residual masked to `u` itself where
    the solve failed."""
    first = _run(
        solver, problem, jax.lax.stop_gradient(u0), jax.lax.stop_gradient(args), adjoint
    )
    ok = first.converged
    start = jax.lax.stop_gradient(jnp.where(ok, first.u, jnp.zeros_like(first.u)))
    rtol, atol = solver.tolerance(u0.dtype)
    polish = Newton(rtol, atol, max_steps=4, linear_solver=_linear_choice(solver))
    masked = eqx.tree_at(lambda p: p.active, problem, ok, is_leaf=lambda x: x is None)
    out = polish.solve(masked, start, args, adjoint)
    u = jnp.where(ok, out.u, first.u)
    return SteadyState(
        u, first.residual_norm, first.num_steps, ok, first.stats, first.result
    )


def _describe(result, num_steps: int, residual: float, max_steps: int) -> str:
    if result == optx.RESULTS.singular:
        return (
            f"the Jacobian was singular at iteration {num_steps} (residual norm "
            f"{residual:.3g}): the steady state is not isolated, or the guess sits "
            "where the linearisation degenerates. Try another guess or "
            "`solver=symml.IntegrateToSteady()`."
        )
    if result == optx.RESULTS.nonlinear_max_steps_reached:
        return (
            f"Newton did not converge in {num_steps} iterations (`max_steps="
            f"{max_steps}`; residual norm {residual:.3g}). Try a closer guess, "
            "`solver=symml.IntegrateToSteady()`, or looser tolerances."
        )
    return (
        f"the solve failed after {num_steps} iterations with residual norm "
        f"{residual:.3g} ({optx.RESULTS[result] or 'not a root'}). Try a closer "
        "guess or `solver=symml.IntegrateToSteady()`."
    )


def _max_steps(solver: AbstractSteadySolver) -> int:
    inner = getattr(solver, "polish", solver)
    return int(getattr(inner, "max_steps", 0))


def _is_traced(tree) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in jtu.tree_leaves(tree))


def steady_state(
    system: AbstractSystem,
    guess: Float[ArrayLike, " n"] | Mapping | SkipGuess,
    params: Params | None = None,
    *,
    solver: AbstractSteadySolver | None = None,
    t: float = 0.0,
    inputs: Float[ArrayLike, " k"] | None = None,
    adjoint: AdjointChoice = "implicit",
    throw: bool = True,
) -> SteadyState:
    """Find a steady state `u` with `system(t, u, params) = 0`.

    Pure and differentiable: under `jax.grad` the gradient with respect to
    `params` (trainable parameters and network weights) comes from the
    implicit function theorem, `du/dθ = -(∂f/∂u)⁻¹ ∂f/∂θ`, one transposed
    linear solve with the same sparse (or dense) factorisation as Newton's, not
    from differentiating the iterations.

    **Arguments:**

    - `system`: a lowered system ([`AbstractSystem`][symml.AbstractSystem]):
      an ODE system (`f, params = symml.lower(model, ...)`) or a discretised
      PDE (`symml.discretize(model, grid)`).
    - `guess`: the initial guess: a flat state vector, a `{state: value}`
      dict, or a [`SkipGuess`][symml.SkipGuess] (a network of the
      experiment's `inputs` trained to predict the root).
    - `params`: the [`Params`][symml.Params]; may be left out when the model
      has no unknown terms and no trainable parameters.
    - `solver`: [`Newton`][symml.Newton] (the default),
      [`LevenbergMarquardt`][symml.LevenbergMarquardt] or
      [`IntegrateToSteady`][symml.IntegrateToSteady].
    - `t`: the time at which a time-dependent right-hand side is frozen.
    - `inputs`: the experiment's known inputs, for a `SkipGuess`.
    - `adjoint`: `"implicit"` (the default) or `"unrolled"` (differentiate
      through the iterations: slower, for checking), or an optimistix adjoint.
    - `throw`: raise [`SteadyStateError`][symml.SteadyStateError] when the
      solve fails. Outside `jit` the message gives the residual norm and the
      iteration count; under `jit`, `vmap` or `grad` the failure is raised at
      run time by `equinox.error_if`. With `throw=False` check
      `result.converged` yourself: a failed solve returns its last iterate
      and contributes a zero gradient (it costs one more Newton step, which
      differentiates the root).

    **Returns:**

    A [`SteadyState`][symml.SteadyState] with the state `u`, its residual
    norm, the iteration count and whether the solve converged.
    """
    _check_system(system)
    if isinstance(t, bool) or not isinstance(t, int | float | np.number | jax.Array):
        raise SteadyStateInputError(
            f"`t` (the time at which the right-hand side is frozen) must be a "
            f"number; got {t!r}."
        )
    if solver is None:
        solver = Newton()
    if not isinstance(solver, AbstractSteadySolver):
        raise SteadyStateInputError(
            f"`solver` must be `symml.Newton(...)`, `symml.LevenbergMarquardt(...)` "
            f"or `symml.IntegrateToSteady(...)`; got {type(solver).__name__}."
        )
    pattern = system.jacobian_sparsity()
    n = pattern.shape[0]
    u0 = flat_guess(system, guess, n, inputs)
    if not isinstance(u0, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(u0))):
        bad = np.flatnonzero(~np.isfinite(np.asarray(u0)))
        raise SteadyStateInputError(
            f"The initial guess is not finite (NaN or inf) at flat index "
            f"{int(bad[0])}; give a finite guess."
        )
    params = _params(system, params)
    problem = _Problem(system, n)
    args = (jnp.asarray(t, u0.dtype), params)
    try:
        # Without `throw`, failures are the caller's to mask (a fit does):
        # their gradient must then be zero, not NaN.
        run = _run if throw or adjoint != "implicit" else _run_masked
        sol = run(solver, problem, u0, args, adjoint)
    except jax.errors.JaxRuntimeError as e:
        # SuperLU raises on an exactly singular matrix from inside the host
        # callback; report it like a singular dense factorisation.
        if "singular" not in str(e):
            raise
        raise SteadyStateError(
            "The steady-state solve failed: the sparse factorisation found the "
            "Jacobian exactly singular. The steady state is not isolated, or the "
            "guess sits where the linearisation degenerates. Try another guess "
            "or `solver=symml.IntegrateToSteady()`."
        ) from None
    if not throw:
        return sol
    if _is_traced(sol):
        u = eqx.error_if(
            sol.u,
            ~sol.converged,
            "symml.SteadyStateError: the steady-state solve did not converge (call "
            "`symml.steady_state` outside `jit` for the residual norm and the "
            "iteration count, or pass `throw=False` and check `converged`).",
        )
        return eqx.tree_at(lambda s: s.u, sol, u)
    if not bool(sol.converged):
        raise SteadyStateError(
            "The steady-state solve failed: "
            + _describe(
                sol.result,
                int(sol.num_steps),
                float(sol.residual_norm),
                _max_steps(solver),
            )
        )
    return sol
