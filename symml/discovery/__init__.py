"""Discovery: sparse regression on learned unknown terms, back to sympy.

Guarantees: candidate terms are sympy expressions, and every recovered
expression is an exact sum of float coefficient × candidate term (no parsing
of names); the selected terms are refitted by ordinary least squares, so their
coefficients are unbiased; the same seed gives the same result; a recovered
model is a validated [`Model`][symml.Model] that can be fitted, simulated and
exported again. This subpackage uses numpy, sympy and pysindy, never jax or
`symml.training`: it reads a fit result only through `model`, `unknown_samples()`
and `parameter_values()`.
"""

from ._discover import (
    Discovery as Discovery,
    FitResultLike as FitResultLike,
    discover as discover,
)
from ._library import (
    AbstractLibrary as AbstractLibrary,
    ConcatLibrary as ConcatLibrary,
    CustomLibrary as CustomLibrary,
    FourierLibrary as FourierLibrary,
    PolynomialLibrary as PolynomialLibrary,
    TensoredLibrary as TensoredLibrary,
)
from ._regression import sparse_regression as sparse_regression
