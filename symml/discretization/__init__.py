"""Method of lines: grids, stencils and boundary handling for PDE models.

Guarantees: [`discretize`][symml.discretize] turns a validated PDE
[`Model`][symml.Model] with states into a
[`DiscretizedModel`][symml.DiscretizedModel], an ODE system on a
uniform grid. Spatial derivatives become central stencils of order 2, 4 or 6
applied to whole arrays (slices of arrays padded with ghost points), never one
sympy equation per grid point, so lowering time does not depend on the grid
size. The right-hand side is pure (no Python side effects, no global state) and
works under `jit`, `vmap` and `grad` in float32 and float64; its Jacobian
pattern is known exactly from the stencils; it is an
[`AbstractSystem`][symml.AbstractSystem], so [`solve`][symml.solve] integrates
it (with sparse linear algebra for implicit solvers), and training, discovery
and sparsity take it as they take an ODE. A model or grid
that cannot be discretised is a [`DiscretizeError`][symml.DiscretizeError].
"""

from ._discretize import (
    DiscretizedModel as DiscretizedModel,
    discretize as discretize,
)
