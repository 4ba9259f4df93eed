"""Steady states: root solves of a system's right-hand side, gradients through
them by the implicit function theorem, and skip initial guesses.

Guarantees:

- [`steady_state`][symml.steady_state] takes any system callable as
  `system(t, u, params)` with a `jacobian_sparsity()` (a lowered ODE system or
  a discretised PDE) and returns `u` with `‖f(t, u, params)‖∞ ≤ atol`, or
  raises [`SteadyStateError`][symml.SteadyStateError] with the residual norm
  and the iteration count; it never returns a silent NaN (with `throw=False`
  the result says whether it converged).
- The Jacobian is built from the system's sparsity pattern (one JVP per
  colour) and factorised sparsely for large systems, densely for small ones.
- The solve is pure: safe under `jit`, `vmap` and `grad`. Gradients with
  respect to trainable parameters and network weights come from the implicit
  function theorem (one transposed linear solve at the root), and agree with
  differentiating the unrolled iterations and with finite differences.
- A [`SkipGuess`][symml.SkipGuess] is an ordinary network of the experiment's
  inputs; the root does not depend on it, only the iteration count does.
- [`fit`][symml.fit] with [`SteadyData`][symml.SteadyData] (the
  [`SteadyFit`][symml.SteadyFit] method) trains a model on steady states of
  several experiments that differ in known inputs; a solve that fails stops
  the fit with a [`FitError`][symml.FitError] naming it, never a NaN weight.
"""

from ._data import SteadyData as SteadyData
from ._fit import SteadyFit as SteadyFit, SteadyFitResult as SteadyFitResult
from ._guess import SkipGuess as SkipGuess
from ._solve import SteadyState as SteadyState, steady_state as steady_state
from ._solvers import (
    SPARSE_FROM as SPARSE_FROM,
    AbstractSteadySolver as AbstractSteadySolver,
    IntegrateToSteady as IntegrateToSteady,
    LevenbergMarquardt as LevenbergMarquardt,
    Newton as Newton,
)
