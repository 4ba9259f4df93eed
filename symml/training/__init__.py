"""Training: universal differential equations and physics-informed networks.

Guarantees: [`fit`][symml.fit] is reproducible by seed on one machine; its
options are explicit and validated, those of each way of fitting carried by a
fit-method object ([`SolveInLoop`][symml.SolveInLoop],
[`PhysicsInformed`][symml.PhysicsInformed]). It never hands back non-finite
weights: a non-finite loss raises [`FitError`][symml.FitError] carrying the
last parameters whose loss was finite. A fit can write checkpoints and resume
from them bit for bit. It returns a [`FitResult`][symml.FitResult] with the
loss history and the means to predict.
"""

from ..dsl import Data as Data, FieldModel as _FieldModel, PointData as PointData
from ._collocation import (
    Collocation as Collocation,
    CollocationResult as CollocationResult,
    CollocationThenSolve as CollocationThenSolve,
    DerivativeEstimates as DerivativeEstimates,
)
from ._ensemble import EnsembleResult as EnsembleResult, fit_ensemble as fit_ensemble
from ._fit import fit as fit, register_fit_method as register_fit_method
from ._loop import Phase as Phase, adam as adam, lbfgs as lbfgs
from ._method import AbstractFitMethod as AbstractFitMethod
from ._multistep import (
    Multistep as Multistep,
    multistep_coefficients as multistep_coefficients,
)
from ._penalty import Penalty as Penalty
from ._pinn import PhysicsInformed as PhysicsInformed, PINNResult as PINNResult
from ._pinn_options import RAD as RAD, Causal as Causal
from ._regularize import (
    AbstractRegularization as AbstractRegularization,
    SolverHeuristics as SolverHeuristics,
    TaylorRegularization as TaylorRegularization,
    ode_taylor_coefficients as ode_taylor_coefficients,
)
from ._result import FitResult as FitResult, UDEResult as UDEResult
from ._shard import initialize_distributed as initialize_distributed
from ._ude import SolveInLoop as SolveInLoop

# A field model is fitted physics-informed with observations of any kind too;
# `PhysicsInformed` checks them.
register_fit_method(_FieldModel, object, PhysicsInformed)
