"""Derivatives of a function with respect to its inputs.

Guarantees: every scheme maps a pure function `fn: (d,) -> (m,)` of ONE point
and a point `x: (d,)` to partial derivatives `(m,)` for the requested
multi-indices (or to a Laplacian), is itself pure, and composes with `jax.jit`,
`jax.vmap` over points and an outer `jax.grad` with respect to whatever `fn`
closes over (network weights), in float32 and float64. `Reverse`, `Forward`
and `Taylor` are exact to rounding; `FiniteDifference` has an `O(h²)` error
with a step chosen by `fd_step`. A primitive that the Taylor scheme cannot
handle is a `DerivativeError`, never a silent fallback.
"""

from ._fd import (
    FiniteDifference as FiniteDifference,
    central_stencil as central_stencil,
    fd_step as fd_step,
)
from ._get import (
    SCHEMES as SCHEMES,
    get_scheme as get_scheme,
    zero_derivative_order as zero_derivative_order,
)
from ._nested import Forward as Forward, Reverse as Reverse
from ._scheme import AbstractScheme as AbstractScheme
from ._taylor import Taylor as Taylor, taylor_coefficients as taylor_coefficients
from ._taylor_rules import (
    TAYLOR_RULES as TAYLOR_RULES,
    TaylorSeries as TaylorSeries,
    register_taylor_rule as register_taylor_rule,
    taylor_rules as taylor_rules,
)
