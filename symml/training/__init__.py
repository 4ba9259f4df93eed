"""Training: universal differential equations and physics-informed networks.

Guarantees: [`fit`][symml.fit] is reproducible by seed on one machine, never
hands back non-finite weights (a non-finite loss raises
[`FitError`][symml.FitError] carrying the last good parameters), and returns a
[`FitResult`][symml.FitResult] with the loss history and the means to predict.
"""

from ..dsl import Data as Data
from ._fit import fit as fit
from ._optim import Phase as Phase, adam as adam, lbfgs as lbfgs
from ._penalty import Penalty as Penalty
from ._pinn import PINNResult as PINNResult
from ._result import FitResult as FitResult
