"""Discretisation-aware discovery: how large the stencils' truncation error is
in the inputs of a universal PDE's unknown, next to the terms recovered.

A network fitted through the method of lines sees derivatives computed by
central stencils of accuracy order p, `D u = ∂ᵐu + O(hᵖ)`, and learns
whatever compensates their error; sparse regression then finds that
compensation as terms. The error of each derivative input is the difference
between what the network saw and an accurate derivative of the sampled field
(spectral on a periodic axis, tenth-order differences otherwise), so it is the
stencils' actual error, not an asymptotic estimate that fails on coarse grids;
it is propagated through the recovered expression and compared with each
recovered term.
"""

import math
from collections.abc import Mapping, Sequence

import numpy as np
import sympy as sp
from sympy.core.function import AppliedUndef

from ._differentiation import FiniteDifference, Spectral
from ._warnings import TruncationErrorWarning, warn

# A term smaller than this many times the propagated truncation error may be
# discretisation error; a propagated error larger than this fraction of the
# output biases the coefficients by about as much.
_TERM_FACTOR = 3.0
_BIAS = 0.02


def _derivative_input(expr, spatial):
    """`(state, variable, order)` if `expr` is a pure spatial derivative of a
    state, else `None`."""
    if not isinstance(expr, sp.Derivative) or not isinstance(expr.expr, AppliedUndef):
        return None
    if len(expr.variable_count) != 1:
        return None
    var, count = expr.variable_count[0]
    if var not in spatial:
        return None
    return expr.expr, var, int(count)


def truncation_check(
    name: str,
    inputs: Sequence[sp.Expr],
    samples: np.ndarray,
    outputs: np.ndarray,
    terms: Mapping[sp.Expr, float],
    *,
    order: int,
    spacing: Mapping,
    shape: Sequence[int],
    periodic: Mapping,
) -> float | None:
    """Warn when a recovered term of `name` is of the size of the truncation
    error its derivative inputs carry, or when that error is large enough to
    bias the coefficients.

    **Arguments:**

    - `name`: the unknown output, for messages.
    - `inputs`: the unknown's input expressions (`[u, u.diff(x)]`).
    - `samples`: the sampled inputs, shape `(n, len(inputs))`, grid points in
      C order within each time.
    - `outputs`: the sampled outputs, shape `(n,)`.
    - `terms`: `{term in the inputs: coefficient}`, what was recovered.
    - `order`, `spacing`, `shape`, `periodic`: the discretisation (stencil
      accuracy order, for messages; `{variable: step}`; grid shape;
      `{variable: bool}`).

    **Returns:**

    The propagated truncation error relative to the RMS of the outputs, or
    `None` when it cannot be estimated (no derivative input, or no input that
    is the differentiated field itself).
    """
    spatial = list(spacing)
    size = math.prod(shape)
    if samples.shape[0] % size:
        return None
    column = {e: i for i, e in enumerate(inputs)}
    errors = {}
    for i, expr in enumerate(inputs):
        found = _derivative_input(expr, spatial)
        if found is None:
            continue
        state, var, m = found
        if state not in column:
            return None
        field = samples[:, column[state]].reshape(-1, *shape)
        axis = 1 + spatial.index(var)
        coords = float(spacing[var]) * np.arange(shape[axis - 1])
        wrap = bool(periodic.get(var))
        reference = Spectral() if wrap else FiniteDifference(accuracy=10)
        exact = reference(field, coords, axis=axis, order=m, periodic=wrap)
        errors[i] = samples[:, i] - exact.reshape(-1)
    if not errors or not terms:
        return None
    symbols = [sp.Dummy(f"z{i}") for i in range(len(inputs))]
    to_symbols = dict(zip(inputs, symbols, strict=True))
    expression = sp.Add(*(c * t for t, c in terms.items())).xreplace(to_symbols)
    propagated = np.zeros(samples.shape[0])
    for i, error in errors.items():
        slope = sp.lambdify(symbols, expression.diff(symbols[i]), modules="numpy")
        propagated += np.broadcast_to(slope(*samples.T), error.shape) * error
    tau = float(np.sqrt(np.mean(propagated**2)))
    scale = float(np.sqrt(np.mean(outputs**2))) or 1.0
    small = []
    for term, c in terms.items():
        value = sp.lambdify(symbols, term.xreplace(to_symbols), modules="numpy")
        size_j = float(
            np.sqrt(
                np.mean(np.broadcast_to(c * value(*samples.T), propagated.shape) ** 2)
            )
        )
        if size_j < _TERM_FACTOR * tau:
            small.append(f"{term} ({100 * size_j / scale:.3g} %)")
    grid = ", ".join(f"h_{v} = {float(h):.3g}" for v, h in spacing.items())
    remedy = (
        "higher-order stencils (`symml.discretize(model, grid, order=6)`) or a "
        "finer grid"
        if order < 6
        else "a finer grid"
    )
    if small or tau / scale > _BIAS:
        detail = (
            f" The recovered term(s) {', '.join(small)} are smaller than three "
            "times that and may be discretisation error rather than physics."
            if small
            else " The recovered coefficients may be biased by about as much."
        )
        warn(
            f"The derivative inputs of `{name}` were computed with central stencils "
            f"of order {order} ({grid}); their truncation error, carried through "
            f"the recovered expression, is about {100 * tau / scale:.3g} % of the "
            f"size of `{name}`.{detail} Fit with {remedy}, and discover again.",
            TruncationErrorWarning,
        )
    return tau / scale
