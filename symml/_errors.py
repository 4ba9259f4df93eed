"""Errors and warnings raised by symml.

Every mistake in a user's model, data or options raises a subclass of
[`SymmlError`][symml.SymmlError] that also subclasses the matching built-in
exception, so `except ValueError` keeps working. Messages say what was received,
what was expected and how to fix it, naming the offending term.
"""


class SymmlError(Exception):
    """Base class of every error symml raises for a user's mistake."""


class ModelError(SymmlError, ValueError):
    """A declaration (states, parameters, unknowns, equations) is invalid."""


class LoweringError(SymmlError, ValueError):
    """A sympy construct cannot be lowered to JAX."""


class DerivativeError(SymmlError, ValueError):
    """A derivative scheme cannot compute the requested derivative."""


class SparsityError(SymmlError, ValueError):
    """A sparsity pattern cannot be detected or used."""


class DiscretizeError(SymmlError, ValueError):
    """A PDE model cannot be discretised as asked."""


class DataError(SymmlError, ValueError):
    """Observations are malformed (shapes, names, times, values)."""


class FitError(SymmlError, RuntimeError):
    """Training failed (a non-finite loss, a failed solve)."""


class DiscoverError(SymmlError, ValueError):
    """Sparse regression cannot be run as asked."""


class ExportError(SymmlError, ValueError):
    """A model or expression cannot be exported."""


class SteadyStateError(SymmlError, RuntimeError):
    """A steady-state solve failed: the root finder did not converge, or the
    Jacobian was singular. The message gives the residual norm and the
    iteration count."""


class SteadyStateInputError(SymmlError, ValueError):
    """A steady-state problem is set up wrongly (the system, the initial guess,
    the method or the experiments' inputs)."""


class SDEError(SymmlError, ValueError):
    """An SDE cannot be simulated, fitted or solved as asked (a solver that does
    not suit the noise, malformed paths, options out of range)."""


class PersistenceError(SymmlError, OSError):
    """A file cannot be saved or loaded: the object has no saved form, the
    file is missing, corrupted or truncated, or it was written by another
    version of symml's file format."""


class UncertaintyError(SymmlError, ValueError):
    """Uncertain inputs are malformed (a negative standard deviation, a
    covariance that is not positive semi-definite, a name that is neither a
    parameter nor a state), or the uncertainty of a fit cannot be computed as
    asked (the model still has networks, the parameters are not
    identifiable)."""


class SymmlWarning(UserWarning):
    """Base class of the warnings symml emits about a model or a fit."""


class ZeroDerivativeWarning(SymmlWarning):
    """A network's activation has a derivative that is identically zero or
    undefined at an order the model needs (relu with a second derivative)."""


class UncertaintyWarning(SymmlWarning):
    """An uncertainty estimate is less reliable than it looks: a fit that has
    not converged, Monte Carlo samples whose solves failed, parameters that
    the data barely determine."""
