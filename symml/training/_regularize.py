"""Regularisers that make a learned vector field cheap to solve.

Both are options of [`SolveInLoop`][symml.SolveInLoop] (`regularize=`) and
add a term to its loss, computed along the same solve that fits the data:

- [`SolverHeuristics`][symml.SolverHeuristics] (SRNODE, Pal et al. 2021): the
  adaptive solver's own local error and stiffness estimates, summed over its
  accepted steps. The solver computes them anyway, so the term costs almost
  nothing.
- [`TaylorRegularization`][symml.TaylorRegularization] (TayNODE, Kelly et al.
  2020): `∫ ‖d^K z/dt^K‖² dt` along the solution, with the K-th time
  derivative from the Taylor coefficients of the solution (Taylor mode) and
  the integral as one more state of the solve. K Taylor passes per
  evaluation of the field: several times the cost of a plain solve.
"""

import abc
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PyTree, Scalar

from .._diffrax import SolveOptions, check_heuristics, diffeqsolve, heuristics_of
from .._errors import DerivativeError, FitError
from ..derivatives import taylor_coefficients, zero_derivative_order
from ..lowering import AbstractSystem
from ..nets import get_activation
from ._method import non_negative_number, positive_integer, positive_number


class AbstractRegularization(abc.ABC):
    """A term added to the loss of [`SolveInLoop`][symml.SolveInLoop] that is
    computed along its solves. Each regulariser is a frozen dataclass whose
    fields are its options.

    Subclasses implement `check` (is the regulariser usable with this system
    and these solve options? called once when the fit is prepared) and
    `solve` (one solve of the fit, returning the solution and the term).
    """

    name: ClassVar[str]

    @abc.abstractmethod
    def check(self, system: AbstractSystem, options: SolveOptions, dtype) -> None:
        """Raise a [`FitError`][symml.FitError] saying what to do if the
        regulariser cannot be used with `system` solved by `options`."""

    @abc.abstractmethod
    def solve(
        self,
        system: AbstractSystem,
        options: SolveOptions,
        y0: Float[Array, " n"],
        params: PyTree,
        ts: Float[Array, " T"],
    ) -> tuple[Any, Scalar]:
        """Solve `system` from `y0` saved at `ts`; return the diffrax solution
        (whose `ys` has shape `(T, n)`) and the weighted regularisation term."""

    @classmethod
    def options(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))


