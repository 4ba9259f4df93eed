"""Discovery: sparse regression back to sympy, from a fit or from data alone.

Guarantees: candidate terms are sympy expressions, and every recovered
expression is an exact sum of float coefficient × candidate term (no parsing
of names); a selector builds the Pareto front of best models of each size and
a stated criterion chooses one (no hidden threshold), with a warning when no
sparse model explains a term well; the selected terms are refitted by ordinary
least squares, so their coefficients are unbiased; the same seed gives the same
result; a recovered model is a validated [`Model`][symml.Model] that can be
fitted, simulated and exported again. This subpackage uses numpy, scipy, sympy
and pysindy (imported only when discovery runs), never jax or
`symml.training`: it reads a fit result only through `model`,
`unknown_samples()` and `parameter_values()`.
"""

from ._criteria import (
    AIC as AIC,
    BIC as BIC,
    AbstractCriterion as AbstractCriterion,
    AICc as AICc,
    CrossValidation as CrossValidation,
    Elbow as Elbow,
    Stability as Stability,
)
from ._differentiation import (
    AbstractDerivative as AbstractDerivative,
    FiniteDifference as FiniteDifference,
    SavitzkyGolay as SavitzkyGolay,
    SmoothedFiniteDifference as SmoothedFiniteDifference,
    Spectral as Spectral,
    Spline as Spline,
    TotalVariation as TotalVariation,
)
from ._discover import (
    Discovery as Discovery,
    FitResultLike as FitResultLike,
    discover as discover,
    inclusion_frequencies as inclusion_frequencies,
)
from ._library import (
    AbstractLibrary as AbstractLibrary,
    ConcatLibrary as ConcatLibrary,
    CustomLibrary as CustomLibrary,
    DerivativeLibrary as DerivativeLibrary,
    FourierLibrary as FourierLibrary,
    PDELibrary as PDELibrary,
    PolynomialLibrary as PolynomialLibrary,
    TensoredLibrary as TensoredLibrary,
)
from ._regression import sparse_regression as sparse_regression
from ._selection import (
    STLSQ as STLSQ,
    AbstractSelector as AbstractSelector,
    BestSubset as BestSubset,
    ParetoFront as ParetoFront,
    Stepwise as Stepwise,
)
from ._warnings import (
    DiscoveryWarning as DiscoveryWarning,
    TruncationErrorWarning as TruncationErrorWarning,
)
from ._weak import WeakForm as WeakForm
