"""Sparsity: Jacobian and Hessian patterns, colouring, compressed Jacobians.

Guarantees:

- `jacobian_sparsity` / `hessian_sparsity` take any JAX-traceable function and
  return the *global* pattern (valid for every value of the input and of the
  extra arguments) as a boolean `scipy.sparse.csr_matrix`, by propagating
  index sets through the jaxpr; no derivative is evaluated. Every primitive is
  handled by a registered rule; a primitive without one raises
  [`SparsityError`][symml.SparsityError], never a silent dense fallback.
- `color_columns` (forward mode), `color_rows` (reverse mode) and `color_star`
  (symmetric Hessians) return valid colourings, which `check_coloring`,
  `check_row_coloring` and `check_star_coloring` verify;
  `compressed_jacobian` evaluates one JVP per colour and is pure, jit-able and
  differentiable.
- `SparseLU` plugs the compressed Jacobian into diffrax's implicit solvers
  (host-side sparse LU through `jax.pure_callback`); `solve_stiff` runs such
  a solve.

This stage depends on JAX, numpy and scipy only, never on the sympy DSL.
"""

from ._coloring import (
    check_coloring as check_coloring,
    check_row_coloring as check_row_coloring,
    check_star_coloring as check_star_coloring,
    color_columns as color_columns,
    color_rows as color_rows,
    color_star as color_star,
)
from ._compressed import (
    SparseJacobian as SparseJacobian,
    StaticIndices as StaticIndices,
    compressed_jacobian as compressed_jacobian,
)
from ._deps import (
    DependencySets as DependencySets,
    index_matrix as index_matrix,
    left_multiply as left_multiply,
    take as take,
    union as union,
    with_cross_pairs as with_cross_pairs,
    with_self_pairs as with_self_pairs,
)
from ._detect import (
    hessian_sparsity as hessian_sparsity,
    jacobian_sparsity as jacobian_sparsity,
)
from ._interpreter import (
    RuleContext as RuleContext,
    register_sparsity_rule as register_sparsity_rule,
    sparsity_rules as sparsity_rules,
)
from ._solve import SparseLU as SparseLU, solve_stiff as solve_stiff