def _relative_weight(value, name: str, owner: str) -> float:
    """`True`/`False` or a number >= 0: how much one part of a term counts."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    return non_negative_number(value, name, owner)


@dataclass(frozen=True)
class SolverHeuristics(AbstractRegularization):
    """Regularise the adaptive solver's own cost heuristics (SRNODE; Pal, Ma,
    Shah & Rackauckas, "Opening the blackbox: accelerating neural differential
    equations by regularizing internal solver heuristics", ICML 2021).

    The term is `weight · (error · Σ_j E_j h_j + stiffness · Σ_j S_j)` over
    the accepted steps `j` of every solve in the loss, where

    - `E_j` is the local error estimate of the step in the step-size
      controller's own scaled RMS norm (the quantity it compares with 1), and
      `h_j` the step;
    - `S_j = ‖k_s − k_{s−1}‖ / (h_j ‖Y_s − Y_{s−1}‖)` is the stiffness estimate
      from the last two stages of the explicit Runge–Kutta step (Hairer &
      Wanner, *Solving ODEs II*, IV.2): about the magnitude of the largest
      eigenvalue of the Jacobian along the step, which limits an explicit
      solver's step.

    Both come out of the solve that fits the data (no extra evaluation of the
    field), so training costs about what plain training costs, and a field
    that needs fewer steps makes each training step cheaper too. Gradients
    are those of the discrete solve with its step sizes held fixed (a
    discrete adjoint: diffrax's controller passes no gradient through the
    choice of step).

    **Arguments:**

    - `weight`: the weight of the term in the loss (the data term is of
      order 1 for an unfitted model, of the order of the noise for a fitted
      one).
    - `error`: include the error term (`True`, `False`, or its relative
      weight).
    - `stiffness`: include the stiffness term (`True`, `False`, or its
      relative weight). Off by default: `Σ S_j` is a sum of eigenvalue
      magnitudes over the steps, typically a hundred to a thousand times
      the error term, so it needs a small relative weight (`stiffness=1e-3`
      or so) not to swamp the fit.

    Needs an adaptive explicit Runge–Kutta solver with an embedded error
    estimate (`"Tsit5"`, the default, or `"Dopri5"`) and the default adjoint.
    """

    name: ClassVar[str] = "SolverHeuristics"
    weight: float = 1e-3
    error: Any = True
    stiffness: Any = False

    def __post_init__(self):
        owner = "SolverHeuristics"
        object.__setattr__(
            self, "weight", positive_number(self.weight, "weight", owner)
        )
        error = _relative_weight(self.error, "error", owner)
        stiffness = _relative_weight(self.stiffness, "stiffness", owner)
        if error == 0 and stiffness == 0:
            raise FitError(
                "`SolverHeuristics(error=False, stiffness=False)` regularises "
                "nothing; keep at least one of `error` and `stiffness`."
            )
        object.__setattr__(self, "_weights", (error, stiffness))

    def check(self, system, options, dtype) -> None:
        check_heuristics(options, FitError)

    def solve(self, system, options, y0, params, ts):
        solution = diffeqsolve(system, options, y0, params, ts=ts, heuristics=True)
        error_sum, stiffness_sum = heuristics_of(solution)
        error, stiffness = self._weights
        term = error * error_sum + stiffness * stiffness_sum
        return solution, self.weight * term


def ode_taylor_coefficients(
    f, t: Scalar, z: Float[Array, " n"], args: PyTree, order: int
) -> list[Float[Array, " n"]]:
    """The normalised Taylor coefficients `z_k = z^(k)(t) / k!`, `k = 0..order`,
    of the solution of `dz/dt = f(t, z, args)` through `z` at time `t`.

    They satisfy the recurrence `(k + 1) z_{k+1} = [f(t + s, z(s))]_k`: the
    k-th coefficient of the field along the truncated series `z_0 + z_1 s +
    ... + z_k s^k`, which only needs `z_0..z_k`. Each coefficient is one
    Taylor-mode pass of `f` (symml's Taylor scheme,
    `symml.derivatives.taylor_coefficients`), so
    `order` passes in all; `d^K z/dt^K = K! z_K`. Pure: safe under `jit`,
    `vmap` and `grad`.

    **Arguments:**

    - `f`: the vector field `f(t, z, args) -> dz/dt`, z of shape `(n,)`.
    - `t`, `z`: the time and state.
    - `args`: the field's parameters.
    - `order`: the highest coefficient, `>= 0`.

    **Returns:** a list of `order + 1` arrays of shape `(n,)`.
    """
    coefficients = [z]
    for k in range(order):
        if k == 0:
            c = f(t, z, args)
        else:
            known = list(coefficients)

            def along(s, known=known):
                s = s[0]
                # Horner: z_0 + s (z_1 + s (z_2 + ...)).
                y = known[-1]
                for c in reversed(known[:-1]):
                    y = c + s * y
                return f(t + s, y, args)

            series = taylor_coefficients(
                along, jnp.zeros(1, z.dtype), np.ones((1, 1)), k
            )
            c = series[k][0]
        coefficients.append(c / (k + 1))
    return coefficients


@dataclass(frozen=True)
class TaylorRegularization(AbstractRegularization):
    """Regularise `∫ ‖d^K z/dt^K‖² dt` along each solve (TayNODE; Kelly,
    Bettencourt, Johnson & Duvenaud, "Learning differential equations that
    are easy to solve", NeurIPS 2020).

    The K-th time derivative of the solution is `K!` times its K-th Taylor
    coefficient, from the recurrence of
    [`ode_taylor_coefficients`][symml.training.ode_taylor_coefficients] (Taylor
    mode through the whole right-hand side, networks included); the integral
    is one more state of the solve, `r' = ‖d^K z/dt^K‖²`, so the adaptive
    solver integrates it to its tolerances. The term is `weight · r(t_end)`,
    summed over the solves.

    Each evaluation of the augmented field costs K Taylor passes through the
    right-hand side: expect training several times slower than plain
    training (the price [`SolverHeuristics`][symml.SolverHeuristics] avoids).

    **Arguments:**

    - `order`: K, the order of the time derivative (2 or 3 is usual).
    - `weight`: the weight of the term in the loss.

    The networks' activations must have non-vanishing derivatives up to order
    K − 1 (relu's second derivative is zero: use a smooth activation such as
    tanh), and every operation of the right-hand side needs a Taylor rule.
    """

    name: ClassVar[str] = "TaylorRegularization"
    order: int = 2
    weight: float = 1e-3

    def __post_init__(self):
        owner = "TaylorRegularization"
        positive_integer(self.order, "order", owner)
        object.__setattr__(
            self, "weight", positive_number(self.weight, "weight", owner)
        )

    def check(self, system, options, dtype) -> None:
        k = self.order
        for unknown in system.model.unknowns:
            activation = get_activation(unknown.activation)
            vanishing = zero_derivative_order(activation)
            if vanishing is not None and k - 1 >= vanishing:
                raise FitError(
                    f"`TaylorRegularization(order={k})` needs derivatives of order "
                    f"up to {k - 1} of the network `{unknown.name}`, whose "
                    f"`{activation.name}` activation has derivatives of order "
                    f"{vanishing} and above that are identically zero: the term "
                    "would not see its curvature. Use a smooth activation such as "
                    f"'tanh', or `order={vanishing}` or less, or "
                    "`SolverHeuristics()`."
                )
        y = jax.ShapeDtypeStruct((system.n,), dtype)
        t = jax.ShapeDtypeStruct((), dtype)
        params = system.init_params(dtype=dtype)
        try:
            jax.eval_shape(lambda t, y: _derivative(system, t, y, params, k), t, y)
        except DerivativeError as error:
            raise FitError(
                f"`TaylorRegularization(order={k})` propagates Taylor series through "
                f"the model's right-hand side, and cannot: {error} Use "
                "`SolverHeuristics()` instead, which needs no derivatives."
            ) from None

    def solve(self, system, options, y0, params, ts):
        n = y0.shape[0]
        k = self.order

        def augmented(t, w, params):
            z = w[:n]
            coefficients = ode_taylor_coefficients(system, t, z, params, k)
            dk = math.factorial(k) * coefficients[k]
            return jnp.concatenate([coefficients[1], jnp.sum(dk**2)[None]])

        start = jnp.concatenate([y0, jnp.zeros(1, y0.dtype)])
        solution = diffeqsolve(augmented, options, start, params, ts=ts)
        term = solution.ys[-1, n]
        solution = _Trimmed(solution, solution.ys[:, :n])
        return solution, self.weight * term


def _derivative(system, t, z, params, k: int):
    """`d^k z/dt^k` of the solution through `z` at `t`."""
    return math.factorial(k) * ode_taylor_coefficients(system, t, z, params, k)[k]


class _Trimmed:
    """A diffrax solution with the regulariser's extra state left out of `ys`."""

    def __init__(self, solution, ys):
        self.ys = ys
        self.ts = solution.ts
        self.result = solution.result
        self.stats = solution.stats
