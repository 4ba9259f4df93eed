"""The warnings discovery gives, raised where the user called symml."""

import sys
import warnings

from .._errors import SymmlWarning


def warn(message: str, category: type[Warning]) -> None:
    """Warn at the first frame outside symml: the user's call."""
    package = __name__.split(".")[0]
    frame, level = sys._getframe(1), 2
    while (
        frame is not None
        and frame.f_globals.get("__name__", "").split(".")[0] == package
    ):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


class DiscoveryWarning(SymmlWarning):
    """Discovery found a model, but the data do not support it well: no sparse
    model explains the term to the stated accuracy, the Pareto front has no
    clear elbow, or a recovered term is of the size of the discretisation
    error."""


class TruncationErrorWarning(DiscoveryWarning):
    """A recovered term of a universal PDE is of the size of the truncation
    error of the stencils the model was fitted with, so the discretisation,
    not the data, may have put it there."""
