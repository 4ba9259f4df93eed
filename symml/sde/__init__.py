"""Stochastic models: SDEs with unknown terms, path simulation, fits of
universal SDEs, and the deep BSDE method for semilinear parabolic PDEs in many
dimensions.

Guarantees: [`lower_sde`][symml.lower_sde] turns a validated
[`SDE`][symml.SDE] into pure drift and diffusion functions (safe under `jit`,
`vmap` and `grad`, network weights included) in diffrax's signatures.
[`simulate`][symml.simulate] is deterministic for a key, path `i` does not
depend on how many paths are drawn, and every named solver converges to the
SDE as declared: a solver of the other calculus gets the drift converted
symbolically, and a solver that does not suit the noise (additive-noise
Runge–Kutta methods, Milstein without commutative noise) is an
[`SDEError`][symml.SDEError], never a silently wrong path. A
[`ParabolicPDE`][symml.ParabolicPDE] is lowered in vector notation, whole
arrays per sympy node, so its cost does not grow with sympy work in the
dimension. Both fit methods, [`EulerLikelihood`][symml.EulerLikelihood] for
an `SDE` with observed paths and [`DeepBSDE`][symml.DeepBSDE] for a
`ParabolicPDE`, run in the shared loop of [`fit`][symml.fit] (and are its
defaults for those models): reproducible by seed on one machine, never
handing back non-finite weights.
"""

from ..dsl import SDE as SDE, ParabolicPDE as ParabolicPDE
from ..training import register_fit_method as _register
from ._bsde import (
    BSDEParams as BSDEParams,
    BSDEProblem as BSDEProblem,
    BSDEResult as BSDEResult,
    BSDEStatic as BSDEStatic,
    CompiledParabolicPDE as CompiledParabolicPDE,
    DeepBSDE as DeepBSDE,
)
from ._fit import (
    EulerLikelihood as EulerLikelihood,
    Increments as Increments,
    SDEFitResult as SDEFitResult,
)
from ._lower import CompiledSDE as CompiledSDE, lower_sde as lower_sde
from ._reference import hjb_reference as hjb_reference
from ._simulate import (
    SOLVERS as SOLVERS,
    SolverSpec as SolverSpec,
    simulate as simulate,
)

# `fit(sde, paths)` and `fit(pde)` choose these methods by default.
_register(SDE, object, EulerLikelihood, name="euler_likelihood")
_register(CompiledSDE, object, EulerLikelihood)
_register(ParabolicPDE, None, DeepBSDE, name="deep_bsde")
