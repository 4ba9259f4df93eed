"""symml: symbolic-numeric scientific machine learning.

Declare ODE/PDE systems in sympy with unknown terms represented by networks,
lower them to JAX, train the networks, and turn what they learned back into
equations.
"""

from ._errors import (
    DataError as DataError,
    DerivativeError as DerivativeError,
    DiscoverError as DiscoverError,
    DiscretizeError as DiscretizeError,
    ExportError as ExportError,
    FitError as FitError,
    LoweringError as LoweringError,
    ModelError as ModelError,
    SparsityError as SparsityError,
    SymmlError as SymmlError,
    SymmlWarning as SymmlWarning,
    ZeroDerivativeWarning as ZeroDerivativeWarning,
)
from .dsl import (
    Field as Field,
    Model as Model,
    Unknown as Unknown,
    states as states,
    trainable as trainable,
)
from .lower import (
    CompiledRHS as CompiledRHS,
    Params as Params,
    lower as lower,
    register_function as register_function,
    register_rule as register_rule,
)

__version__ = "0.1.0"
