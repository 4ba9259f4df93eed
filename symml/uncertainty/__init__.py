"""Uncertainty: propagate it through compiled models, and put error bars on
fitted and recovered coefficients.

Guarantees: inputs are normal distributions validated where they are given (a
negative standard deviation or a covariance that is not positive
semi-definite is an [`UncertaintyError`][symml.UncertaintyError]);
[`propagate`][symml.propagate] works on any
[`AbstractSystem`][symml.AbstractSystem], sympy expression or pure JAX
function, linearly (forward-mode derivatives of the solve, exact in the
inputs' correlations) or by seeded Monte Carlo (the same seed gives the same
samples); everything evaluated is pure and compiled. Error bars of a fit come
from the Gauss–Newton approximation of its least-squares loss at the fitted
parameters, or from seeded bootstrap refits vmapped over resamples; they
describe the estimator the fit computes, with the noise estimated from the
residuals. This stage reads fit results through their public attributes and
never changes a model, a system or a result.
"""

from ._fit import (
    AbstractErrorMethod as AbstractErrorMethod,
    Bootstrap as Bootstrap,
    GaussNewton as GaussNewton,
    ParameterUncertainty as ParameterUncertainty,
    parameter_uncertainty as parameter_uncertainty,
)
from ._inputs import Normal as Normal
from ._plot import plot_band as plot_band
from ._propagate import (
    AbstractPropagation as AbstractPropagation,
    Linear as Linear,
    MonteCarlo as MonteCarlo,
    Propagation as Propagation,
    propagate as propagate,
)
