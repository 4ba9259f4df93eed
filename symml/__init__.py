"""symml: symbolic-numeric scientific machine learning.

Declare ODE/PDE systems in sympy with unknown terms represented by networks,
lower them to JAX, train the networks, and turn what they learned back into
equations.
"""

from . import plot as plot
from ._errors import (
    DataError as DataError,
    DerivativeError as DerivativeError,
    DiscoverError as DiscoverError,
    DiscretizeError as DiscretizeError,
    ExportError as ExportError,
    FitError as FitError,
    LoweringError as LoweringError,
    ModelError as ModelError,
    PersistenceError as PersistenceError,
    SDEError as SDEError,
    SparsityError as SparsityError,
    SteadyStateError as SteadyStateError,
    SteadyStateInputError as SteadyStateInputError,
    SymmlError as SymmlError,
    SymmlWarning as SymmlWarning,
    UncertaintyError as UncertaintyError,
    UncertaintyWarning as UncertaintyWarning,
    ZeroDerivativeWarning as ZeroDerivativeWarning,
)
from ._memory import use_heap_allocator as use_heap_allocator
from .discovery import (
    AIC as AIC,
    BIC as BIC,
    STLSQ as STLSQ,
    AICc as AICc,
    BestSubset as BestSubset,
    CrossValidation as CrossValidation,
    CustomLibrary as CustomLibrary,
    DerivativeLibrary as DerivativeLibrary,
    Discovery as Discovery,
    DiscoveryWarning as DiscoveryWarning,
    Elbow as Elbow,
    FiniteDifference as FiniteDifference,
    FourierLibrary as FourierLibrary,
    ParetoFront as ParetoFront,
    PDELibrary as PDELibrary,
    PolynomialLibrary as PolynomialLibrary,
    SavitzkyGolay as SavitzkyGolay,
    SmoothedFiniteDifference as SmoothedFiniteDifference,
    Spectral as Spectral,
    Spline as Spline,
    Stability as Stability,
    Stepwise as Stepwise,
    TotalVariation as TotalVariation,
    TruncationErrorWarning as TruncationErrorWarning,
    WeakForm as WeakForm,
    discover as discover,
    inclusion_frequencies as inclusion_frequencies,
    sparse_regression as sparse_regression,
)
from .discretization import (
    DiscretizedModel as DiscretizedModel,
    discretize as discretize,
)
from .dsl import (
    Field as Field,
    FieldModel as FieldModel,
    Model as Model,
    ODEModel as ODEModel,
    PDEModel as PDEModel,
    Unknown as Unknown,
    states as states,
    trainable as trainable,
)
from .export import to_latex as to_latex, write_latex as write_latex
from .io import load as load, save as save
from .lowering import (
    AbstractSystem as AbstractSystem,
    CompiledRHS as CompiledRHS,
    Params as Params,
    Solution as Solution,
    init_params as init_params,
    lower as lower,
    register_function as register_function,
    register_rule as register_rule,
    solve as solve,
)
from .plot import report as report
from .sde import (
    SDE as SDE,
    BSDEResult as BSDEResult,
    CompiledSDE as CompiledSDE,
    DeepBSDE as DeepBSDE,
    EulerLikelihood as EulerLikelihood,
    ParabolicPDE as ParabolicPDE,
    SDEFitResult as SDEFitResult,
    hjb_reference as hjb_reference,
    lower_sde as lower_sde,
    simulate as simulate,
)
from .sparsity import (
    color_columns as color_columns,
    compressed_jacobian as compressed_jacobian,
    hessian_sparsity as hessian_sparsity,
    jacobian_sparsity as jacobian_sparsity,
)
from .steady import (
    AbstractSteadySolver as AbstractSteadySolver,
    IntegrateToSteady as IntegrateToSteady,
    LevenbergMarquardt as LevenbergMarquardt,
    Newton as Newton,
    SkipGuess as SkipGuess,
    SteadyData as SteadyData,
    SteadyFit as SteadyFit,
    SteadyFitResult as SteadyFitResult,
    SteadyState as SteadyState,
    steady_state as steady_state,
)
from .training import (
    RAD as RAD,
    AbstractFitMethod as AbstractFitMethod,
    Causal as Causal,
    Collocation as Collocation,
    CollocationThenSolve as CollocationThenSolve,
    Data as Data,
    EnsembleResult as EnsembleResult,
    FitResult as FitResult,
    Multistep as Multistep,
    Penalty as Penalty,
    Phase as Phase,
    PhysicsInformed as PhysicsInformed,
    PINNResult as PINNResult,
    PointData as PointData,
    SolveInLoop as SolveInLoop,
    SolverHeuristics as SolverHeuristics,
    TaylorRegularization as TaylorRegularization,
    UDEResult as UDEResult,
    adam as adam,
    fit as fit,
    fit_ensemble as fit_ensemble,
    initialize_distributed as initialize_distributed,
    lbfgs as lbfgs,
    register_fit_method as register_fit_method,
)
from .uncertainty import (
    AbstractErrorMethod as AbstractErrorMethod,
    AbstractPropagation as AbstractPropagation,
    Bootstrap as Bootstrap,
    GaussNewton as GaussNewton,
    Linear as Linear,
    MonteCarlo as MonteCarlo,
    Normal as Normal,
    ParameterUncertainty as ParameterUncertainty,
    Propagation as Propagation,
    parameter_uncertainty as parameter_uncertainty,
    plot_band as plot_band,
    propagate as propagate,
)

__version__ = "0.1.0"
