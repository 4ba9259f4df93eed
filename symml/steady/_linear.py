"""`ColoredLU`: a dense LU of a Jacobian evaluated by one JVP per colour.

Newton's default dense solve in optimistix materialises the Jacobian with one
JVP per unknown; with the system's sparsity pattern, one JVP per colour of the
pattern (three for a 1-D second-order stencil, whatever the grid) gives the
same matrix. Small systems then factorise densely inside JAX, which vmaps over
experiments natively, where the host-side sparse factorisation of
[`SparseLU`][symml.sparsity.SparseLU] runs them one after another.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import lineax as lx
import numpy as np
import scipy.sparse as ssp

from .._errors import SteadyStateInputError
from ..sparsity import StaticIndices, color_columns

__all__ = ["ColoredLU"]


class ColoredLU(lx.AbstractLinearSolver):
    """A lineax solver for square operators on flat vectors with a known
    Jacobian pattern: compressed evaluation (one `operator.mv` per colour of
    `pattern ∪ I`), dense LU factorisation with `jax.scipy.linalg.lu_factor`.

    A singular matrix gives `lineax.RESULTS.singular` (non-finite factors),
    not a silent NaN.

    **Arguments:**

    - `pattern`: the `(n, n)` Jacobian pattern, e.g. `system.jacobian_sparsity()`.
    """

    _rows: StaticIndices = eqx.field(static=True)
    _cols: StaticIndices = eqx.field(static=True)
    _colors: StaticIndices = eqx.field(static=True)
    n: int = eqx.field(static=True)

    def __init__(self, pattern: Any):
        pattern = ssp.csr_matrix(pattern, dtype=bool)
        n = pattern.shape[0]
        full = (pattern + ssp.identity(n, dtype=bool, format="csr")).tocoo()
        self._rows = StaticIndices(full.row)
        self._cols = StaticIndices(full.col)
        self._colors = StaticIndices(color_columns(full))
        self.n = n

    @property
    def num_colors(self) -> int:
        return int(self._colors.array.max()) + 1

    def init(self, operator: lx.AbstractLinearOperator, options: dict[str, Any]):
        del options
        struct = operator.in_structure()
        if (
            not isinstance(struct, jax.ShapeDtypeStruct)
            or struct.shape != (self.n,)
            or operator.out_size() != self.n
        ):
            raise SteadyStateInputError(
                f"`ColoredLU` was built for flat vectors of {self.n} unknowns, but "
                f"the operator acts on {struct}; build it from this system's "
                "pattern."
            )
        colors = self._colors.array
        seeds = np.zeros((self.num_colors, self.n), dtype=struct.dtype)
        seeds[colors, np.arange(self.n)] = 1
        compressed = jax.vmap(operator.mv)(jnp.asarray(seeds))
        rows, cols = self._rows.array, self._cols.array
        data = compressed[colors[cols], rows]
        matrix = jnp.zeros((self.n, self.n), struct.dtype).at[rows, cols].set(data)
        return jsl.lu_factor(matrix), eqx.internal.Static(False)

    def compute(self, state, vector, options: dict[str, Any]):
        del options
        lu_and_piv, transpose = state
        solution = jsl.lu_solve(lu_and_piv, vector, trans=1 if transpose.value else 0)
        # An exactly singular matrix leaves a zero pivot: inf or NaN here.
        finite = jnp.all(jnp.isfinite(solution))
        result = lx.RESULTS.where(finite, lx.RESULTS.successful, lx.RESULTS.singular)
        return solution, result, {}

    def transpose(self, state, options: dict[str, Any]):
        lu_and_piv, transpose = state
        return (lu_and_piv, eqx.internal.Static(not transpose.value)), {}

    def conj(self, state, options: dict[str, Any]):
        (lu, piv), transpose = state
        return ((lu.conj(), piv), transpose), {}

    def assume_full_rank(self) -> bool:
        return True
